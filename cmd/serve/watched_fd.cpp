// SPDX-License-Identifier: MIT
//
// fusdctl serve: WatchedFd (see watched_fd.hpp).
#include "serve/watched_fd.hpp"

#include <utility>

namespace fusdctl::serve {

void WatchedFd::watch(fusd::Loop &loop, std::uint32_t events, fusd::Loop::FdHandler handler) {
    loop.watch(fd_.get(), events, std::move(handler));
    loop_ = &loop;
}

void WatchedFd::unwatch() {
    if (loop_)
        loop_->unwatch(fd_.get());
    loop_ = nullptr;
}

void WatchedFd::reset(fusd::Fd fd) {
    unwatch();
    fd_ = std::move(fd);
}

} // namespace fusdctl::serve
