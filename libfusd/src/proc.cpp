// SPDX-License-Identifier: MIT
// What the core reads from /proc: a caller's command name (for traces), our own command line (for
// fusdctl ls).
#include <cstdio>
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
