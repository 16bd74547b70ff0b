// SPDX-License-Identifier: MIT
// Device names: what may become a node under /dev, checked before anything is created. A name
// may be nested ("input/event7"); what its parent directories must be is checked when the node
// is made (parents.cpp), since only the filesystem can say.
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
    // Nested names ("input/event7", "bus/usb/001/002") are paths below /dev: each component a
    // plain name. Their parent directories are made (and removed) with the node: see parents.cpp.
    for (std::size_t start = 0; start <= rel.size();) {
        std::size_t end = rel.find('/', start);
        if (end == std::string_view::npos)
            end = rel.size();
        std::string_view component = rel.substr(start, end - start);
        if (component.empty())
            throw invalid("empty path component ('//' or a trailing '/')");
        if (component == "." || component == "..")
            throw invalid("'" + std::string(component) + "' components are not allowed");
        if (component.front() == '-' || component.front() == '.')
            throw invalid("a path component must not start with '.' or '-'");
        start = end + 1;
    }
    return "/dev/" + std::string(rel);
}

namespace detail {
std::string checked_device_path(std::string_view name) { return device_path(name); }

// The classic API's labels: what the fusd module keeps (FUSD_LABEL_MAX with the NUL), of the
// module's name characters and '!' (sysfs's spelling of '/', as in "pager!input"). Checked the
// same on every backend, so that a driver fails or works alike everywhere.
void check_classic_label(const char *what, std::string_view label)
{
    constexpr std::size_t kLabelMax = 47;
    std::string shown(label.substr(0, 64));
    for (char &c : shown)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            c = '?';
    if (label.size() > kLabelMax)
        throw Error(ENAMETOOLONG, std::string("invalid ") + what + " '" + shown + "...': longer than " +
                                      std::to_string(kLabelMax) + " characters");
    for (char c : label)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("._-+:@,!").find(c) != std::string_view::npos))
            throw Error(EINVAL, std::string("invalid ") + what + " '" + shown +
                                    "': only A-Z a-z 0-9 . _ - + : @ , ! are allowed");
}
} // namespace detail

} // namespace fusd
