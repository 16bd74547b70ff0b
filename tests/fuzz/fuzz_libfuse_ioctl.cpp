// SPDX-License-Identifier: MIT
// The FUSE and CUSE transports' own decoding of an ioctl request (plan_libfuse_ioctl,
// libfusd/src/ioctl_shape.cpp): the command number and sizes come from any caller of the device.
// A retry asks for at most what an _IOC number can say (16 KiB - 1) and only on CUSE's
// unrestricted ioctls; compat calls are refused.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    struct {
        std::uint32_t command;
        std::uint8_t flags;
        std::uint32_t in_size, out_size;
    } in{};
    std::memcpy(&in, data, std::min(size, sizeof in));
    using fusd::detail::IoctlPlan;
    bool compat = in.flags & 1, unrestricted = in.flags & 2;
    IoctlPlan plan = fusd::detail::plan_libfuse_ioctl(in.command, compat, unrestricted, in.in_size, in.out_size);
    if (compat && (plan.action != IoctlPlan::Action::refuse || plan.error != ENOSYS))
        std::abort();
    if (plan.action == IoctlPlan::Action::retry &&
        (!unrestricted || plan.size == 0 || plan.size > 16383 || (!plan.in && !plan.out) || in.in_size || in.out_size))
        std::abort();
    if (plan.action == IoctlPlan::Action::refuse && plan.error == 0)
        std::abort();
    return 0;
}
