// SPDX-License-Identifier: MIT
#include "bench_common.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

namespace fusd::bench {

bool parse_options(int argc, char **argv, const std::string &usage,
                   const std::function<bool(const std::string &name, const std::string &value, long number)> &on_option)
{
    for (int i = 1; i < argc; i += 2) {
        std::string name = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s\n", usage.c_str());
            return false;
        }
        std::string value = argv[i + 1];
        char *end = nullptr;
        long n = std::strtol(value.c_str(), &end, 10);
        if (!on_option(name, value, !value.empty() && *end == '\0' && n > 0 ? n : 0)) {
            std::fprintf(stderr, "%s\n", usage.c_str());
            return false;
        }
    }
    return true;
}

pid_t fork_daemon(const std::function<void(int report_fd)> &daemon, std::string &error)
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) {
        error = std::strerror(errno);
        return -1;
    }
    pid_t child = fork();
    if (child == 0) {
        ::close(report[0]);
        daemon(report[1]);
        _exit(1); // it must not return
    }
    ::close(report[1]);
    std::string line;
    char ch;
    while (::read(report[0], &ch, 1) == 1 && ch != '\n')
        line += ch;
    ::close(report[0]);
    if (line == "ready")
        return child;
    error = line.empty() ? "the daemon died before it was ready" : line;
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    return -1;
}

bool write_all(int fd, const std::string &s)
{
    for (std::size_t off = 0; off < s.size();) {
        ssize_t n = ::write(fd, s.data() + off, s.size() - off);
        if (n <= 0)
            return false;
        off += std::size_t(n);
    }
    return true;
}

long open_fds(pid_t pid)
{
    std::error_code ec;
    long n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return ec ? -1 : n;
}

bool mounted(const std::string &path)
{
    std::ifstream in("/proc/self/mounts");
    std::string line;
    while (std::getline(in, line))
        if (line.find(" " + path + " ") != std::string::npos)
            return true;
    return false;
}

} // namespace fusd::bench
