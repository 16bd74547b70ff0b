// SPDX-License-Identifier: MIT
//
// fusdctl serve: Session (see session.hpp).
#include "serve/session.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.hpp"
#include "serve/server.hpp"

namespace fusdctl::serve {

namespace {

constexpr std::size_t buffer_capacity = 64 * 1024; // command output kept per session

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

void Session::attach(const Child &child) {
    if (child_.stdout_fd >= 0) { // a restart: keep what the previous command left, then let go
        fill();
        if (out_watched_)
            server_.loop().unwatch(child_.stdout_fd);
        out_watched_ = false;
        ::close(child_.stdout_fd);
    }
    if (child_.stdin_fd >= 0) {
        if (in_watched_)
            server_.loop().unwatch(child_.stdin_fd);
        in_watched_ = false;
        ::close(child_.stdin_fd);
    }
    child_ = child;
    exited_ = false;
    out_eof_ = false;
    in_full_ = false;
    kill_phase_ = 0;
    if (!buf_)
        buf_ = std::make_unique<std::byte[]>(buffer_capacity);
    Session *self = this;
    server_.loop().watch(child_.pidfd, EPOLLIN, [self](std::uint32_t) { self->on_exit(); });
    pid_watched_ = true;
    if (no_input_)
        stdin_broken();
    update_watches();
    flush_writes();
}

bool Session::awaiting_restart() const {
    return shared_ && server_.config().restart && !shutting_down_;
}

void Session::update_watches() {
    fusd::Loop &loop = server_.loop();
    bool want_out = child_.stdout_fd >= 0 && !out_eof_ && buffered() < buffer_capacity;
    if (want_out != out_watched_) {
        Session *self = this;
        if (want_out)
            loop.watch(child_.stdout_fd, EPOLLIN, [self](std::uint32_t ev) { self->on_stdout(ev); });
        else
            loop.unwatch(child_.stdout_fd);
        out_watched_ = want_out;
    }
    bool want_in = child_.stdin_fd >= 0 && (in_full_ || !writes_.empty());
    if (want_in != in_watched_) {
        Session *self = this;
        if (want_in)
            loop.watch(child_.stdin_fd, EPOLLOUT, [self](std::uint32_t ev) { self->on_stdin(ev); });
        else
            loop.unwatch(child_.stdin_fd);
        in_watched_ = want_in;
    }
}

void Session::fill() {
    while (child_.stdout_fd >= 0 && !out_eof_) {
        if (rpos_ == wpos_)
            rpos_ = wpos_ = 0;
        if (wpos_ == buffer_capacity) {
            if (rpos_ == 0)
                break; // full: the command waits in write() until a reader takes some
            std::memmove(buf_.get(), buf_.get() + rpos_, wpos_ - rpos_);
            wpos_ -= rpos_;
            rpos_ = 0;
        }
        ssize_t n = ::read(child_.stdout_fd, buf_.get() + wpos_, buffer_capacity - wpos_);
        if (n > 0) {
            if (!discard_output_)
                wpos_ += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        // End of file (or a read error, the same for the reader): the command closed its stdout.
        if (out_watched_) {
            server_.loop().unwatch(child_.stdout_fd);
            out_watched_ = false;
        }
        ::close(child_.stdout_fd);
        child_.stdout_fd = -1;
        out_eof_ = true;
    }
}

void Session::answer_read(fusd::Request &req) {
    std::size_t n = std::min(req.size(), buffered());
    req.reply_data(std::span<const std::byte>(buf_.get() + rpos_, n));
    rpos_ += n;
    if (rpos_ == wpos_)
        rpos_ = wpos_ = 0;
}

void Session::serve_reads() {
    while (!reads_.empty() && (buffered() > 0 || eof_visible())) {
        Pending p = std::move(reads_.front());
        reads_.pop_front();
        answer_read(p.req);
    }
}

void Session::read(fusd::Request req) {
    if (reads_.empty()) {
        if (buffered() == 0 && !out_eof_)
            fill();
        if (buffered() > 0 || eof_visible()) {
            answer_read(req);
            if (buffered() == 0 && !out_eof_)
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
    if (child_.stdin_fd >= 0) {
        if (in_watched_)
            server_.loop().unwatch(child_.stdin_fd);
        in_watched_ = false;
        ::close(child_.stdin_fd);
        child_.stdin_fd = -1;
    }
    in_full_ = false;
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

void Session::flush_writes() {
    while (!writes_.empty() && child_.stdin_fd >= 0) {
        Pending &p = writes_.front();
        auto data = p.req.data();
        std::size_t total = p.req.size() < data.size() ? p.req.size() : data.size();
        if (p.done < total) {
            ssize_t n = ::write(child_.stdin_fd, data.data() + p.done, total - p.done);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN) {
                    in_full_ = true;
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
                in_full_ = true;
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
    if (child_.stdin_fd < 0 && !awaiting_restart()) {
        req.reply_error(EPIPE);
        return;
    }
    if (writes_.empty() && child_.stdin_fd >= 0 && !in_full_) {
        auto data = req.data();
        std::size_t total = std::min(req.size(), data.size());
        std::size_t done = 0;
        while (done < total) {
            ssize_t n = ::write(child_.stdin_fd, data.data() + done, total - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN) {
                in_full_ = true;
                break;
            }
            if (n < 0 && errno == EPIPE) {
                stdin_broken();
                if (done > 0)
                    req.reply_written(done);
                else if (awaiting_restart())
                    break; // queue it below
                else
                    req.reply_error(EPIPE);
                if (!req) {
                    publish();
                    return;
                }
                break;
            }
            if (n < 0) {
                req.reply_error(errno);
                return;
            }
            done += static_cast<std::size_t>(n);
        }
        if (req && done == total) {
            req.reply_written(total);
            publish();
            return;
        }
        if (req.nonblocking()) {
            if (done > 0)
                req.reply_written(done);
            else
                req.reply_again();
            update_watches();
            publish();
            return;
        }
        fusd::File *f = &req.file();
        writes_.push_back(Pending{std::move(req), f, done});
        update_watches();
        publish();
        return;
    }
    if (req.nonblocking()) {
        req.reply_again();
        return;
    }
    fusd::File *f = &req.file();
    writes_.push_back(Pending{std::move(req), f, 0});
    update_watches();
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

unsigned Session::readiness() const {
    unsigned ev = 0;
    if (buffered() > 0 || eof_visible())
        ev |= fusd::ready::readable;
    if (child_.stdin_fd >= 0) {
        if (!in_full_ && writes_.empty())
            ev |= fusd::ready::writable;
    } else if (!awaiting_restart()) {
        ev |= fusd::ready::writable; // a write fails at once (EPIPE): it must not wait
    }
    return ev;
}

void Session::publish() {
    if (shutting_down_)
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
    if (buffered() == 0 && !out_eof_)
        fill();
    update_watches();
    publish();
}

void Session::on_stdin(std::uint32_t events) {
    in_full_ = false;
    if (writes_.empty() && (events & (EPOLLERR | EPOLLHUP))) {
        stdin_broken();
    } else {
        flush_writes();
    }
    update_watches();
    publish();
}

void Session::on_exit() {
    if (pid_watched_) {
        server_.loop().unwatch(child_.pidfd);
        pid_watched_ = false;
    }
    // Whatever the command left in its process group goes with it; the zombie still holds the
    // group id, so this cannot hit a stranger.
    signal_group(child_.pid, SIGKILL);
    status_ = reap(child_.pid);
    exited_ = true;
    ::close(child_.pidfd);
    child_.pidfd = -1;
    if (timer_fd_ >= 0 && !restart_pending_) {
        itimerspec off{};
        ::timerfd_settime(timer_fd_, 0, &off, nullptr);
    }
    // Output already in the pipe stays readable; nobody reads its stdin any more.
    fill();
    stdin_broken();
    if (shared_ && !shutting_down_) {
        bool clean = WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
        if (!clean || !server_.config().restart)
            error("{}: command {} {}", server_.config().path, child_.pid, describe_status(status_));
        if (server_.config().restart) {
            restart_pending_ = true;
            arm_timer(server_.config().restart_delay);
        }
    }
    serve_reads();
    update_watches();
    publish();
    if (closed_)
        finish();
}

void Session::arm_timer(double seconds) {
    if (timer_fd_ < 0) {
        timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (timer_fd_ < 0) {
            error("{}: timerfd_create: {}", server_.config().path, std::strerror(errno));
            return;
        }
        Session *self = this;
        server_.loop().watch(timer_fd_, EPOLLIN, [self](std::uint32_t) { self->on_timer(); });
    }
    itimerspec t = timer_after(seconds);
    ::timerfd_settime(timer_fd_, 0, &t, nullptr);
}

void Session::on_timer() {
    std::uint64_t ticks;
    while (::read(timer_fd_, &ticks, sizeof ticks) < 0 && errno == EINTR) {
    }
    if (restart_pending_) {
        restart_pending_ = false;
        if (!server_.restart_shared(*this)) {
            restart_pending_ = true;
            arm_timer(server_.config().restart_delay);
        }
        return;
    }
    if (!running())
        return;
    if (kill_phase_ == 0) {
        kill_phase_ = 1;
        signal_group(child_.pid, SIGTERM);
        arm_timer(server_.config().grace);
    } else if (kill_phase_ == 1) {
        kill_phase_ = 2;
        signal_group(child_.pid, SIGKILL);
    }
}

void Session::close_file() {
    closed_ = true;
    file = nullptr;
    reads_.clear();
    writes_.clear();
    rpos_ = wpos_ = 0;
    // Like the reader of a pipe going away: the command gets end of file on its stdin, and
    // EPIPE/SIGPIPE if it writes more output.
    if (child_.stdout_fd >= 0) {
        if (out_watched_)
            server_.loop().unwatch(child_.stdout_fd);
        out_watched_ = false;
        ::close(child_.stdout_fd);
        child_.stdout_fd = -1;
    }
    out_eof_ = true;
    stdin_broken();
    if (exited_) {
        finish();
        return;
    }
    arm_timer(server_.config().grace);
}

void Session::finish() {
    if (finished_)
        return;
    finished_ = true;
    close_fds();
    server_.bury(this);
}

void Session::close_fds(bool unwatch) {
    fusd::Loop *loop = unwatch ? &server_.loop() : nullptr;
    auto drop = [loop](int &fd, bool &watched) {
        if (fd < 0)
            return;
        if (watched && loop)
            loop->unwatch(fd);
        watched = false;
        ::close(fd);
        fd = -1;
    };
    drop(child_.stdout_fd, out_watched_);
    drop(child_.stdin_fd, in_watched_);
    drop(child_.pidfd, pid_watched_);
    bool timer_watched = timer_fd_ >= 0;
    drop(timer_fd_, timer_watched);
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
    shutting_down_ = true;
    reads_.clear();
    writes_.clear();
    fusd::Loop &loop = server_.loop();
    if (out_watched_)
        loop.unwatch(child_.stdout_fd);
    out_watched_ = false;
    if (in_watched_)
        loop.unwatch(child_.stdin_fd);
    in_watched_ = false;
    if (pid_watched_)
        loop.unwatch(child_.pidfd);
    pid_watched_ = false;
    if (timer_fd_ >= 0) {
        loop.unwatch(timer_fd_);
        ::close(timer_fd_);
        timer_fd_ = -1;
    }
    for (int *fd : {&child_.stdin_fd, &child_.stdout_fd}) {
        if (*fd >= 0)
            ::close(*fd);
        *fd = -1;
    }
    restart_pending_ = false;
}

void Session::reap_now() {
    if (!running())
        return;
    signal_group(child_.pid, SIGKILL);
    status_ = reap(child_.pid);
    exited_ = true;
    if (child_.pidfd >= 0)
        ::close(child_.pidfd);
    child_.pidfd = -1;
}

} // namespace fusdctl::serve
