// SPDX-License-Identifier: MIT
// A daemon's control socket (libfusd/src/control.cpp): anyone may connect (mode 0666) and send
// lines. The bytes are cut into lines as ControlServer::on_client does, and each line goes to
// parse_control_request(), which must never throw and must say why it refuses a line.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "control_request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    using fusd::detail::ControlRequest;
    std::string_view in(reinterpret_cast<const char *>(data), size);
    while (!in.empty()) {
        // The last line's newline may come in a later read: it is a line all the same.
        std::size_t nl = std::min(in.find('\n'), in.size());
        ControlRequest req = fusd::detail::parse_control_request(in.substr(0, nl));
        in.remove_prefix(std::min(nl + 1, in.size()));
        bool refused = req.cmd == ControlRequest::Cmd::invalid;
        if (refused != (req.error != 0) || refused == req.message.empty())
            std::abort(); // a refusal always has an errno and a reason, and only a refusal has them
        if (req.cmd != ControlRequest::Cmd::trace && !req.devices.empty())
            std::abort();
    }
    return 0;
}
