// SPDX-License-Identifier: MIT
// Device names (libfusd/src/names.cpp), from any user through the API, fusdctl's arguments and
// the control socket, and the registry's file names for them (registry.cpp). A name is refused
// with fusd::Error or becomes a path strictly below /dev/ with no '.' or '..' component, and its
// registry file name is one plain file name.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core.hpp"
#include "registry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    std::string_view name(reinterpret_cast<const char *>(data), size);
    std::string path;
    try {
        path = fusd::device_path(name);
    } catch (const fusd::Error &) {
        return 0;
    }
    if (path.rfind("/dev/", 0) != 0 || path.size() == 5 || path.find("/./") != std::string::npos ||
        path.find("/../") != std::string::npos || path.find("//") != std::string::npos || path.back() == '/' ||
        path.ends_with("/..") || path.ends_with("/."))
        std::abort();
    if (fusd::device_path(path) != path) // a path is its own name
        std::abort();
    std::string file = fusd::detail::registry::file_name_of(path);
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
        std::abort();
    return 0;
}
