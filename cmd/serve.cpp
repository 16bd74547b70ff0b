// SPDX-License-Identifier: MIT
//
// fusdctl serve [OPTIONS] DEVICE -- COMMAND [ARG...]
//
// A libfusd driver whose reads and writes are piped to a command. Everything runs on the one
// thread of the fusd::Loop: the commands' pipes, their pidfds (exit without SIGCHLD) and their
// grace-period timers (timerfd) are watched in the same epoll set as the device.
//
// Per open (default): open() starts a command; read() takes its stdout (kept Request until data
// or end of file), write() feeds its stdin (kept Request until the pipe has room); close()
// closes its stdin and stdout, waits the grace period, then SIGTERM, the grace period again, then
// SIGKILL. A read-only open gives the command end of input at once; a write-only open drains and
// drops its output.
// Shared (--shared): one command for the device's lifetime, every open file reading from and
// writing to it; --restart starts it again when it exits.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "child.hpp"
#include "common.hpp"
#include "fusd/fusd.hpp"

namespace fusdctl {

namespace {

struct ServeOptions {
    std::string device;
    std::vector<std::string> command;
    bool shared = false;
    bool restart = false;
    double restart_delay = 1.0;
    double grace = 1.0;
    std::string mode = "0660";
    std::string owner;
    std::string group;
    std::string backend = "auto";
    bool detach = false;
    std::string pidfile;
    std::string log;
};

// Everything checked before any node is made or any process forked.
struct ServeConfig {
    std::string path;
    CommandSpec command;
    fusd::DeviceOptions device;
    bool shared = false;
    bool restart = false;
    double restart_delay = 1.0;
    double grace = 1.0;
    std::string pidfile;
    int log_fd = -1;
};

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

std::string describe_status(int status) {
    if (WIFEXITED(status))
        return fmt::format("exited with status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const char *name = ::sigabbrev_np(WTERMSIG(status));
        return fmt::format("was killed by SIG{}", name ? name : std::to_string(WTERMSIG(status)));
    }
    return "ended";
}

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

class Server {
public:
    explicit Server(const ServeConfig &config) : config_(config) {}

    fusd::Callbacks callbacks();
    void set_device(fusd::Loop &loop, fusd::Device &device) {
        loop_ = &loop;
        device_ = &device;
    }
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
    bool draining() const { return draining_; }

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
    void on_open(fusd::Request req);
    void on_release(fusd::Request req);

