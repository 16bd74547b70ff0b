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
    // probe_kernel() adds the module's poll_ns setting, read at probe time.
    .differences = "a real character device node (test -c) made by the fusd module with the requested mode and "
                   "owner (udev: SUBSYSTEM==\"fusd\"); lseek/pread/pwrite fail with ESPIPE; mmap maps the "
                   "driver's shared memory (a memfd or another tmpfs file; SIGBUS once the device is removed); "
                   "ioctls: _IOC-encoded sizes (up to 16383 bytes), the terminal and I2C commands of "
                   "<linux/fusd_ioctl.h> with their real sizes, and pointer-carrying ioctls by retry "
                   "(FIONBIO, FIOASYNC, FIOCLEX, FIONCLEX are the kernel's, FIONREAD reaches the driver); "
                   "reads and writes above 128 KiB are "
                   "split into 128 KiB requests; close() does not wait for the driver; names only of "
                   "A-Z a-z 0-9 . _ - + : @ , (63 bytes); status in /sys/class/fusd/NAME/, with the classic "
                   "fusd_register()'s class and devname as its labels clazz and devname",
    .build_option = "FUSD_WITH_KERNEL",
#ifdef FUSD_WITH_KERNEL
    .probe = probe_kernel,
    .open = make_kernel_transport,
    .force_remove = force_remove_kernel,
    .clean_stale = node_goes_with_daemon, // the module removes the node when the channel closes
#endif
};

} // namespace fusd::detail
