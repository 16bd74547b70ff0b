// SPDX-License-Identifier: MIT
//
// fusdctl: helpers shared by the subcommands.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <fmt/core.h>

namespace CLI {
class App;
}

namespace fusdctl {

// Exit statuses of every subcommand.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1; // runtime failure
inline constexpr int exit_usage = 2;   // bad command line

// A subcommand: its CLI11 node and what runs it once the command line is parsed.
struct Command {
    CLI::App *app = nullptr;
    std::function<int()> run;
};

Command add_serve(CLI::App &app);
Command add_ls(CLI::App &app);
Command add_trace(CLI::App &app);
Command add_rm(CLI::App &app);
Command add_doctor(CLI::App &app);
Command add_record(CLI::App &app);
Command add_replay(CLI::App &app);
Command add_run(CLI::App &app);

// fusdctl's whole command line, as main() runs it.
int fusdctl_main(int argc, char **argv);

// A usage error found after parsing (bad --mode, unknown user...): printed, exit status 2.
struct UsageError {
    std::string message;
};

// "fusdctl: <message>" on stderr.
void print_error(std::string_view message);

template <typename... Args>
void error(fmt::format_string<Args...> format, Args &&...args) {
    print_error(fmt::format(format, std::forward<Args>(args)...));
}

// "EAGAIN" for EAGAIN; "E123" when the C library has no name for it.
std::string errno_name(int errnum);
// The errno called `name` (EAGAIN, EWOULDBLOCK, ENOTTY...), as drivers and files spell them;
// 0 when no errno has that name.
int errno_by_name(std::string_view name);

// "42s", "3m07s", "2h05m", "4d03h".
std::string format_uptime(double seconds);

// The text of a caught exception, whatever its type.
std::string what_of(std::exception_ptr error);

// Ignore SIGPIPE so that writes to a closed pipe fail with EPIPE instead of killing us.
void ignore_sigpipe();

// Writes all of `text` to fd (retrying on EINTR and short writes). False on failure.
bool write_all(int fd, std::string_view text);

} // namespace fusdctl
