// SPDX-License-Identifier: MIT
//
// fusdctl serve: Session, one running command and the calls waiting on it (Pending), with the
// command's pipes, its pidfd and its timer watched in the Loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>

#include "child.hpp"
#include "fusd/fusd.hpp"

namespace fusdctl::serve {

class Server;

// A call kept until it can be answered.
struct Pending {
    fusd::Request req;
    fusd::File *file = nullptr;
    std::size_t done = 0; // write: bytes already in the pipe
};

// One running command and the calls waiting on it. Per open: one per open file; shared: one.
class Session {
public:
    Session(Server &server, bool shared) : server_(server), shared_(shared) {}
    ~Session() { close_fds(false); }
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;

    void attach(const Child &child);
    void set_access(bool readable, bool writable) {
        discard_output_ = !readable;
        no_input_ = !writable;
    }
    void read(fusd::Request req);
    void write(fusd::Request req);
    void interrupt(std::uint64_t id);
    void drop_file(fusd::File *file); // its pending calls go (release)
    void close_file();                // per open: the file is released
    unsigned readiness() const;
    void publish();
    bool finished() const { return finished_; }
    pid_t pid() const { return child_.pid; }
    bool running() const { return child_.pid > 0 && !exited_; }

    // Shutdown, outside the loop: stop watching, answer nothing more, end the command.
    void begin_shutdown();
    void end_pending();
    int pidfd() const { return child_.pidfd; }
    void kill_group(int sig) {
        if (running())
            signal_group(child_.pid, sig);
    }
    void reap_now();
    void close_fds(bool unwatch = true);
    bool shutting_down() const { return shutting_down_; }

    fusd::File *file = nullptr; // per open: the file while it is open

private:
    std::size_t buffered() const { return wpos_ - rpos_; }
    bool eof_visible() const { return out_eof_ && !awaiting_restart(); }
    bool awaiting_restart() const;
    void fill();
    void serve_reads();
    void flush_writes();
    void answer_read(fusd::Request &req);
    void update_watches();
    void stdin_broken();
    void on_stdout(std::uint32_t events);
    void on_stdin(std::uint32_t events);
    void on_exit();
    void on_timer();
    void arm_timer(double seconds);
    void finish();

    Server &server_;
    bool shared_;
    Child child_;
    bool exited_ = false;
    bool closed_ = false;   // per open: released
    bool finished_ = false; // nothing left to do: can be destroyed
    bool shutting_down_ = false;
    int status_ = 0;

    std::unique_ptr<std::byte[]> buf_;
    std::size_t rpos_ = 0, wpos_ = 0;
    bool out_eof_ = false;
    bool out_watched_ = false;
    bool discard_output_ = false; // per open, write-only
    bool no_input_ = false;       // per open, read-only

    bool in_full_ = false;
    bool in_watched_ = false;

    bool pid_watched_ = false;
    int timer_fd_ = -1;
    int kill_phase_ = 0; // after close: 0 grace, 1 SIGTERM sent, 2 SIGKILL sent
    bool restart_pending_ = false;

    std::deque<Pending> reads_, writes_;
    unsigned last_ready_ = ~0U;
};

} // namespace fusdctl::serve
