// SPDX-License-Identifier: MIT
//
// What fusd-stress and fusd-soak share: "--name VALUE" options, a daemon forked as a child that
// reports "ready" on a pipe, and the readings of a process they make (descriptors, mounts).
#pragma once

#include <functional>
#include <string>
#include <sys/types.h>

namespace fusd::bench {

// Walks argv as "--name VALUE" pairs. on_option(name, value, number) says whether it takes the
// option; number is VALUE as a positive integer, or 0 when it is not one. False (after printing
// `usage` to stderr) on a lone name or an option not taken.
bool parse_options(int argc, char **argv, const std::string &usage,
                   const std::function<bool(const std::string &name, const std::string &value, long number)> &on_option);

// Forks a child that runs `daemon(report_fd)`, which must write one line to report_fd: "ready",
// or why not, and never return. Returns the child once it said "ready"; else kills it, sets
// `error` and returns -1.
pid_t fork_daemon(const std::function<void(int report_fd)> &daemon, std::string &error);

// Writes all of s; false on any failure or a write of 0 bytes.
bool write_all(int fd, const std::string &s);
// How many descriptors a process has open (/proc/PID/fd), or -1.
long open_fds(pid_t pid);
// Whether something is mounted at exactly `path` (this process's view).
bool mounted(const std::string &path);

} // namespace fusd::bench