    const ServeConfig &config_;
    fusd::Loop *loop_ = nullptr;
    fusd::Device *device_ = nullptr;
    std::unordered_map<Session *, std::shared_ptr<Session>> sessions_;
    std::shared_ptr<Session> shared_;
    std::vector<std::shared_ptr<Session>> graveyard_;
    bool burying_ = false;
    bool draining_ = false;
    int drain_timer_ = -1;
    std::chrono::steady_clock::time_point drain_deadline_;
};

// ---- Session -------------------------------------------------------------------------------

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

// ---- Server --------------------------------------------------------------------------------

fusd::Callbacks Server::callbacks() {
    fusd::Callbacks cb;
    cb.open = [this](fusd::Request req) { on_open(std::move(req)); };
    cb.release = [this](fusd::Request req) { on_release(std::move(req)); };
    cb.read = [this](fusd::Request req) {
        Session *s = session_of(req.file());
        if (draining_)
            return req.reply_data(std::string_view{});
        if (!s || s->finished() || s->shutting_down())
            return req.reply_error(EIO);
        s->read(std::move(req));
    };
    cb.write = [this](fusd::Request req) {
        Session *s = session_of(req.file());
        if (draining_ || !s || s->finished() || s->shutting_down())
            return req.reply_error(EIO);
        s->write(std::move(req));
    };
    cb.interrupt = [this](fusd::File &file, std::uint64_t id) {
        if (Session *s = session_of(file); s && !s->shutting_down())
            s->interrupt(id);
    };
    return cb;
}

void Server::on_open(fusd::Request req) {
    if (draining_)
        return req.reply_error(ENXIO);
    fusd::File &file = req.file();
    if (shared_) {
        if (shared_->shutting_down())
            return req.reply_error(ENXIO);
        file.state() = shared_;
        file.notify(shared_->readiness());
        return req.reply_ok();
    }
    const fusd::Caller &caller = req.caller();
    std::vector<std::string> env = {
        "FUSD_DEVICE=" + config_.path,
        fmt::format("FUSD_CALLER_PID={}", caller.pid),
        fmt::format("FUSD_CALLER_UID={}", caller.uid),
        fmt::format("FUSD_CALLER_GID={}", caller.gid),
        fmt::format("FUSD_OPEN_FLAGS={}", req.flags()),
    };
    Child child;
    try {
        child = spawn_command(config_.command, env, config_.log_fd);
    } catch (const std::system_error &e) {
        error("{}: open by pid {}: {}", config_.path, caller.pid, e.what());
        int err = e.code().value();
        return req.reply_error(err > 0 && err < 4096 ? err : EIO);
    }
    auto session = std::make_shared<Session>(*this, false);
    session->file = &file;
    // Nobody can write to a read-only open: the command's input ends at once (as with
    // </dev/null). Nobody can read a write-only open: its output is drained and dropped, so that
    // it never blocks writing it.
    unsigned access = req.flags() & O_ACCMODE;
    session->set_access(access != O_WRONLY, access != O_RDONLY);
    session->attach(child);
    sessions_.emplace(session.get(), session);
    file.state() = session;
    file.notify(session->readiness());
    req.reply_ok();
}

void Server::on_release(fusd::Request req) {
    fusd::File &file = req.file();
    if (Session *s = session_of(file); s && !s->shutting_down()) {
        if (s == shared_.get())
            s->drop_file(&file);
        else if (!s->finished())
            s->close_file();
    }
    file.state().reset();
    req.reply_ok();
}

void Server::bury(Session *session) {
    auto it = sessions_.find(session);
    if (it == sessions_.end())
        return;
    graveyard_.push_back(std::move(it->second));
    sessions_.erase(it);
    if (!burying_ && loop_) {
        burying_ = true;
        loop_->post([this] {
            graveyard_.clear();
            burying_ = false;
        });
    }
}

void Server::start_shared() {
    std::vector<std::string> env = {"FUSD_DEVICE=" + config_.path};
    Child child = spawn_command(config_.command, env, config_.log_fd);
    shared_ = std::make_shared<Session>(*this, true);
    sessions_.emplace(shared_.get(), shared_);
    shared_->attach(child);
}

bool Server::restart_shared(Session &session) {
    std::vector<std::string> env = {"FUSD_DEVICE=" + config_.path};
    try {
        Child child = spawn_command(config_.command, env, config_.log_fd);
        session.attach(child);
        session.publish();
        return true;
    } catch (const std::system_error &e) {
        error("{}: restarting the command: {}", config_.path, e.what());
        return false;
    }
}

void Server::drain() {
    if (draining_)
        return;
    draining_ = true;
    end_pending();
    drain_deadline_ = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                            std::chrono::duration<double>(config_.grace));
    auto check = [this] {
        bool idle = !device_ || device_->open_files() == 0;
        if (idle || std::chrono::steady_clock::now() >= drain_deadline_) {
            loop_->stop(); // shutdown() unwatches the timer
            return true;
        }
        return false;
    };
    if (check())
        return;
    drain_timer_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (drain_timer_ < 0) {
        loop_->stop();
        return;
    }
    itimerspec t{};
    t.it_value.tv_nsec = 10 * 1000 * 1000;
    t.it_interval.tv_nsec = 10 * 1000 * 1000;
    ::timerfd_settime(drain_timer_, 0, &t, nullptr);
    int fd = drain_timer_;
    loop_->watch(fd, EPOLLIN, [fd, check](std::uint32_t) {
        std::uint64_t ticks;
        (void)!::read(fd, &ticks, sizeof ticks);
        check();
    });
}

void Server::shutdown() {
    if (drain_timer_ >= 0) {
        loop_->unwatch(drain_timer_);
        ::close(drain_timer_);
        drain_timer_ = -1;
    }
    end_pending();
    if (loop_ && device_) {
        for (fusd::Device *d : loop_->devices()) {
            if (d == device_) {
                try {
                    loop_->remove(*device_);
                } catch (const std::exception &e) {
                    error("{}: unregistering: {}", config_.path, e.what());
                }
                break;
            }
        }
    }
    device_ = nullptr;

    std::vector<std::shared_ptr<Session>> all;
    for (auto &[p, s] : sessions_)
        all.push_back(s);
    for (auto &s : all)
        s->begin_shutdown();

    // End of input first; then SIGTERM; then SIGKILL; a grace period between each.
    auto wait_all = [&all](double seconds) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        while (true) {
            std::vector<pollfd> fds;
            std::vector<Session *> who;
            for (auto &s : all) {
                if (s->running() && s->pidfd() >= 0) {
                    fds.push_back(pollfd{s->pidfd(), POLLIN, 0});
                    who.push_back(s.get());
                }
            }
            if (fds.empty())
                return;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                return;
            int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
            if (n < 0 && errno != EINTR)
                return;
            for (std::size_t i = 0; i < fds.size(); ++i)
                if (fds[i].revents)
                    who[i]->reap_now();
        }
    };
    wait_all(config_.grace);
    for (auto &s : all)
        s->kill_group(SIGTERM);
    wait_all(config_.grace);
    for (auto &s : all)
        s->kill_group(SIGKILL);
    wait_all(10.0);
    for (auto &s : all) {
        s->reap_now();
        s->close_fds(false);
    }
    graveyard_.clear();
    sessions_.clear();
    shared_.reset();
}

