// SPDX-License-Identifier: MIT
//
// fusdctl serve: WatchedFd, an owned descriptor and its watch in the fusd::Loop, let go in one
// place (reset: unwatch if watched, then close).
#pragma once

#include <cstdint>

#include "fd.hpp"
#include "fusd/fusd.hpp"

namespace fusdctl::serve {

class WatchedFd {
public:
    WatchedFd() = default;
    WatchedFd(const WatchedFd &) = delete;
    WatchedFd &operator=(const WatchedFd &) = delete;
    // Closes without unwatching: it may run while the Loop itself is being destroyed (an open
    // file's state), so its owner unwatches first, through reset() or unwatch(), while the
    // Loop lives.
    ~WatchedFd() = default;

    int get() const { return fd_.get(); }
    explicit operator bool() const { return static_cast<bool>(fd_); }
    bool watched() const { return loop_ != nullptr; }

    void watch(fusd::Loop &loop, std::uint32_t events, fusd::Loop::FdHandler handler);
    void unwatch(); // stop watching, keep the descriptor
    // Unwatches, closes, and owns fd instead (none by default).
    void reset(fusd::Fd fd = fusd::Fd{});

private:
    fusd::Fd fd_;
    fusd::Loop *loop_ = nullptr; // the Loop watching fd_, while one does
};

} // namespace fusdctl::serve
