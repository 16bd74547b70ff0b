// SPDX-License-Identifier: MIT
//
// A daemon's cleaner: a small process (fusd-cleaner) started with the daemon's control socket,
// that removes what the daemon published (nodes, FUSE mounts, registry entries, the control
// socket) the moment the daemon dies, SIGKILL included, with no fusd command run by anyone.
//
// Why a process of its own: a killed daemon runs no code, and the kernel removes a FUSE mount
// only when told to. The kernel backend and CUSE remove their nodes themselves when the daemon's
// descriptor closes, but the registry entry and the control socket are files like any other.
//
// The link is one connected socket pair. The daemon holds one end (close-on-exec, so its
// children do not keep the cleaner waiting); the cleaner reads the other. A daemon that cleans
// up itself sends one byte first ("nothing to do"); end of file without it means it is dying.
#pragma once

#include <string>
#include <sys/types.h>

#include "fd.hpp"

namespace fusd::detail {

class Cleaner {
public:
    // Starts fusd-cleaner for this process and its control socket. Without the program (see
    // cleaner_program()) the daemon still works; what a killed one leaves is then cleaned by the
    // next `fusdctl ls`/`rm` or registration of the name, as `fusdctl doctor` says.
    Cleaner(std::uint64_t start_time, const std::string &control_socket);
    ~Cleaner(); // the daemon cleaned up itself: the cleaner exits without touching anything
    Cleaner(const Cleaner &) = delete;
    Cleaner &operator=(const Cleaner &) = delete;

    bool running() const { return bool(link_); }

private:
    Fd link_;
    pid_t pid_ = -1;
};

// Where fusd-cleaner is: $FUSD_CLEANER if set, else this build tree's program if it exists, else
// the installed one. Empty with `why` set when there is none.
std::string cleaner_program(std::string &why);

} // namespace fusd::detail
