// SPDX-License-Identifier: MIT
//
// fusdctl serve: Session (see session.hpp).
//
// Phases: running -> exited (per open, until release; shared without --restart) or
// restarting -> running (shared --restart). Per open, release: running -> grace -> terminating
// -> killed, and finished once the command is reaped (at once if it had already exited). Any
// phase -> shut_down when the Server shuts down.
#include "serve/session.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <utility>

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.hpp"
#include "serve/server.hpp"

namespace fusdctl::serve {

namespace {

itimerspec timer_after(double seconds) {
    itimerspec t{};
    if (seconds <= 0)
        seconds = 1e-6; // 0 would disarm the timer
    t.it_value.tv_sec = static_cast<time_t>(seconds);
    t.it_value.tv_nsec = static_cast<long>((seconds - std::floor(seconds)) * 1e9);
    if (t.it_value.tv_sec == 0 && t.it_value.tv_nsec == 0)
        t.it_value.tv_nsec = 1000;
    return t;
}

} // namespace

void Session::attach(Child child) {
    if (stdout_)
        fill(); // a restart: keep what the previous command left, then let go of its pipes
    stdout_.reset(std::move(child.stdout_pipe));
    stdin_.reset(std::move(child.stdin_pipe));
    pidfd_.reset(std::move(child.pidfd));
    pid_ = child.pid;
    phase_ = Phase::running;
    stdin_full_ = false;
    pidfd_.watch(server_.loop(), EPOLLIN, [this](std::uint32_t) { on_exit(); });
    if (no_input_)
        stdin_broken();
    flush_writes();
}

bool Session::awaiting_restart() const {
    return shared_ && server_.config().restart && phase_ != Phase::shut_down;
}

void Session::update_watches() {
    fusd::Loop &loop = server_.loop();
    bool want_out = stdout_ && !output_.full();
    if (want_out != stdout_.watched()) {
        if (want_out)
            stdout_.watch(loop, EPOLLIN, [this](std::uint32_t ev) { on_stdout(ev); });
        else
            stdout_.unwatch();
    }
    bool want_in = stdin_ && (stdin_full_ || !writes_.empty());
    if (want_in != stdin_.watched()) {
        if (want_in)
            stdin_.watch(loop, EPOLLOUT, [this](std::uint32_t ev) { on_stdin(ev); });
        else
            stdin_.unwatch();
    }
}

void Session::fill() {
    while (stdout_) {
        std::span<std::byte> room = output_.space();
        if (room.empty())
            break; // full: the command waits in write() until a reader takes some
        ssize_t n = ::read(stdout_.get(), room.data(), room.size());
        if (n > 0) {
            if (!discard_output_)
                output_.commit(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        // End of file (or a read error, the same for the reader): the command closed its stdout.
        stdout_.reset();
    }
}

void Session::answer_read(fusd::Request &req) {
    std::span<const std::byte> data = output_.front(req.size());
    req.reply_data(data);
    output_.consume(data.size());
}

void Session::serve_reads() {
    while (!reads_.empty() && (output_.size() > 0 || eof_visible())) {
        Pending p = std::move(reads_.front());
        reads_.pop_front();
        answer_read(p.req);
    }
}

void Session::read(fusd::Request req) {
    if (reads_.empty()) {
        if (output_.size() == 0)
            fill();
        if (output_.size() > 0 || eof_visible()) {
            answer_read(req);
            if (output_.size() == 0)
                fill();
            update_watches();
            publish();
            return;
        }
    }
    if (req.nonblocking()) {
        req.reply_again();
        return;
    }
    fusd::File *f = &req.file();
    reads_.push_back(Pending{std::move(req), f, 0});
    update_watches();
}

void Session::stdin_broken() {
    stdin_.reset();
    stdin_full_ = false;
    if (awaiting_restart())
        return; // queued writes go to the next command
    while (!writes_.empty()) {
        Pending p = std::move(writes_.front());
        writes_.pop_front();
        if (p.done > 0)
            p.req.reply_written(p.done);
        else
            p.req.reply_error(EPIPE);
    }
}

// The one place that writes to the command's stdin: queued writes, oldest first, until the
// pipe is full or broken.
void Session::flush_writes() {
    while (!writes_.empty() && stdin_ && !stdin_full_) {
        Pending &p = writes_.front();
        auto data = p.req.data();
        std::size_t total = std::min(p.req.size(), data.size());
        if (p.done < total) {
            ssize_t n = ::write(stdin_.get(), data.data() + p.done, total - p.done);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN) {
                    stdin_full_ = true;
                    break;
                }
                if (errno == EPIPE) {
                    stdin_broken();
                    break;
                }
                int err = errno;
                Pending q = std::move(writes_.front());
                writes_.pop_front();
                q.req.reply_error(err);
                continue;
            }
            p.done += static_cast<std::size_t>(n);
            if (p.done < total) {
                stdin_full_ = true;
                break;
            }
        }
        Pending q = std::move(writes_.front());
        writes_.pop_front();
        q.req.reply_written(total);
    }
    update_watches();
}

void Session::write(fusd::Request req) {
    if (!stdin_ && !awaiting_restart()) {
        req.reply_error(EPIPE);
        return;
    }
    bool nonblocking = req.nonblocking();
    fusd::File *f = &req.file();
    writes_.push_back(Pending{std::move(req), f, 0});
    flush_writes();
    // Still queued, it is the last: flush_writes() answers from the front only.
    if (nonblocking && !writes_.empty()) {
        Pending p = std::move(writes_.back());
        writes_.pop_back();
        if (p.done > 0)
            p.req.reply_written(p.done);
        else
            p.req.reply_again();
        update_watches();
    }
    publish();
}

void Session::interrupt(std::uint64_t id) {
    auto gone = [id](const Pending &p) { return !p.req || p.req.id() == id; };
    reads_.erase(std::remove_if(reads_.begin(), reads_.end(), gone), reads_.end());
    writes_.erase(std::remove_if(writes_.begin(), writes_.end(), gone), writes_.end());
    update_watches();
    publish();
}

void Session::drop_file(fusd::File *f) {
    auto mine = [f](const Pending &p) { return p.file == f; };
    reads_.erase(std::remove_if(reads_.begin(), reads_.end(), mine), reads_.end());
    writes_.erase(std::remove_if(writes_.begin(), writes_.end(), mine), writes_.end());
    update_watches();
    publish();
}

std::size_t Session::unread_output() {
    fill();
    update_watches();
    publish();
    return output_.size();
}

void Session::discard_output() {
    output_.clear();
    fill(); // what was already in the pipe was pending too
    output_.clear();
    update_watches();
    publish();
}

unsigned Session::readiness() const {
    unsigned ev = 0;
    if (output_.size() > 0 || eof_visible())
        ev |= fusd::ready::readable;
    if (stdin_) {
        if (!stdin_full_ && writes_.empty())
            ev |= fusd::ready::writable;
    } else if (!awaiting_restart()) {
        ev |= fusd::ready::writable; // a write fails at once (EPIPE): it must not wait
    }
    return ev;
}

void Session::publish() {
    if (phase_ == Phase::shut_down)
        return;
    unsigned ev = readiness();
    if (ev == last_ready_)
        return;
    last_ready_ = ev;
    if (shared_) {
        if (fusd::Device *d = server_.device())
            d->notify_all(ev);
    } else if (file) {
        file->notify(ev);
    }
}

void Session::on_stdout(std::uint32_t) {
    fill();
    serve_reads();
    if (output_.size() == 0)
        fill();
    update_watches();
    publish();
}

void Session::on_stdin(std::uint32_t events) {
    stdin_full_ = false;
    if (writes_.empty() && (events & (EPOLLERR | EPOLLHUP))) {
        stdin_broken();
    } else {
        flush_writes();
    }
    update_watches();
    publish();
}

void Session::on_exit() {
    // Whatever the command left in its process group goes with it; the zombie still holds the
    // group id, so this cannot hit a stranger.
    signal_group(pid_, SIGKILL);
    status_ = reap(pid_);
    pidfd_.reset();
    bool released = phase_ == Phase::grace || phase_ == Phase::terminating || phase_ == Phase::killed;
    phase_ = Phase::exited;
    // Output already in the pipe stays readable; nobody reads its stdin any more.
    fill();
    stdin_broken();
    if (shared_) {
        bool clean = WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
        if (!clean || !server_.config().restart)
            error("{}: command {} {}", server_.config().path, pid_, describe_status(status_));
        if (server_.config().restart) {
            phase_ = Phase::restarting;
            arm_timer(server_.config().restart_delay);
        }
    }
    serve_reads();
    update_watches();
    publish();
    if (released)
        finish();
}

void Session::arm_timer(double seconds) {
    if (!timer_) {
        fusd::Fd fd{::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)};
        if (!fd) {
            error("{}: timerfd_create: {}", server_.config().path, std::strerror(errno));
            return;
        }
        timer_.reset(std::move(fd));
        timer_.watch(server_.loop(), EPOLLIN, [this](std::uint32_t) { on_timer(); });
    }
    itimerspec t = timer_after(seconds);
    ::timerfd_settime(timer_.get(), 0, &t, nullptr);
}

