// SPDX-License-Identifier: MIT
//
// What the FUSE backend's two transports (libfuse's session, fuse_transport.cpp, and FUSE over
// io_uring, uring_transport.cpp) share about the one-file FUSE mount over the device's /dev path.
#pragma once

#include <string>
#include <vector>

namespace fusd::detail {

inline constexpr const char *kFuseFsType = "fuse.fusd";
inline constexpr double kFuseAttrTimeout = 86400.0; // attributes change only through us

struct MountEntry {
    unsigned major = 0, minor = 0;
    std::string mount_point, fs_type;
};

// The mounts at exactly `path`, oldest first (/proc/self/mountinfo).
std::vector<MountEntry> mounts_at(const std::string &path);
// Aborts a FUSE connection through fusectl: every caller waiting on it is released at once.
void abort_connection(unsigned minor);

} // namespace fusd::detail
