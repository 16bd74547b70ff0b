// SPDX-License-Identifier: MIT
//
// fusdctl serve: Server (see server.hpp).
#include "serve/server.hpp"

#include <cerrno>
#include <csignal>
#include <string>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common.hpp"

namespace fusdctl::serve {

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
    if (config_.tty)
        cb.ioctl = [this](fusd::Request req) { on_ioctl(std::move(req)); };
    cb.interrupt = [this](fusd::File &file, std::uint64_t id) {
        if (Session *s = session_of(file); s && !s->shutting_down())
            s->interrupt(id);
    };
    return cb;
}

void Server::on_open(fusd::Request req) {
    if (draining_)
        return req.reply_error(ENXIO);
    if (tty_ && tty_->terminal.refuses(req))
        return req.reply_error(EBUSY); // TIOCEXCL
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
        fmt::format("FUSD_CALLER_UID={}", caller.real_uid),
        fmt::format("FUSD_CALLER_GID={}", caller.real_gid),
        fmt::format("FUSD_OPEN_FLAGS={}", req.flags()),
    };
    Child child;
    try {
        child = start_command(env);
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
    session->attach(std::move(child));
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

Child Server::start_command(const std::vector<std::string> &env) {
    return spawn_command(config_.command, command_env(env), config_.log.get());
}

std::vector<std::string> Server::command_env(std::vector<std::string> env) const {
    if (tty_)
        for (std::string &e : tty_->env())
            env.push_back(std::move(e));
    return env;
}

void Server::on_ioctl(fusd::Request req) {
    if (draining_)
        return req.reply_error(EIO);
    if (!tty_ || !tty_->terminal.answer_ioctl(req))
        req.reply_error(ENOTTY);
}

void Server::start_tty() {
    tty_ = std::make_unique<TtyLine>(config_.path);
    fusd::Terminal &t = tty_->terminal;
    t.readable = [this](fusd::Request &req) -> std::size_t {
        Session *s = session_of(req.file());
        return s && !s->shutting_down() ? s->unread_output() : 0;
    };
    t.flush_input = [this](fusd::Request &req) {
        if (Session *s = session_of(req.file()); s && !s->shutting_down())
            s->discard_output();
    };
    t.changed = [this] { tty_->publish(); };
    tty_->start(*loop_);
}

void Server::start_shared() {
    Child child = start_command({"FUSD_DEVICE=" + config_.path});
    shared_ = std::make_shared<Session>(*this, true);
    sessions_.emplace(shared_.get(), shared_);
    shared_->attach(std::move(child));
}

bool Server::restart_shared(Session &session) {
    try {
        Child child = start_command({"FUSD_DEVICE=" + config_.path});
        session.attach(std::move(child));
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
    drain_timer_.start(*loop_, config_.grace, [this] { return !device_ || device_->open_files() == 0; });
}

void Server::shutdown() {
    drain_timer_.cancel();
    if (tty_)
        tty_->stop(); // the channel's files go with the Server
    end_pending();
    remove_if_registered(loop_, device_, config_.path);

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
        s->close_fds();
    }
    graveyard_.clear();
    sessions_.clear();
    shared_.reset();
}

} // namespace fusdctl::serve
