// SPDX-License-Identifier: MIT
// What the core reads from /proc: a caller's command name (for traces), our own command line (for
// fusdctl ls), and what the libfuse transports' requests lack about their caller.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <unistd.h>

#include "fd.hpp"
#include "loop_impl.hpp"

namespace fusd::detail {

void read_comm(pid_t pid, char (&comm)[16])
{
    comm[0] = '\0';
    char path[32];
    std::snprintf(path, sizeof path, "/proc/%d/comm", int(pid));
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd)
        return;
    ssize_t n = ::read(fd.get(), comm, sizeof comm - 1);
    comm[n > 0 ? n : 0] = '\0';
    if (n > 0 && comm[n - 1] == '\n')
        comm[n - 1] = '\0';
}

static bool read_caller_ids(pid_t tid, pid_t &tgid, uid_t &real_uid, gid_t &real_gid)
{
    // The thread may be gone (killed after its call was queued): then there is no file, or it
    // reads empty. Nothing is believed until all three lines have been read.
    char path[40];
    std::snprintf(path, sizeof path, "/proc/%d/status", int(tid));
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd)
        return false;
    char buf[2048]; // Tgid, Uid and Gid are among the first ten lines
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    auto field = [&](const char *name, unsigned long &value) {
        const char *at = std::strstr(buf, name);
        if (!at)
            return false;
        char *end = nullptr;
        value = std::strtoul(at + std::strlen(name), &end, 10);
        return end != at + std::strlen(name);
    };
    unsigned long t = 0, u = 0, g = 0;
    if (!field("\nTgid:\t", t) || !field("\nUid:\t", u) || !field("\nGid:\t", g) || t == 0)
        return false;
    tgid = pid_t(t);
    real_uid = uid_t(u);
    real_gid = gid_t(g);
    return true;
}

void resolve_caller_ids(Caller &caller)
{
    if (caller.pid <= 0 || !read_caller_ids(caller.pid, caller.pid, caller.real_uid, caller.real_gid)) {
        caller.pid = 0;
        caller.real_uid = uid_t(-1);
        caller.real_gid = gid_t(-1);
    }
}

void resolve_caller(const RequestHead &head)
{
    resolve_caller_ids(head.caller);
    head.caller_unresolved = false;
}

std::string own_command_line()
{
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!raw.empty() && raw.back() == '\0')
        raw.pop_back();
    for (char &c : raw)
        if (c == '\0')
            c = ' ';
    return raw;
}

} // namespace fusd::detail
