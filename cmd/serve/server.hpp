// SPDX-License-Identifier: MIT
//
// fusdctl serve: Server, the device's callbacks over the Sessions (one per open file, or one
// shared), the drain on a stop signal, and the shutdown that ends and reaps every command.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "fusd/fusd.hpp"
#include "serve/options.hpp"
#include "serve/session.hpp"
#include "serve/tty.hpp"
#include "serve/stopping.hpp"
#include "serve/watched_fd.hpp"

namespace fusdctl::serve {

// The device's side: routes each call to its Session, starts the commands, and owns the
// Sessions until they are buried (destroyed at the next dispatch, never inside their own call).
class Server {
public:
    explicit Server(const ServeConfig &config) : config_(config) {}

    fusd::Callbacks callbacks();
    void set_device(fusd::Loop &loop, fusd::Device &device) {
        loop_ = &loop;
        device_ = &device;
    }
    void start_tty();    // --tty: the terminal and its channel; throws std::system_error
    void start_shared(); // throws std::system_error
    void shutdown();     // after Loop::run: device gone, commands ended and reaped
    // Callers still waiting get a clean answer before the node goes: end of file for readers,
    // EIO for writers.
    void end_pending() {
        for (auto &[p, s] : sessions_)
            s->end_pending();
    }
    // A stop signal: answer every waiting and later call (end of file, EIO, ENXIO for opens),
    // give the open files up to the grace period to close (so that their close(2) succeeds),
    // then stop the loop.
    void drain();

    fusd::Loop &loop() { return *loop_; }
    fusd::Device *device() { return device_; }
    const ServeConfig &config() const { return config_; }
    void bury(Session *session); // destroy it at the next dispatch
    bool restart_shared(Session &session);

private:
    Session *session_of(fusd::File &file) {
        auto &state = file.state();
        return state ? static_cast<Session *>(state.get()) : nullptr;
    }
    // The command, with env ("NAME=value") added to ours; stderr on --log when given.
    Child start_command(const std::vector<std::string> &env); // throws std::system_error
    void on_open(fusd::Request req);
    void on_release(fusd::Request req);
    void on_ioctl(fusd::Request req);
    std::vector<std::string> command_env(std::vector<std::string> env) const;

    const ServeConfig &config_;
    fusd::Loop *loop_ = nullptr;
    fusd::Device *device_ = nullptr;
    std::unordered_map<Session *, std::shared_ptr<Session>> sessions_;
    std::shared_ptr<Session> shared_;
    std::unique_ptr<TtyLine> tty_; // --tty
    std::vector<std::shared_ptr<Session>> graveyard_;
    bool burying_ = false;
    bool draining_ = false;
    DrainTimer drain_timer_;
};

} // namespace fusdctl::serve
