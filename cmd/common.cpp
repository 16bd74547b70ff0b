// SPDX-License-Identifier: MIT
//
// fusdctl: helpers shared by the subcommands (see common.hpp).
#include "common.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <system_error>
#include <unordered_map>

#include <unistd.h>

namespace fusdctl {

void print_error(std::string_view message) {
    std::string line = fmt::format("fusdctl: {}\n", message);
    std::fflush(stdout);
    write_all(STDERR_FILENO, line);
}

std::string errno_name(int errnum) {
    if (const char *name = ::strerrorname_np(errnum))
        return name;
    return fmt::format("E{}", errnum);
}

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

std::string format_uptime(double seconds) {
    if (seconds < 0)
        seconds = 0;
    auto s = static_cast<std::uint64_t>(seconds);
    if (s < 60)
        return fmt::format("{}s", s);
    if (s < 3600)
        return fmt::format("{}m{:02}s", s / 60, s % 60);
    if (s < 86400)
        return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
    return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

std::string what_of(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::system_error &e) {
        return e.what();
    } catch (const std::exception &e) {
        return e.what();
    } catch (...) {
        return "unknown error";
    }
}

void ignore_sigpipe() {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGPIPE, &sa, nullptr);
}

bool write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

} // namespace fusdctl
