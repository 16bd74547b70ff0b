// SPDX-License-Identifier: MIT
//
// Whether this process may mount FUSE over a node itself (mount(2), no fusermount3).
#pragma once

namespace fusd::detail {

// True for root, and for a process holding CAP_SYS_ADMIN in the user namespace that owns its
// mount namespace (a process started by `fusdctl run`, or any unprivileged user namespace):
// the kernel lets such a process mount FUSE there (Linux 4.18 and later).
bool may_mount_fuse();

} // namespace fusd::detail
