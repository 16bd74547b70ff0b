// SPDX-License-Identifier: MIT
//
// fusdctl run: the private /dev (a tmpfs over /dev in the run's mount namespace).
#pragma once

#include <string>

namespace fusdctl::run {

// The run's runtime directory (FUSD_RUNTIME_DIR) inside the private /dev: it goes with it.
inline constexpr const char *kRuntimeDir = "/dev/.fusd";

// Makes every mount private (nothing reaches the host), mounts a tmpfs over /dev holding the
// host's ordinary entries (host_dev_entries()), and a /proc of the run's pid namespace where the
// kernel allows it. Throws std::runtime_error.
void make_private_dev();

// True once a mount sits at path in our mount namespace (a FUSE device is ready).
bool is_mount_point(const std::string &path);

} // namespace fusdctl::run
