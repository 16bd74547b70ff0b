// SPDX-License-Identifier: MIT
//
// The FUSE backend's row in the table of backends (backend.hpp); its transport is
// fuse_transport.cpp. Always built: every Linux with FUSE can use it, as root.
#include "backend.hpp"

namespace fusd::detail {

constinit const BackendRow fuse_backend{
    .backend = Backend::fuse,
    .name = "fuse",
    .differences = "the node is a regular file with a FUSE mount over it: stat(2) shows a regular file "
                   "(test -c fails, isatty() is 0); mmap: MAP_SHARED fails with ENODEV, MAP_PRIVATE maps an empty "
                   "file (SIGBUS on access); ioctls: _IOC-encoded sizes only (the kernel restricts a "
                   "regular file's ioctls): the terminal and I2C commands of <linux/fusd_ioctl.h> fail with "
                   "ENOTTY and pointer-carrying ioctls by retry with EOPNOTSUPP; FIONREAD and "
                   "FIONBIO are answered by the kernel; lseek/pread fail with ESPIPE; writes from different "
                   "opens are serialized by the kernel (a write the driver holds back delays other openers' "
                   "writes); the classic fusd_register()'s class and devname are checked, then kept nowhere",
    .build_option = "",
    .probe = probe_fuse,
    .open = make_fuse_transport,
    .force_remove = force_remove_fuse,
    .clean_stale = clean_stale_fuse,
};

} // namespace fusd::detail
