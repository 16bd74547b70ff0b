// SPDX-License-Identifier: MIT
#include "recording/pointer_ioctls.hpp"

#include <linux/i2c-dev.h>
#include <linux/spi/spidev.h>

namespace fusdctl::recording {

bool holds_pointers(std::uint32_t command) {
    if (command == I2C_RDWR || command == I2C_SMBUS)
        return true;
    // SPI_IOC_MESSAGE(n): one number per transfer count, all of type SPI_IOC_MAGIC and nr 0
    return _IOC_TYPE(command) == SPI_IOC_MAGIC && _IOC_NR(command) == 0 && _IOC_DIR(command) == _IOC_WRITE;
}

} // namespace fusdctl::recording
