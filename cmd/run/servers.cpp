// SPDX-License-Identifier: MIT
//
// fusdctl run: the servers, and waiting for their devices.
#include "run/servers.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.hpp"
#include "common.hpp"
#include "run/private_dev.hpp"

namespace fusdctl::run {

namespace {

// A hang guard, never a speed target: a server that neither serves nor exits.
constexpr auto kHangGuard = std::chrono::seconds(120);

[[noreturn]] void be_server(const DeviceSpec &spec) {
    // Its own process group: the terminal's ^C is PROGRAM's, not the devices'.
    ::setpgid(0, 0);
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGTERM, SIGHUP, SIGINT, SIGQUIT})
        ::sigaction(sig, &dfl, nullptr);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
        if (null != STDIN_FILENO)
            ::close(null);
    }
    std::vector<std::string> args = spec.server_argv();
    std::vector<char *> argv;
    for (std::string &a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    int status = fusdctl_main(static_cast<int>(args.size()), argv.data());
    std::fflush(nullptr);
    ::_exit(status);
}

bool ready(const DeviceSpec &spec) {
    struct stat st{};
    // serve --tty on FUSE makes the path a symlink to a pseudo-terminal, last of all.
    if (spec.kind == DeviceSpec::Kind::tty)
        return ::lstat(spec.path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
    return is_mount_point(spec.path);
}

} // namespace

pid_t start_server(const DeviceSpec &spec) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error(fmt::format("run: {}: fork: {}", spec.path, std::strerror(errno)));
    if (pid == 0)
        be_server(spec);
    auto deadline = std::chrono::steady_clock::now() + kHangGuard;
    auto pause = std::chrono::milliseconds(1);
    while (!ready(spec)) {
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid)
            throw std::runtime_error(
                fmt::format("run: {}: its server {} before the device was ready", spec.path, describe_status(st)));
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error(fmt::format("run: {}: not ready after {} s", spec.path, kHangGuard.count()));
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
    return pid;
}

} // namespace fusdctl::run
