// SPDX-License-Identifier: MIT
// The clocks the core reads: CLOCK_MONOTONIC for latencies, CLOCK_REALTIME for what people see.
#include <time.h>

#include "core.hpp"

namespace fusd::detail {

std::int64_t monotonic_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t realtime_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

} // namespace fusd::detail
