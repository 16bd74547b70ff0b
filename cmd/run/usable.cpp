// SPDX-License-Identifier: MIT
//
// fusdctl run: the checks behind fusdctl doctor's line about it.
#include "run/usable.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.hpp"
#include "fd.hpp"

namespace fusdctl::run {

namespace {

std::string sysctl(const char *path) {
    std::ifstream in(path);
    std::string v;
    in >> v;
    return v;
}

// errno of unshare(CLONE_NEWUSER | CLONE_NEWNS) in a child, 0 when it worked.
int try_user_namespace() {
    pid_t pid = ::fork();
    if (pid < 0)
        return errno;
    if (pid == 0)
        ::_exit(::unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 ? 0 : (errno & 0xff));
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
}

} // namespace

Usability check_usable() {
    if (::access("/dev/fuse", F_OK) != 0)
        return {false, "no /dev/fuse (the kernel has no FUSE)"};
    if (fusd::Fd fuse{::open("/dev/fuse", O_RDWR | O_CLOEXEC)}; !fuse)
        return {false, fmt::format("/dev/fuse: {} (it must be readable and writable by you: Debian's fuse3 "
                                   "makes it 0666 through udev)",
                                   std::strerror(errno))};
    if (::geteuid() == 0)
        return {true, ""};
    if (int err = try_user_namespace(); err != 0) {
        std::string why = fmt::format("no user namespace for you: {}", std::strerror(err));
        if (sysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0")
            why += " (kernel.unprivileged_userns_clone is 0)";
        if (sysctl("/proc/sys/user/max_user_namespaces") == "0")
            why += " (user.max_user_namespaces is 0)";
        if (sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1")
            why += " (kernel.apparmor_restrict_unprivileged_userns is 1)";
        return {false, why};
    }
    return {true, ""};
}

} // namespace fusdctl::run
