// fd.hpp - Fd: one owned file descriptor, closed when its owner goes.
//
// Move-only. Every descriptor that libfusd or fusdctl owns lives in one of these, so that no
// path (an early return, an exception, a phase change) can leak or double-close it. A raw int
// remains right where a descriptor is only borrowed (passed to a call, watched by epoll).
#pragma once

#include <unistd.h>

#include <utility>

namespace fusd {

class Fd {
  public:
    Fd() noexcept = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd &&other) noexcept : fd_(other.release()) {}
    Fd &operator=(Fd &&other) noexcept {
        reset(other.release());
        return *this;
    }
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;
    ~Fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

    // Gives up ownership: the caller closes what it gets.
    int release() noexcept { return std::exchange(fd_, -1); }

    // Closes what it owns (errors from close() are not actionable here) and owns fd instead.
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0 && fd_ != fd)
            ::close(fd_);
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

} // namespace fusd
