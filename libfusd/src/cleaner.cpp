// SPDX-License-Identifier: MIT
// The daemon's side of fusd-cleaner (see cleaner.hpp).
#include "cleaner.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char **environ;

namespace fusd::detail {

std::string cleaner_program(std::string &why)
{
    if (const char *env = std::getenv("FUSD_CLEANER"); env && *env) {
        if (access(env, X_OK) == 0)
            return env;
        why = std::string("FUSD_CLEANER=") + env + " is not an executable program";
        return {};
    }
    for (const char *path : {FUSD_CLEANER_BUILT, FUSD_CLEANER_INSTALLED})
        if (access(path, X_OK) == 0)
            return path;
    why = std::string("no fusd-cleaner at ") + FUSD_CLEANER_INSTALLED;
    return {};
}

Cleaner::Cleaner(std::uint64_t start_time, const std::string &control_socket)
{
    std::string why;
    std::string program = cleaner_program(why);
    if (program.empty())
        return;
    // A socket pair rather than a pipe: the daemon's last word is sent with MSG_NOSIGNAL, so a
    // cleaner that died early cannot take the daemon down with SIGPIPE.
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return;
    Fd cleaner_end(fds[0]), daemon_end(fds[1]);
    std::string pid = std::to_string(getpid()), start = std::to_string(start_time);
    std::vector<char *> argv{program.data(), pid.data(), start.data(), const_cast<char *>(control_socket.c_str()),
                             nullptr};
    // Its standard streams are /dev/null: a caller reading the daemon's output until end of file
    // (a shell's $(...), a test harness) must not wait for the cleaner.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, cleaner_end.get(), 3);
    for (int fd = 0; fd <= 2; ++fd)
        posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
    // A clean signal mask and dispositions: the daemon may block or ignore what it likes.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
    pid_t child = -1;
    int err = posix_spawn(&child, program.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (err != 0)
        return;
    // fusd-cleaner forks once and its first process exits at once: the cleaner proper is nobody's
    // child here, so a driver that waits for "any child" never meets it.
    while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
    link_ = std::move(daemon_end);
}

Cleaner::~Cleaner()
{
    if (link_)
        (void)!::send(link_.get(), "q", 1, MSG_NOSIGNAL);
}

} // namespace fusd::detail
