// SPDX-License-Identifier: MIT
//
// The argument sizes of ioctl commands (see ioctl_shape.hpp). This file includes the kernel's
// headers for the table's structures and none of the C library's terminal headers.
#include "recording/ioctl_shape.hpp"

#include <linux/fusd_ioctl.h>

namespace fusdctl::recording {

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

ArgumentShape argument_shape(std::uint32_t command) {
    if (command >> _IOC_SIZESHIFT) // an _IOC number says it all
        return {_IOC_DIR(command) == _IOC_NONE ? 0u : std::uint32_t(_IOC_SIZE(command)), false};
    for (const Entry &e : kTable)
        if (e.command == command)
            return {e.dir == _IOC_NONE ? 0u : e.size, command == I2C_RDWR || command == I2C_SMBUS};
    return {};
}

} // namespace fusdctl::recording
