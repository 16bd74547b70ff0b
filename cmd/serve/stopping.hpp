// SPDX-License-Identifier: MIT
//
// fusdctl serve: the two steps every server (Server, ProtocolServer, HandlerServer) takes on its
// way out. drain() waits for the callers to close, at most --grace, through a DrainTimer; then
// shutdown() takes the device away with remove_if_registered() before it ends its commands.
#pragma once

#include <chrono>
#include <functional>
#include <string_view>

#include "fusd/fusd.hpp"
#include "serve/watched_fd.hpp"

namespace fusdctl::serve {

// Stops a Loop once `done` holds or `grace` seconds have passed: checked at once, then every 10 ms.
class DrainTimer {
public:
    void start(fusd::Loop &loop, double grace, std::function<bool()> done);
    void cancel() { timer_.reset(); }

private:
    bool check();

    fusd::Loop *loop_ = nullptr;
    std::function<bool()> done_;
    std::chrono::steady_clock::time_point deadline_;
    WatchedFd timer_;
};

// Unregisters `device` unless it is gone already (fusdctl rm, the backend's end: then the
// pointer dangles and only the Loop's list says so), logging a failure under `path`.
// `device` is null afterwards.
void remove_if_registered(fusd::Loop *loop, fusd::Device *&device, std::string_view path);

} // namespace fusdctl::serve
