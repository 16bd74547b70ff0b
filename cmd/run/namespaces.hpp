// SPDX-License-Identifier: MIT
//
// fusdctl run: the namespaces and the run's init process.
#pragma once

#include <functional>

namespace fusdctl::run {

// For a user who is not root, enters a new user namespace mapping only that user's uid and gid
// onto themselves (root needs none). Throws std::runtime_error saying why the kernel refused.
void enter_namespaces();

// Forks the init of a new pid namespace, which enters a mount namespace of its own, runs body and exits
// with its status; returns that
// status (128+signal if init was killed). The init dies with us (PR_SET_PDEATHSIG), and
// everything in its namespace dies with it. SIGTERM, SIGHUP, SIGINT and SIGQUIT sent to us by a
// process are passed on to init; from the terminal they reach PROGRAM directly and are not
// passed again.
int run_init(const std::function<int()> &body);

// Passes SIGTERM, SIGHUP, SIGINT and SIGQUIT sent by a process (not the terminal) on to *target.
void forward_signals_to(const volatile int *target);

} // namespace fusdctl::run
