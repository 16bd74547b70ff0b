// SPDX-License-Identifier: MIT
//
// The kernel backend's row in the table of backends (backend.hpp): the fusd module's
// /dev/fusd; its transport is kernel_transport.cpp, built unless FUSD_WITH_KERNEL is OFF (then
// the row only says so).
#include "backend.hpp"

namespace fusd::detail {

constinit const BackendRow kernel_backend{
    .backend = Backend::kernel,
    .name = "kernel",
    // What a user sees differently is stated by probe_kernel(), which adds the module's poll_ns
    // setting read at probe time.
    .differences = "",
    .build_option = "FUSD_WITH_KERNEL",
#ifdef FUSD_WITH_KERNEL
    .probe = probe_kernel,
    .open = make_kernel_transport,
    .force_remove = force_remove_kernel,
    .clean_stale = node_goes_with_daemon, // the module removes the node when the channel closes
#endif
};

} // namespace fusd::detail
