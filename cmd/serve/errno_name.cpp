// SPDX-License-Identifier: MIT
//
// fusdctl serve: errno names (see errno_name.hpp), from the C library's own table.
#include "serve/errno_name.hpp"

#include <cstring>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

namespace fusdctl::serve {

int errno_by_name(std::string_view name) {
    static const std::unordered_map<std::string_view, int> by_name = [] {
        std::unordered_map<std::string_view, int> m;
        for (int e = 1; e < 4096; ++e)
            if (const char *n = ::strerrorname_np(e))
                m.emplace(n, e); // EAGAIN before EWOULDBLOCK: both name 11
        m.emplace("EWOULDBLOCK", EWOULDBLOCK);
        m.emplace("EDEADLOCK", EDEADLOCK);
        return m;
    }();
    auto it = by_name.find(name);
    return it == by_name.end() ? 0 : it->second;
}

std::string errno_name(int errnum) {
    if (const char *n = ::strerrorname_np(errnum))
        return n;
    return fmt::format("{}", errnum);
}

} // namespace fusdctl::serve
