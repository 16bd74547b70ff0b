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
    if (ready_pipe_) {
        write_all(ready_pipe_.get(), "ERR " + message);
        ready_pipe_.reset();
    } else {
        print_error(message);
    }
    return exit_failure;
}

void Reporter::ready() {
    if (ready_pipe_) {
        write_all(ready_pipe_.get(), "OK");
        ready_pipe_.reset();
    }
}

bool write_pidfile(const std::string &path, std::string &why) {
    std::string tmp = fmt::format("{}.{}.tmp", path, ::getpid());
    fusd::Fd fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    if (!fd) {
        why = std::strerror(errno);
        return false;
    }
    bool ok = write_all(fd.get(), fmt::format("{}\n", ::getpid()));
    int err = errno;
    fd.reset();
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        why = std::strerror(ok ? errno : err);
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

namespace {

// The detached child, before it serves: a session of its own, stdio on /dev/null (stderr on the
// log), none of its starter's descriptors but the ready pipe.
void become_daemon(ServeConfig &config, int ready_pipe) {
    ::setsid();
    fusd::Fd null{::open("/dev/null", O_RDWR | O_CLOEXEC)};
    if (null) {
        ::dup2(null.get(), STDIN_FILENO);
        ::dup2(null.get(), STDOUT_FILENO);
        ::dup2(config.log ? config.log.get() : null.get(), STDERR_FILENO);
        if (null.get() <= STDERR_FILENO)
            (void)null.release(); // it is one of our stdio now
    }
    config.log.reset();
    null.reset();
    // A daemon keeps none of its starter's descriptors (a shell's or a test runner's pipes
    // would otherwise stay open as long as it runs).
    ::syscall(SYS_close_range, 3U, static_cast<unsigned>(ready_pipe - 1), 0U);
    ::syscall(SYS_close_range, static_cast<unsigned>(ready_pipe + 1), ~0U, 0U);
}

// Everything the child writes to the ready pipe until it closes it (or dies).
std::string read_report(int ready_pipe) {
    std::string answer;
    char buf[512];
    while (true) {
        ssize_t n = ::read(ready_pipe, buf, sizeof buf);
        if (n > 0) {
            answer.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return answer;
    }
}

} // namespace

int serve_detached(ServeConfig &config, const std::function<int(ServeConfig &, Reporter)> &serve) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) {
        error("{}: pipe: {}", config.path, std::strerror(errno));
        return exit_failure;
    }
    fusd::Fd report_in{pipefd[0]}, report_out{pipefd[1]};
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    if (pid < 0) {
        error("{}: fork: {}", config.path, std::strerror(errno));
        return exit_failure;
    }
    if (pid == 0) {
        report_in.reset();
        become_daemon(config, report_out.get());
        int status = serve(config, Reporter{std::move(report_out)});
        std::fflush(nullptr);
        ::_exit(status);
    }
    report_out.reset();
    std::string answer = read_report(report_in.get());
    report_in.reset();
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