// ---- Command line and process lifecycle ------------------------------------------------------

mode_t parse_mode(const std::string &text) {
    std::string_view s = text;
    if (s.starts_with("0o"))
        s.remove_prefix(2);
    if (s.empty() || s.size() > 5 || s.find_first_not_of("01234567") != std::string_view::npos)
        throw UsageError{fmt::format("--mode: '{}' is not an octal mode such as 0660", text)};
    unsigned long m = std::stoul(std::string(s), nullptr, 8);
    if (m > 07777)
        throw UsageError{fmt::format("--mode: '{}' is not an octal mode such as 0660", text)};
    return static_cast<mode_t>(m);
}

bool all_digits(const std::string &s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

uid_t parse_owner(const std::string &name) {
    if (all_digits(name))
        return static_cast<uid_t>(std::stoul(name));
    if (const passwd *pw = ::getpwnam(name.c_str()))
        return pw->pw_uid;
    throw UsageError{fmt::format("--owner: no such user '{}'", name)};
}

gid_t parse_group(const std::string &name) {
    if (all_digits(name))
        return static_cast<gid_t>(std::stoul(name));
    if (const group *gr = ::getgrnam(name.c_str()))
        return gr->gr_gid;
    throw UsageError{fmt::format("--group: no such group '{}'", name)};
}

// Where the serving process says how its start went: the detaching parent's pipe, or stderr.
struct Reporter {
    int ready_fd = -1;
    int fail(const std::string &message) {
        if (ready_fd >= 0) {
            write_all(ready_fd, "ERR " + message);
            ::close(ready_fd);
            ready_fd = -1;
        } else {
            print_error(message);
        }
        return exit_failure;
    }
    void ready() {
        if (ready_fd >= 0) {
            write_all(ready_fd, "OK");
            ::close(ready_fd);
            ready_fd = -1;
        }
    }
};

bool write_pidfile(const std::string &path, std::string &why) {
    std::string tmp = fmt::format("{}.{}.tmp", path, ::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        why = std::strerror(errno);
        return false;
    }
    bool ok = write_all(fd, fmt::format("{}\n", ::getpid()));
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        why = std::strerror(ok ? errno : err);
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

// The serving process: register, report readiness, serve until stopped, clean up.
int serve_device(ServeConfig &config, Reporter reporter) {
    ignore_sigpipe();
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGCHLD, &dfl, nullptr); // an inherited SIG_IGN would reap our commands for us

    // Blocked before any thread exists, so that only our signalfd sees them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    Server server(config);
    int status = exit_ok;
    {
        std::optional<fusd::Loop> loop;
        fusd::Device *device = nullptr;
        try {
            loop.emplace(false); // our own signalfd below: SIGINT, SIGTERM and SIGHUP drain first
            device = &loop->add(config.device, server.callbacks());
        } catch (const std::exception &e) {
            std::string what = e.what();
            if (what.find(config.path) == std::string::npos)
                what = fmt::format("{}: {}", config.path, what);
            return reporter.fail(what);
        }
        server.set_device(*loop, *device);
        if (config.shared) {
            try {
                server.start_shared();
            } catch (const std::system_error &e) {
                server.shutdown();
                return reporter.fail(fmt::format("{}: {}", config.path, e.what()));
            }
        }
        // SIGINT/SIGTERM/SIGHUP (blocked above, so one sent early waits here) through our own
        // signalfd: waiting callers are answered (end of file) before the node goes.
        int sig_fd = ::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
        if (sig_fd < 0) {
            int err = errno;
            server.shutdown();
            return reporter.fail(fmt::format("{}: signalfd: {}", config.path, std::strerror(err)));
        }
        Server *sv = &server;
        loop->watch(sig_fd, EPOLLIN, [sig_fd, sv](std::uint32_t) {
            signalfd_siginfo info{};
            if (::read(sig_fd, &info, sizeof info) == sizeof info)
                sv->drain(); // stops the loop once the files are closed, or after --grace
        });
        if (!config.pidfile.empty()) {
            std::string why;
            if (!write_pidfile(config.pidfile, why)) {
                loop->unwatch(sig_fd);
                ::close(sig_fd);
                server.shutdown();
                return reporter.fail(fmt::format("{}: --pidfile {}: {}", config.path, config.pidfile, why));
            }
        }
        if (config.log_fd >= 0) {
            ::dup2(config.log_fd, STDERR_FILENO); // our own messages go to the log too
            ::close(config.log_fd);
            config.log_fd = -1;
        }
        reporter.ready();
        try {
            loop->run();
        } catch (const std::exception &e) {
            error("{}: {}", config.path, e.what());
            status = exit_failure;
        }
        loop->unwatch(sig_fd);
        ::close(sig_fd);
        server.shutdown();
    }
    if (!config.pidfile.empty())
        ::unlink(config.pidfile.c_str());
    return status;
}

// -d: fork before any Loop or thread exists; the parent returns once the node is ready.
int serve_detached(ServeConfig &config) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) {
        error("{}: pipe: {}", config.path, std::strerror(errno));
        return exit_failure;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    if (pid < 0) {
        error("{}: fork: {}", config.path, std::strerror(errno));
        return exit_failure;
    }
    if (pid == 0) {
        ::close(pipefd[0]);
        ::setsid();
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            ::dup2(null, STDIN_FILENO);
            ::dup2(null, STDOUT_FILENO);
            ::dup2(config.log_fd >= 0 ? config.log_fd : null, STDERR_FILENO);
            if (null > STDERR_FILENO)
                ::close(null);
        }
        if (config.log_fd >= 0) {
            ::close(config.log_fd);
            config.log_fd = -1;
        }
        // A daemon keeps none of its starter's descriptors (a shell's or a test runner's pipes
        // would otherwise stay open as long as it runs).
        int keep = pipefd[1];
        ::syscall(SYS_close_range, 3U, static_cast<unsigned>(keep - 1), 0U);
        ::syscall(SYS_close_range, static_cast<unsigned>(keep + 1), ~0U, 0U);
        int status = serve_device(config, Reporter{keep});
        std::fflush(nullptr);
        ::_exit(status);
    }
    ::close(pipefd[1]);
    std::string answer;
    char buf[512];
    while (true) {
        ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n > 0) {
            answer.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    ::close(pipefd[0]);
    if (answer == "OK") {
        fmt::print("{}\n", pid);
        std::fflush(stdout);
        return exit_ok;
    }
    if (answer.starts_with("ERR ")) {
        print_error(answer.substr(4));
    } else {
        int st = 0;
        ::waitpid(pid, &st, 0);
        error("{}: the daemon {} before the device was ready", config.path, describe_status(st));
    }
    int st = 0;
    ::waitpid(pid, &st, WNOHANG);
    return exit_failure;
}

