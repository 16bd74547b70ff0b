// SPDX-License-Identifier: MIT
//
// fusdctl serve: Session, one running command and the calls waiting on it (Pending). It owns
// the command's pipes, its pidfd and its timer (each a WatchedFd in the Loop) and the output
// not yet read (OutputBuffer); its Phase says where the command is in its life.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "child.hpp"
#include "fusd/fusd.hpp"
#include "serve/output_buffer.hpp"
#include "serve/watched_fd.hpp"

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
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;

    // Takes over a started command (the first, or a restart of the shared one).
    void attach(Child child);
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
    // --tty: what the command wrote that is not read yet (FIONREAD), and dropping it (TCFLSH).
    std::size_t unread_output();
    void discard_output();
    void publish();
    bool finished() const { return phase_ == Phase::finished; }
    bool shutting_down() const { return phase_ == Phase::shut_down; }
    // The command has not been reaped yet (its pidfd is held until then).
    bool running() const { return static_cast<bool>(pidfd_); }

    // Shutdown, outside the loop: stop watching, answer nothing more, end the command.
    void begin_shutdown();
    void end_pending();
    int pidfd() const { return pidfd_.get(); }
    void kill_group(int sig) {
        if (running())
            signal_group(pid_, sig);
    }
    void reap_now();
    void close_fds();

    fusd::File *file = nullptr; // per open: the file while it is open

private:
    enum class Phase {
        running,     // the command runs
        exited,      // it ended; what it wrote stays readable
        restarting,  // shared --restart: it ended; the next starts after --restart-delay
        grace,       // per open, released: it has --grace to end on end of input
        terminating, // per open, released: SIGTERM sent, --grace again
        killed,      // per open, released: SIGKILL sent
        finished,    // per open: released and reaped; buried, destroyed at the next dispatch
        shut_down,   // the Server is shutting down: nothing more is watched or answered
    };

    bool output_ended() const { return !stdout_; }
    bool eof_visible() const { return output_ended() && !awaiting_restart(); }
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
    const bool shared_;
    bool discard_output_ = false; // per open, write-only
    bool no_input_ = false;       // per open, read-only

    Phase phase_ = Phase::running;
    pid_t pid_ = -1;
    int status_ = 0; // wait status, once reaped
    WatchedFd pidfd_;
    WatchedFd stdout_; // closed at end of file: the output has ended
    WatchedFd stdin_;
    bool stdin_full_ = false; // the last write filled the pipe: wait for room (EPOLLOUT)
    WatchedFd timer_;         // --grace and --restart-delay
    OutputBuffer output_;

    std::deque<Pending> reads_, writes_;
    unsigned last_ready_ = ~0U;
};

} // namespace fusdctl::serve
