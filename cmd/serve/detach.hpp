// SPDX-License-Identifier: MIT
//
// fusdctl serve: how the serving process reports its start (Reporter: the ready pipe of
// --detach, or stderr), its --pidfile, and --detach itself (fork, setsid, wait for the report).
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "fd.hpp"

#include "serve/options.hpp"

namespace fusdctl::serve {

// Where the serving process says how its start went: the detaching parent's pipe, or stderr.
class Reporter {
public:
    Reporter() = default; // stderr
    explicit Reporter(fusd::Fd ready_pipe) : ready_pipe_(std::move(ready_pipe)) {}

    int fail(const std::string &message); // returns exit_failure
    void ready();

private:
    fusd::Fd ready_pipe_; // write end; closed once the report is written
};

// Writes our pid to path (through a temporary file and rename). False with why on failure.
bool write_pidfile(const std::string &path, std::string &why);

// --detach: forks before any Loop or thread exists; the child runs serve (its stdio on
// /dev/null, stderr on the log) and the parent returns once the node is ready, having printed
// the child's pid, or once the start failed.
int serve_detached(ServeConfig &config, const std::function<int(ServeConfig &, Reporter)> &serve);

} // namespace fusdctl::serve
