// SPDX-License-Identifier: MIT
//
// fusdctl: starting the commands of `fusdctl serve` (Boost.Process, argv exec, no shell).
#pragma once

#include <string>
#include <system_error>
#include <vector>

#include <sys/types.h>

#include "fd.hpp"

namespace fusdctl {

// A command that cannot be started: code() is the errno, what() the whole sentence.
class CommandError : public std::system_error {
public:
    CommandError(int errnum, std::string message)
        : std::system_error(errnum, std::generic_category()), message_(std::move(message)) {}
    const char *what() const noexcept override { return message_.c_str(); }

private:
    std::string message_;
};

// The command after `--`, resolved once at startup.
struct CommandSpec {
    std::string path;              // the executable, absolute or as given when it has a '/'
    std::vector<std::string> argv; // argv[0] as the user typed it
};

// Finds the executable the way execvp would (PATH search for a bare name). Throws
// CommandError naming the command and the reason.
CommandSpec resolve_command(const std::vector<std::string> &words);

// One started command. The descriptors are the parent's ends: non-blocking, close-on-exec.
struct Child {
    pid_t pid = -1;
    fusd::Fd pidfd;       // readable once the process has exited (not yet reaped)
    fusd::Fd stdin_pipe;  // write end of the command's stdin
    fusd::Fd stdout_pipe; // read end of the command's stdout
};

// Starts the command in its own process group with the given extra environment entries
// ("NAME=value", replacing any inherited ones of the same name), stdin and stdout on fresh
// pipes (or both on stdio_fd when it is given: no pipes then), stderr on stderr_fd (-1: inherited). Signal mask and SIGPIPE reset; every other
// descriptor closed; killed with SIGKILL if this process dies. Throws std::system_error
// (the exec errno) when it cannot be started.
Child spawn_command(const CommandSpec &command, const std::vector<std::string> &extra_env, int stderr_fd,
                    int stdio_fd = -1);

// Sends sig to the command's process group (and so to its children that stayed in it).
void signal_group(pid_t pid, int sig);

// Reaps an exited (or about to exit) command; returns its wait status.
int reap(pid_t pid);

// "exited with status 3", "was killed by SIGTERM": a wait status as the end of a sentence.
std::string describe_status(int status);

} // namespace fusdctl
