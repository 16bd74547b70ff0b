// SPDX-License-Identifier: MIT
//
// fusdctl serve --handler SCRIPT: HandlerServer, every call on the device answered by one run of
// SCRIPT (the nbdkit sh style): `SCRIPT open`, `SCRIPT read SIZE`, `SCRIPT write SIZE` (the data
// on its stdin), `SCRIPT ioctl NUMBER SIZE` (the input on its stdin, the output on its stdout),
// `SCRIPT release`. Its exit status is the answer: 0 success, 1 with an errno name on stderr
// that errno, 3 "not implemented" (the default of libfusd's Callbacks). Each open file has a
// state directory (FUSD_STATE_DIR), made before `SCRIPT open` and removed after `SCRIPT release`.
//
// The flow of one call: read(2) reaches HandlerServer::run, which starts the script (spawn_command,
// child.cpp) as a HandlerCall that owns its pipes and pidfd in the Loop; the loop never waits on
// it. Its exit (pidfd) reaches HandlerServer::complete, which answers the kept Request from the
// exit status, stdout and stderr. An interrupted caller's script is killed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "fusd/fusd.hpp"
#include "serve/options.hpp"
#include "serve/stopping.hpp"
#include "serve/watched_fd.hpp"

namespace fusdctl::serve {

class HandlerServer;

// One run of the script for one call.
struct HandlerCall {
    fusd::Request req;
    fusd::Op op = fusd::Op::open;
    std::uint64_t id = 0;  // the Request's, for interrupt
    std::string state_dir; // open and release: the file's
    std::size_t size = 0;  // read, write, ioctl: the call's size
    pid_t pid = -1;
    WatchedFd pidfd, input, output, errors;
    std::string to_write; // its stdin: a write's data, an ioctl's input
    std::size_t written = 0;
    std::string out, err;          // what it printed (out up to size + 1, err up to 64 KiB)
    bool interrupted = false;      // its caller has EINTR: killed, the answer dropped
};

class HandlerServer {
public:
    explicit HandlerServer(const ServeConfig &config) : config_(config) {}
    HandlerServer(const HandlerServer &) = delete;
    HandlerServer &operator=(const HandlerServer &) = delete;

    fusd::Callbacks callbacks();
    void set_device(fusd::Loop &loop, fusd::Device &device) {
        loop_ = &loop;
        device_ = &device;
    }
    // A stop signal: later calls are answered at once (end of file, EIO, ENXIO for opens), running
    // scripts and open files get --grace to end, then the loop stops.
    void drain();
    void shutdown(); // after Loop::run: device gone, scripts ended and reaped, state removed

private:
    void on_open(fusd::Request req);
    void on_release(fusd::Request req);
    void on_interrupt(std::uint64_t id);
    // Starts the script for req with these arguments after the operation's name.
    void run(fusd::Request req, std::vector<std::string> args, std::string input, std::string state_dir);
    void feed(HandlerCall &call);
    void collect(HandlerCall &call);
    void on_exit(HandlerCall &call);
    void complete(HandlerCall &call, int status);
    void bury(HandlerCall &call); // destroy it at the next dispatch
    bool idle() const;

    const ServeConfig &config_;
    fusd::Loop *loop_ = nullptr;
    fusd::Device *device_ = nullptr;
    std::unordered_map<HandlerCall *, std::unique_ptr<HandlerCall>> calls_;
    std::vector<std::unique_ptr<HandlerCall>> graveyard_;
    std::vector<std::string> state_dirs_; // of the open files: removed at shutdown if still there
    bool draining_ = false;
    DrainTimer drain_timer_;
};

} // namespace fusdctl::serve
