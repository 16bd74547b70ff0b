// SPDX-License-Identifier: MIT
//
// The CUSE backend's row in the table of backends (backend.hpp); its transport is
// cuse_transport.cpp, built unless FUSD_WITH_CUSE is OFF (then the row only says so).
#include "backend.hpp"

namespace fusd::detail {

constinit const BackendRow cuse_backend{
    .backend = Backend::cuse,
    .name = "cuse",
    .differences = "a real character device node (test -c, a dynamic major) made by CUSE; the offset is always "
                   "0: lseek() succeeds and returns 0 and pread/pwrite ignore the offset (no ESPIPE); mmap fails with ENODEV; "
                   "ioctls: _IOC-encoded sizes, the terminal and I2C commands of <linux/fusd_ioctl.h> with their "
                   "real sizes, and pointer-carrying ioctls by retry (unrestricted CUSE ioctls; FIONREAD "
                   "reaches the driver); reads and writes "
                   "arrive in chunks of at most 128 KiB; the last close() of a file waits, without interruption, for "
                   "the driver's release (the kernel's cuse_release() is synchronous): a stopped driver holds it "
                   "until it answers or dies or `rm --force` releases it; a read is direct I/O into the caller's "
                   "memory, so, as with O_DIRECT (open(2), NOTES), a read in flight while another thread of the "
                   "caller forks can leave its data in the child's copy of the page; after "
                   "`rm --force` of a stopped daemon the name stays taken (/sys/class/cuse) until that "
                   "daemon exits; the classic fusd_register()'s class and devname are checked, then kept nowhere",
    .build_option = "FUSD_WITH_CUSE",
#ifdef FUSD_WITH_CUSE
    .probe = probe_cuse,
    .open = make_cuse_transport,
    .force_remove = force_remove_cuse,
    .clean_stale = node_goes_with_daemon, // the kernel removes the node when /dev/cuse closes
#endif
};

} // namespace fusd::detail
