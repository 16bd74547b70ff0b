// SPDX-License-Identifier: MIT
//
// The ioctls `fusdctl record` cannot pass on to the real device: their argument is a structure
// that holds pointers into the caller's memory, which the real driver would follow in fusdctl's
// address space instead. Their sizes and directions come from fusd::ioctl_shape() like any other.
#pragma once

#include <cstdint>

namespace fusdctl::recording {

bool holds_pointers(std::uint32_t command); // I2C_RDWR, I2C_SMBUS, SPI_IOC_MESSAGE(n)

} // namespace fusdctl::recording
