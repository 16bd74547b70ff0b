// SPDX-License-Identifier: MIT
//
// fusdctl serve: the start report (Reporter), the pidfile, --detach.
#include "serve/detach.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.hpp"
#include "common.hpp"

namespace fusdctl::serve {

int Reporter::fail(const std::string &message) {
    if (ready_fd >= 0) {
        write_all(ready_fd, "ERR " + message);
        ::close(ready_fd);
        ready_fd = -1;
    } else {
        print_error(message);
    }
    return exit_failure;
}

void Reporter::ready() {
    if (ready_fd >= 0) {
        write_all(ready_fd, "OK");
        ::close(ready_fd);
        ready_fd = -1;
    }
}

bool write_pidfile(const std::string &path, std::string &why) {
    std::string tmp = fmt::format("{}.{}.tmp", path, ::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        why = std::strerror(errno);
        return false;
    }
    bool ok = write_all(fd, fmt::format("{}\n", ::getpid()));
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        why = std::strerror(ok ? errno : err);
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

int serve_detached(ServeConfig &config, const std::function<int(ServeConfig &, Reporter)> &serve) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) {
        error("{}: pipe: {}", config.path, std::strerror(errno));
        return exit_failure;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    if (pid < 0) {
        error("{}: fork: {}", config.path, std::strerror(errno));
        return exit_failure;
    }
    if (pid == 0) {
        ::close(pipefd[0]);
        ::setsid();
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            ::dup2(null, STDIN_FILENO);
            ::dup2(null, STDOUT_FILENO);
            ::dup2(config.log_fd >= 0 ? config.log_fd : null, STDERR_FILENO);
            if (null > STDERR_FILENO)
                ::close(null);
        }
        if (config.log_fd >= 0) {
            ::close(config.log_fd);
            config.log_fd = -1;
        }
        // A daemon keeps none of its starter's descriptors (a shell's or a test runner's pipes
        // would otherwise stay open as long as it runs).
        int keep = pipefd[1];
        ::syscall(SYS_close_range, 3U, static_cast<unsigned>(keep - 1), 0U);
        ::syscall(SYS_close_range, static_cast<unsigned>(keep + 1), ~0U, 0U);
        int status = serve(config, Reporter{keep});
        std::fflush(nullptr);
        ::_exit(status);
    }
    ::close(pipefd[1]);
    std::string answer;
    char buf[512];
    while (true) {
        ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n > 0) {
            answer.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    ::close(pipefd[0]);
    if (answer == "OK") {
        fmt::print("{}\n", pid);
        std::fflush(stdout);
        return exit_ok;
    }
    if (answer.starts_with("ERR ")) {
        print_error(answer.substr(4));
    } else {
        int st = 0;
        ::waitpid(pid, &st, 0);
        error("{}: the daemon {} before the device was ready", config.path, describe_status(st));
    }
    int st = 0;
    ::waitpid(pid, &st, WNOHANG);
    return exit_failure;
}

} // namespace fusdctl::serve
