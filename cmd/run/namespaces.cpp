// SPDX-License-Identifier: MIT
//
// fusdctl run: unshare(2), the uid and gid maps, the pid namespace's init.
#include "run/namespaces.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.hpp"
#include "fd.hpp"

namespace fusdctl::run {

namespace {

void write_file(const char *path, const std::string &text) {
    fusd::Fd fd{::open(path, O_WRONLY | O_CLOEXEC)};
    if (!fd || !write_all(fd.get(), text))
        throw std::runtime_error(fmt::format("run: write {}: {}", path, std::strerror(errno)));
}

const volatile int *g_target = nullptr;

void forward(int sig, siginfo_t *info, void *) {
    // From the terminal (SI_KERNEL) the signal went to PROGRAM's process group already.
    if (info->si_code <= 0 && g_target && *g_target > 0)
        ::kill(*g_target, sig);
}

volatile int g_init = 0;

} // namespace

void forward_signals_to(const volatile int *target) {
    g_target = target;
    struct sigaction sa{};
    sa.sa_sigaction = forward;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGTERM, SIGHUP, SIGINT, SIGQUIT})
        ::sigaction(sig, &sa, nullptr);
}

void enter_namespaces() {
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    if (uid == 0)
        return; // root keeps its powers on the host's files: no user namespace
    if (::unshare(CLONE_NEWUSER) != 0) {
        int err = errno;
        throw std::runtime_error(fmt::format(
            "run: cannot make a user namespace: {}{}", std::strerror(err),
            err == EPERM || err == ENOSPC || err == EUSERS
                ? " (unprivileged user namespaces are off: kernel.unprivileged_userns_clone, user.max_user_namespaces;"
                  " see fusdctl doctor)"
                : ""));
    }
    // setgroups must be denied before an unprivileged process may write its gid map.
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/uid_map", fmt::format("{0} {0} 1\n", uid));
    write_file("/proc/self/gid_map", fmt::format("{0} {0} 1\n", gid));
}

int run_init(const std::function<int()> &body) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0)
        throw std::runtime_error(fmt::format("run: pipe: {}", std::strerror(errno)));
    fusd::Fd alive_in{pipefd[0]}, alive_out{pipefd[1]};
    std::fflush(nullptr);
    // clone(2) as a fork whose child alone is in the new pid namespace: after unshare(2) every
    // later child of ours would be put there too, and once init is gone we could start none (not
    // even the thread LeakSanitizer needs at exit).
    pid_t pid = static_cast<pid_t>(::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
    if (pid < 0)
        throw std::runtime_error(fmt::format("run: a pid namespace: {}", std::strerror(errno)));
    if (pid == 0) {
        alive_out.reset();
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        // We may have been orphaned before the line above: then our starter's end is closed.
        pollfd p{alive_in.get(), POLLIN, 0};
        if (::poll(&p, 1, 0) != 0)
            ::_exit(exit_failure);
        alive_in.reset();
        int status = exit_failure;
        try {
            // The mount namespace is init's, not ours: we keep the host's /proc, and the
            // namespace goes with the last process of the pid namespace.
            if (::unshare(CLONE_NEWNS) != 0)
                throw std::runtime_error(fmt::format("run: unshare: {}", std::strerror(errno)));
            status = body();
        } catch (const std::exception &e) {
            error("{}", e.what());
        }
        std::fflush(nullptr);
        ::_exit(status); // the kernel kills whatever is left in the pid namespace
    }
    alive_in.reset();
    g_init = pid;
    forward_signals_to(&g_init);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            throw std::runtime_error(fmt::format("run: waitpid: {}", std::strerror(errno)));
    g_init = 0;
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

} // namespace fusdctl::run