void Session::on_timer() {
    std::uint64_t ticks;
    while (::read(timer_.get(), &ticks, sizeof ticks) < 0 && errno == EINTR) {
    }
    switch (phase_) {
    case Phase::restarting:
        if (!server_.restart_shared(*this))
            arm_timer(server_.config().restart_delay);
        break;
    case Phase::grace:
        phase_ = Phase::terminating;
        signal_group(pid_, SIGTERM);
        arm_timer(server_.config().grace);
        break;
    case Phase::terminating:
        phase_ = Phase::killed;
        signal_group(pid_, SIGKILL);
        break;
    default:
        break;
    }
}

void Session::close_file() {
    file = nullptr;
    reads_.clear();
    writes_.clear();
    output_.clear();
    // Like the reader of a pipe going away: the command gets end of file on its stdin, and
    // EPIPE/SIGPIPE if it writes more output.
    stdout_.reset();
    stdin_broken();
    if (!running()) {
        finish();
        return;
    }
    phase_ = Phase::grace;
    arm_timer(server_.config().grace);
}

void Session::finish() {
    if (phase_ == Phase::finished)
        return;
    phase_ = Phase::finished;
    close_fds();
    server_.bury(this);
}

void Session::close_fds() {
    stdout_.reset();
    stdin_.reset();
    pidfd_.reset();
    timer_.reset();
}

void Session::end_pending() {
    while (!reads_.empty()) {
        Pending p = std::move(reads_.front());
        reads_.pop_front();
        if (p.req)
            p.req.reply_data(std::string_view{});
    }
    while (!writes_.empty()) {
        Pending p = std::move(writes_.front());
        writes_.pop_front();
        if (p.req && p.done > 0)
            p.req.reply_written(p.done);
        else if (p.req)
            p.req.reply_error(EIO);
    }
}

void Session::begin_shutdown() {
    phase_ = Phase::shut_down;
    reads_.clear();
    writes_.clear();
    stdout_.reset();
    stdin_.reset();
    pidfd_.unwatch(); // kept: the Server waits on it
    timer_.reset();
}

void Session::reap_now() {
    if (!running())
        return;
    signal_group(pid_, SIGKILL);
    status_ = reap(pid_);
    pidfd_.reset();
}

} // namespace fusdctl::serve