int run_serve(const ServeOptions &opts) {
    ServeConfig config;
    config.path = fusd::device_path(opts.device); // fusd::Error: exit status 1
    if (opts.command.empty())
        throw UsageError{fmt::format("serve {}: no COMMAND: write 'fusdctl serve {} -- COMMAND [ARG...]'",
                                     opts.device, opts.device)};
    if (opts.restart && !opts.shared)
        throw UsageError{"--restart needs --shared"};
    if (!(opts.grace >= 0) || opts.grace > 3600)
        throw UsageError{"--grace: expected seconds between 0 and 3600"};
    if (!(opts.restart_delay >= 0) || opts.restart_delay > 3600)
        throw UsageError{"--restart-delay: expected seconds between 0 and 3600"};

    config.device.name = config.path;
    config.device.mode = parse_mode(opts.mode);
    if (!opts.owner.empty())
        config.device.owner = parse_owner(opts.owner);
    if (!opts.group.empty())
        config.device.group = parse_group(opts.group);
    auto backend = fusd::parse_backend(opts.backend);
    if (!backend)
        throw UsageError{fmt::format("--backend: '{}' is not one of auto, kernel, cuse, fuse", opts.backend)};
    config.device.backend = *backend;
    config.shared = opts.shared;
    config.restart = opts.restart;
    config.restart_delay = opts.restart_delay;
    config.grace = opts.grace;
    if (!opts.pidfile.empty()) {
        config.pidfile = opts.pidfile;
        if (config.pidfile[0] != '/') {
            char cwd[PATH_MAX];
            if (::getcwd(cwd, sizeof cwd))
                config.pidfile = std::string(cwd) + "/" + config.pidfile;
        }
    }

    try {
        config.command = resolve_command(opts.command);
    } catch (const std::system_error &e) {
        error("{}: {}", config.path, e.what());
        return exit_failure;
    }

    if (!opts.log.empty()) {
        config.log_fd = ::open(opts.log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (config.log_fd < 0) {
            error("{}: --log {}: {}", config.path, opts.log, std::strerror(errno));
            return exit_failure;
        }
    }

    // What `fusdctl ls` shows: this command line.
    if (opts.detach)
        return serve_detached(config);
    return serve_device(config, Reporter{});
}

} // namespace

