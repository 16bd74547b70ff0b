// SPDX-License-Identifier: MIT
//
// What the FUSE backend's two transports (libfuse's session, fuse_transport.cpp, and FUSE over
// io_uring, uring_transport.cpp) share about the one-file FUSE mount over the device's /dev path.
#pragma once

#include <string>
#include <sys/types.h>
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
// The start of a transport's node: refuses a caller who may not mount FUSE here (not root, and no
// user namespace of its own: see mount_right.hpp), then creates the empty regular file the mount
// goes over (mode 0600; an existing path is refused). Returns its inode. Throws fusd::Error.
ino_t make_placeholder(const std::string &path);
// Mounts FUSE over `path` through `fuse_fd` (an open /dev/fuse) as the caller's effective ids,
// and records the connection's major:minor (0:0 if unseen). Throws fusd::Error.
void mount_fuse_over(const std::string &path, int fuse_fd, unsigned &major, unsigned &minor);
// A transport's unmount of its own node: its mount at `path` (connection major:minor) only, since
// after a forced removal somebody else may serve this name now; then its placeholder file (inode
// `placeholder_ino`, 0 for none) once nothing is mounted over it.
void remove_own_mount(const std::string &path, unsigned major, unsigned minor, ino_t placeholder_ino);

} // namespace fusd::detail
