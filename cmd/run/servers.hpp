// SPDX-License-Identifier: MIT
//
// fusdctl run: starting each device's server inside the namespaces.
#pragma once

#include <sys/types.h>

#include "run/spec.hpp"

namespace fusdctl::run {

// Forks a server for spec: fusdctl's own main() on spec.server_argv(), without exec, so that it
// keeps the capabilities the user namespace gave us (an exec as a uid other than 0 drops them,
// and the FUSE mount needs CAP_SYS_ADMIN). Its commands are exec'ed and so run without any.
// Returns once the device is mounted; throws std::runtime_error if its server exits first.
pid_t start_server(const DeviceSpec &spec);

} // namespace fusdctl::run