Command add_serve(CLI::App &app) {
    auto opts = std::make_shared<ServeOptions>();
    CLI::App *sub = app.add_subcommand("serve", "Make DEVICE a device whose reads and writes are piped to COMMAND");
    sub->add_option("DEVICE", opts->device, "Device to create: /dev/NAME or NAME")->required();
    sub->add_option("COMMAND", opts->command, "Command to run, after '--' (argv, no shell)");
    sub->add_flag("--shared", opts->shared, "One command for the device's lifetime, shared by every open file");
    sub->add_flag("--restart", opts->restart, "With --shared: start the command again when it exits");
    sub->add_option("--restart-delay", opts->restart_delay, "Seconds before a restart (default 1)");
    sub->add_option("--grace", opts->grace,
                    "Seconds between close and SIGTERM, and between SIGTERM and SIGKILL (default 1)");
    sub->add_option("-m,--mode", opts->mode, "Permissions of the node, octal (default 0660)");
    sub->add_option("-o,--owner", opts->owner, "Owner of the node: user name or uid");
    sub->add_option("-g,--group", opts->group, "Group of the node: group name or gid");
    sub->add_option("-b,--backend", opts->backend, "auto, kernel, cuse or fuse (default auto)")
        ->check(CLI::IsMember({"auto", "kernel", "cuse", "fuse"}));
    sub->add_flag("-d,--detach", opts->detach, "Run in the background; print its PID once the device is ready");
    sub->add_option("-p,--pidfile", opts->pidfile, "Write the serving process's PID to FILE once ready");
    sub->add_option("-l,--log", opts->log, "Append the command's stderr (and fusdctl's messages) to FILE");
    return Command{sub, [opts] { return run_serve(*opts); }};
}

} // namespace fusdctl
