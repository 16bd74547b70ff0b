// SPDX-License-Identifier: MIT
#include "serve/stopping.hpp"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <utility>

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common.hpp"

namespace fusdctl::serve {

void DrainTimer::start(fusd::Loop &loop, double grace, std::function<bool()> done) {
    loop_ = &loop;
    done_ = std::move(done);
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(grace));
    if (check())
        return;
    timer_.reset(fusd::Fd{::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)});
    if (!timer_) {
        loop_->stop();
        return;
    }
    itimerspec t{};
    t.it_value.tv_nsec = 10 * 1000 * 1000;
    t.it_interval.tv_nsec = 10 * 1000 * 1000;
    ::timerfd_settime(timer_.get(), 0, &t, nullptr);
    timer_.watch(*loop_, EPOLLIN, [this](std::uint32_t) {
        std::uint64_t ticks;
        (void)!::read(timer_.get(), &ticks, sizeof ticks);
        check();
    });
}

bool DrainTimer::check() {
    if (done_() || std::chrono::steady_clock::now() >= deadline_) {
        loop_->stop(); // the server's shutdown() cancels the timer
        return true;
    }
    return false;
}

void remove_if_registered(fusd::Loop *loop, fusd::Device *&device, std::string_view path) {
    if (loop && device) {
        auto devices = loop->devices();
        if (std::find(devices.begin(), devices.end(), device) != devices.end()) {
            try {
                loop->remove(*device);
            } catch (const std::exception &e) {
                error("{}: unregistering: {}", path, e.what());
            }
        }
    }
    device = nullptr;
}

} // namespace fusdctl::serve
