// SPDX-License-Identifier: MIT
//
// How many bytes an ioctl's argument points to, for `fusdctl record` to pass it on to the real
// device: from the command's _IOC encoding, or for legacy numbers (the terminal ioctls, I2C's)
// from the table the fusd module and libfusd use, <linux/fusd_ioctl.h>.
#pragma once

#include <cstdint>

namespace fusdctl::recording {

struct ArgumentShape {
    std::uint32_t size = 0; // 0: the argument is a value
    bool holds_pointers = false; // I2C_RDWR, I2C_SMBUS: what it points to cannot be passed on
};

ArgumentShape argument_shape(std::uint32_t command);

} // namespace fusdctl::recording
