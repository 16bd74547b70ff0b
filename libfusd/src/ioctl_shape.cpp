// SPDX-License-Identifier: MIT
//
// The shapes of ioctl commands (see IoctlShape in <fusd/fusd.hpp>), from the same table the fusd module
// expands (kernel/ioctl.c): <linux/fusd_ioctl.h>. Its sizes are the kernel's structures, so this
// file includes the kernel's headers for them and none of the C library's terminal headers.
#include <cerrno>
#include <cstdint>

#include <linux/fusd_ioctl.h>

#include <fusd/fusd.hpp>

#include "core.hpp"

namespace fusd {

namespace {

struct Entry {
    std::uint32_t command;
    unsigned dir;
    std::uint32_t size;
};

#define FUSD_SHAPE(c, d, s) Entry{std::uint32_t(c), unsigned(d), std::uint32_t(s)},
constexpr Entry kTable[] = {FUSD_IOCTL_TABLE(FUSD_SHAPE)};
#undef FUSD_SHAPE

} // namespace

IoctlShape ioctl_shape(std::uint32_t command)
{
    IoctlShape shape{_IOC_DIR(command), _IOC_SIZE(command), false};
    if (shape.dir == _IOC_NONE)
        shape.size = 0;
    if (command >> _IOC_SIZESHIFT) // an _IOC number: it says it all
        return shape;
    for (const Entry &e : kTable)
        if (e.command == command)
            return {e.dir, e.size, true};
    return shape;
}

namespace detail {

IoctlPlan plan_libfuse_ioctl(std::uint32_t command, bool compat, bool unrestricted, std::size_t in_bufsz,
                             std::size_t out_bufsz)
{
    // 32-bit compat ioctls are not offered.
    if (compat)
        return {IoctlPlan::Action::refuse, ENOSYS, false, false, 0};
    const IoctlShape shape = ioctl_shape(command);
    if (unrestricted) {
        // CUSE, unrestricted: every call comes first with no data, and we ask the kernel for
        // the shape's bytes at the argument, as the fusd module copies them by itself. A call
        // that comes back with data is that retry, or one the driver asked for.
        if (in_bufsz == 0 && out_bufsz == 0 && shape.size != 0)
            return {IoctlPlan::Action::retry, 0, bool(shape.dir & _IOC_WRITE), bool(shape.dir & _IOC_READ),
                    shape.size};
    } else if (shape.legacy && shape.size != 0) {
        // FUSE, restricted: the kernel copies only what an _IOC number says (fs/fuse/ioctl.c), so
        // a legacy command would reach the driver without its argument's bytes.
        return {IoctlPlan::Action::refuse, ENOTTY, false, false, 0};
    }
    return {};
}

} // namespace detail

} // namespace fusd
