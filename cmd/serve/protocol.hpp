// SPDX-License-Identifier: MIT
//
// fusdctl serve --protocol json: ProtocolServer, one long-lived command that answers every call
// on the device through a line protocol (man/fusd-protocol.7). Every call becomes one JSON object
// on the command's stdin, kept as a ProtocolCall until the command answers it on its stdout by
// id, in any order, at any later time. The command may also publish poll readiness.
//
// The flow of one call: read(2) reaches ProtocolServer::forward, which keeps the Request under
// its id and queues {"op":"read","id":...} for the command's stdin (flush_input, never
// blocking); the command's answer line is read by on_output, parsed by on_line and given to
// answer(), which replies to the kept Request. Open files are numbered by their File id; a file
// opened under an earlier command (before a --restart) gets EIO.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "child.hpp"
#include "fusd/fusd.hpp"
#include "serve/options.hpp"
#include "serve/stopping.hpp"
#include "serve/watched_fd.hpp"

namespace fusdctl::serve {

// A call forwarded to the command and not answered yet.
struct ProtocolCall {
    fusd::Request req;
    fusd::Op op = fusd::Op::read;
    std::uint64_t file = 0;
    bool interrupted = false; // the caller has its EINTR; the command's answer is dropped
};

class ProtocolServer {
public:
    explicit ProtocolServer(const ServeConfig &config) : config_(config) {}
    ProtocolServer(const ProtocolServer &) = delete;
    ProtocolServer &operator=(const ProtocolServer &) = delete;

    fusd::Callbacks callbacks();
    void set_device(fusd::Loop &loop, fusd::Device &device) {
        loop_ = &loop;
        device_ = &device;
    }
    void start(); // the command; throws std::system_error
    // A stop signal: waiting calls and later ones are answered (end of file for reads, EIO,
    // ENXIO for opens), the command gets end of input, the files get --grace to close.
    void drain();
    void shutdown(); // after Loop::run: device gone, command ended and reaped
    // exit_failure once the command ended by itself other than with status 0 (without --restart).
    int exit_status() const { return status_; }

    // The longest answer line taken (a read of the backend's largest size, in base64, fits).
    static constexpr std::size_t kMaxLine = 64 * 1024 * 1024;

private:
    void on_open(fusd::Request req);
    void on_release(fusd::Request req);
    void on_interrupt(fusd::File &file, std::uint64_t id);
    void forward(fusd::Request req); // read, write, ioctl
    void track_and_send(fusd::Request req, std::uint64_t file, nlohmann::json msg);
    void send(const nlohmann::json &msg);
    void flush_input();
    void on_output();
    void on_line(std::string_view line);
    void answer(ProtocolCall &call, const nlohmann::json &reply); // throws std::invalid_argument
    void set_readiness(const nlohmann::json &msg);               // throws std::invalid_argument
    void bad_line(std::string_view line, const std::string &why);
    void on_exit();
    void on_timer();
    void fail_calls(bool draining);
    bool current(fusd::File &file) const;
    void forget(std::uint64_t id); // an interrupted call whose file is gone: drop its answer quietly

    const ServeConfig &config_;
    fusd::Loop *loop_ = nullptr;
    fusd::Device *device_ = nullptr;

    pid_t pid_ = -1;
    unsigned generation_ = 0; // commands started so far: files remember the one that saw their open
    WatchedFd pidfd_, stdin_, stdout_, timer_;
    std::string to_command_;   // lines not yet written to its stdin
    std::string from_command_; // its output not yet ended by a newline
    bool skipping_line_ = false; // the current line is over kMaxLine: dropped up to its newline
    std::unordered_map<std::uint64_t, ProtocolCall> calls_;
    std::unordered_map<std::uint64_t, std::shared_ptr<fusd::File>> files_; // open files, by File id
    std::unordered_set<std::uint64_t> forgotten_; // the last few forget()s, oldest first below
    std::deque<std::uint64_t> forgotten_order_;
    unsigned readiness_ = fusd::ready::readable | fusd::ready::writable; // device-wide, as last published

    bool draining_ = false;
    bool restarting_ = false;
    int status_ = 0;
    DrainTimer drain_timer_;
};

} // namespace fusdctl::serve
