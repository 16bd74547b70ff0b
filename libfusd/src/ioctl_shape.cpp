// SPDX-License-Identifier: MIT
//
// The shapes of ioctl commands (see IoctlShape in <fusd/fusd.hpp>), from the same table the fusd module
// expands (kernel/ioctl.c): <linux/fusd_ioctl.h>. Its sizes are the kernel's structures, so this
// file includes the kernel's headers for them and none of the C library's terminal headers.
#include <cstdint>

#include <linux/fusd_ioctl.h>

#include <fusd/fusd.hpp>

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

} // namespace fusd
