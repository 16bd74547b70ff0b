// SPDX-License-Identifier: MIT
// Device names: what may become a node under /dev, checked before anything is created.
#include <cerrno>

#include "core.hpp"

namespace fusd {

namespace {
constexpr std::size_t kMaxName = 200;      // below NAME_MAX and the kernel module's limit
}

std::string device_path(std::string_view name)
{
    std::string shown(name.substr(0, 64));
    for (char &c : shown)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            c = '?';
    auto invalid = [&](const std::string &why) { return Error(EINVAL, "invalid device name '" + shown + "': " + why); };
    if (name.empty())
        throw invalid("empty");
    std::string_view rel = name;
    if (rel.front() == '/') {
        if (rel.substr(0, 5) != "/dev/")
            throw invalid("absolute names must be under /dev/");
        rel.remove_prefix(5);
    }
    if (rel.empty())
        throw invalid("no name after /dev/");
    if (rel.size() > kMaxName)
        throw Error(ENAMETOOLONG, "invalid device name '" + shown + "...': longer than " + std::to_string(kMaxName) + " characters");
    for (char c : rel) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x21 || u > 0x7e)
            throw invalid("only printable ASCII without spaces is allowed");
        if (c == '\\' || c == '*' || c == '?' || c == '"' || c == '\'')
            throw invalid(std::string("character '") + c + "' is not allowed");
    }
    if (rel == ".." || rel.substr(0, 3) == "../" || rel.find("/../") != std::string_view::npos ||
        (rel.size() >= 3 && rel.substr(rel.size() - 3) == "/.."))
        throw invalid("'..' is not allowed");
    if (rel.find('/') != std::string_view::npos)
        throw invalid("subdirectories are not supported; use a plain name such as 'clock'");
    if (rel == "." || rel == ".." || rel.front() == '-' || rel.front() == '.')
        throw invalid("must not start with '.' or '-'");
    return "/dev/" + std::string(rel);
}

namespace detail {
std::string checked_device_path(std::string_view name) { return device_path(name); }
} // namespace detail

} // namespace fusd
