// SPDX-License-Identifier: MIT
//
// fusdctl serve --protocol json: ProtocolServer (see protocol.hpp; the protocol itself is
// man/fusd-protocol.7).
#include "serve/protocol.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base64.hpp"
#include "common.hpp"
#include "serve/protocol_answer.hpp"

namespace fusdctl::serve {

using nlohmann::json;

namespace {

std::span<const std::byte> as_bytes(const std::string &s) {
    return {reinterpret_cast<const std::byte *>(s.data()), s.size()};
}

struct ProtocolFile {
    std::uint64_t id;
    unsigned generation;
};

} // namespace

fusd::Callbacks ProtocolServer::callbacks() {
    fusd::Callbacks cb;
    cb.open = [this](fusd::Request req) { on_open(std::move(req)); };
    cb.release = [this](fusd::Request req) { on_release(std::move(req)); };
    cb.read = [this](fusd::Request req) {
        if (draining_)
            return req.reply_data(std::string_view{});
        forward(std::move(req));
    };
    cb.write = [this](fusd::Request req) { forward(std::move(req)); };
    cb.ioctl = [this](fusd::Request req) { forward(std::move(req)); };
    cb.interrupt = [this](fusd::File &file, std::uint64_t id) { on_interrupt(file, id); };
    return cb;
}

void ProtocolServer::start() {
    Child child = spawn_command(config_.command, {"FUSD_DEVICE=" + config_.path}, config_.log.get());
    pid_ = child.pid;
    ++generation_;
    restarting_ = false;
    stdin_.reset(std::move(child.stdin_pipe));
    stdout_.reset(std::move(child.stdout_pipe));
    pidfd_.reset(std::move(child.pidfd));
    from_command_.clear();
    skipping_line_ = false;
    pidfd_.watch(*loop_, EPOLLIN, [this](std::uint32_t) { on_exit(); });
    stdout_.watch(*loop_, EPOLLIN, [this](std::uint32_t) { on_output(); });
    flush_input(); // calls that came while it was restarting
}

void ProtocolServer::forget(std::uint64_t id) {
    constexpr std::size_t kForgottenKept = 4096;
    if (!forgotten_.insert(id).second)
        return;
    forgotten_order_.push_back(id);
    if (forgotten_order_.size() > kForgottenKept) {
        forgotten_.erase(forgotten_order_.front());
        forgotten_order_.pop_front();
    }
}

bool ProtocolServer::current(fusd::File &file) const {
    auto *f = static_cast<ProtocolFile *>(file.state().get());
    return f && f->generation == generation_;
}

void ProtocolServer::on_open(fusd::Request req) {
    if (draining_)
        return req.reply_error(ENXIO);
    fusd::File &file = req.file();
    file.state() = std::make_shared<ProtocolFile>(ProtocolFile{file.id(), generation_ + (restarting_ ? 1 : 0)});
    file.notify(readiness_);
    files_.insert_or_assign(file.id(), file.keep());
    const fusd::Caller &c = req.caller();
    json msg = {{"op", "open"}, {"id", req.id()},        {"file", file.id()},   {"flags", req.flags()},
                {"pid", c.pid}, {"uid", c.real_uid}, {"gid", c.real_gid}};
    track_and_send(std::move(req), file.id(), std::move(msg));
}

void ProtocolServer::on_release(fusd::Request req) {
    fusd::File &file = req.file();
    std::uint64_t id = file.id();
    // Nothing of this file can be waiting but calls whose callers were interrupted: their late
    // answers are dropped without a word.
    std::erase_if(calls_, [this, id](const auto &entry) {
        if (entry.second.file != id)
            return false;
        forget(entry.first);
        return true;
    });
    files_.erase(id);
    if (current(file) && !draining_)
        send({{"op", "release"}, {"id", req.id()}, {"file", id}});
    file.state().reset();
    req.reply_ok(); // close(2) does not wait for the command
}

void ProtocolServer::on_interrupt(fusd::File &, std::uint64_t id) {
    auto it = calls_.find(id);
    if (it == calls_.end() || it->second.interrupted)
        return;
    it->second.interrupted = true;
    send({{"op", "interrupt"}, {"id", id}, {"file", it->second.file}});
}

void ProtocolServer::forward(fusd::Request req) {
    if (draining_ || !current(req.file()))
        return req.reply_error(EIO);
    fusd::File &file = req.file();
    const fusd::Caller &c = req.caller();
    json msg = {{"id", req.id()},   {"file", file.id()},  {"flags", req.flags()},
                {"pid", c.pid},     {"uid", c.real_uid}, {"gid", c.real_gid},
                {"size", req.size()}};
    switch (req.op()) {
    case fusd::Op::read:
        msg["op"] = "read";
        break;
    case fusd::Op::write:
        msg["op"] = "write";
        msg["data"] = base64_encode(req.text());
        break;
    case fusd::Op::ioctl:
        msg["op"] = "ioctl";
        msg["command"] = req.ioctl_command();
        msg["argument"] = req.ioctl_argument();
        msg["data"] = base64_encode(req.text());
        break;
    default:
        return req.reply_error(EIO);
    }
    track_and_send(std::move(req), file.id(), std::move(msg));
}

void ProtocolServer::track_and_send(fusd::Request req, std::uint64_t file, json msg) {
    if (!stdin_ && !restarting_)
        return req.reply_error(EIO); // its stdin is closed: nobody will answer
    std::uint64_t id = req.id();
    fusd::Op op = req.op();
    calls_.insert_or_assign(id, ProtocolCall{std::move(req), op, file, false});
    send(msg);
}

void ProtocolServer::send(const json &msg) {
    if (!stdin_ && !restarting_)
        return;
    to_command_ += msg.dump();
    to_command_ += '\n';
    flush_input();
}

// The one place that writes to the command's stdin: as much as the pipe takes, the rest when
// it has room again (EPOLLOUT).
void ProtocolServer::flush_input() {
    while (stdin_ && !to_command_.empty()) {
        ssize_t n = ::write(stdin_.get(), to_command_.data(), to_command_.size());
        if (n > 0) {
            to_command_.erase(0, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        // EPIPE: the command closed its stdin (or is gone); its exit answers the calls.
        stdin_.reset();
        to_command_.clear();
        return;
    }
    if (!stdin_)
        return;
    bool want = !to_command_.empty();
    if (want && !stdin_.watched())
        stdin_.watch(*loop_, EPOLLOUT, [this](std::uint32_t) { flush_input(); });
    else if (!want && stdin_.watched())
        stdin_.unwatch();
}

void ProtocolServer::on_output() {
    char buf[64 * 1024];
    while (stdout_) {
        ssize_t n = ::read(stdout_.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            stdout_.reset(); // end of its output: its exit (pidfd) answers what is left
            if (!from_command_.empty() && !skipping_line_)
                bad_line(from_command_, "no newline at the end of the output");
            from_command_.clear();
            return;
        }
        std::string_view chunk(buf, static_cast<std::size_t>(n));
        while (!chunk.empty()) {
            std::size_t nl = chunk.find('\n');
            if (nl == std::string_view::npos) {
                if (!skipping_line_)
                    from_command_.append(chunk);
                if (from_command_.size() > kMaxLine) {
                    bad_line(from_command_, fmt::format("a line longer than {} bytes", kMaxLine));
                    from_command_.clear();
                    skipping_line_ = true;
                }
                break;
            }
            if (skipping_line_) {
                skipping_line_ = false;
            } else if (from_command_.empty()) {
                on_line(chunk.substr(0, nl));
            } else {
                from_command_.append(chunk.substr(0, nl));
                std::string line = std::move(from_command_);
                from_command_.clear();
                on_line(line);
            }
            chunk.remove_prefix(nl + 1);
        }
    }
}

void ProtocolServer::bad_line(std::string_view line, const std::string &why) {
    constexpr std::size_t shown = 300;
    std::string text(line.substr(0, shown));
    error("{}: command {}: bad answer ({}): {}{}", config_.path, pid_, why, text, line.size() > shown ? "..." : "");
}

void ProtocolServer::on_line(std::string_view line) {
    AnswerLine parsed = read_answer_line(line);
    if (parsed.blank)
        return; // blank lines are allowed between answers
    const json &msg = parsed.msg;
    std::optional<std::uint64_t> id = parsed.id;
    try {
        if (!msg.is_object())
            throw std::invalid_argument(msg.is_discarded() ? "not JSON" : "not a JSON object");
        if (msg.contains("readiness") && !msg.contains("id"))
            return set_readiness(msg);
        if (!id)
            throw std::invalid_argument("no \"id\" (a call's id) and no \"readiness\"");
        auto it = calls_.find(*id);
        if (it == calls_.end() && forgotten_.erase(*id))
            return; // interrupted, its file since released
        if (it == calls_.end())
            throw std::invalid_argument(fmt::format("no call {} is waiting", *id));
        ProtocolCall call = std::move(it->second);
        calls_.erase(it);
        if (call.interrupted)
            return; // its caller already has EINTR
        try {
            answer(call, msg);
        } catch (const std::exception &) {
            if (call.req)
                call.req.reply_error(EIO);
            throw;
        }
    } catch (const std::exception &e) {
        if (id && !msg.is_object()) {
            if (auto it = calls_.find(*id); it != calls_.end()) {
                if (!it->second.interrupted)
                    it->second.req.reply_error(EIO);
                calls_.erase(it);
            }
        }
        if (!draining_)
            bad_line(line, e.what());
    }
}

void ProtocolServer::answer(ProtocolCall &call, const json &reply) {
    fusd::Request &req = call.req;
    CallAnswer a = parse_call_answer(call.op, req.size(), reply);
    if (a.error)
        return req.reply_error(a.error);
    switch (call.op) {
    case fusd::Op::open:
        return req.reply_ok();
    case fusd::Op::read:
        return req.reply_data(as_bytes(a.bytes));
    case fusd::Op::write:
        return req.reply_written(a.written);
    case fusd::Op::ioctl:
        return req.reply_ioctl(a.result, as_bytes(a.bytes));
    default:
        throw std::invalid_argument("not a call that takes an answer");
    }
}

void ProtocolServer::set_readiness(const json &msg) {
    Readiness r = parse_readiness(msg);
    if (!r.file) {
        readiness_ = r.events;
        if (device_)
            device_->notify_all(r.events);
        return;
    }
    auto it = files_.find(*r.file);
    if (it == files_.end())
        throw std::invalid_argument(fmt::format("file {} is not open", *r.file));
    it->second->notify(r.events);
}

void ProtocolServer::fail_calls(bool draining) {
    auto calls = std::move(calls_);
    calls_.clear();
    for (auto &[id, call] : calls) {
        if (call.interrupted || !call.req)
            continue;
        if (draining && call.op == fusd::Op::read)
            call.req.reply_data(std::string_view{});
        else if (call.op == fusd::Op::open)
            call.req.reply_error(draining ? ENXIO : EIO);
        else
            call.req.reply_error(EIO);
    }
}

void ProtocolServer::on_exit() {
    on_output(); // answers it wrote before it ended count
    // Whatever it left in its group goes with it; the zombie still holds the group id, so this
    // cannot hit a stranger.
    signal_group(pid_, SIGKILL);
    int status = reap(pid_);
    pidfd_.reset();
    stdin_.reset();
    stdout_.reset();
    to_command_.clear();
    fail_calls(draining_);
    if (draining_)
        return;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (config_.restart) {
        if (!clean)
            error("{}: command {} {}; restarting", config_.path, pid_, describe_status(status));
        restarting_ = true;
        itimerspec t{};
        double delay = config_.restart_delay > 0 ? config_.restart_delay : 1e-6;
        t.it_value.tv_sec = static_cast<time_t>(delay);
        t.it_value.tv_nsec = static_cast<long>((delay - static_cast<double>(t.it_value.tv_sec)) * 1e9);
        if (t.it_value.tv_sec == 0 && t.it_value.tv_nsec == 0)
            t.it_value.tv_nsec = 1000;
        timer_.reset(fusd::Fd{::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)});
        if (timer_) {
            ::timerfd_settime(timer_.get(), 0, &t, nullptr);
            timer_.watch(*loop_, EPOLLIN, [this](std::uint32_t) { on_timer(); });
            return;
        }
        error("{}: timerfd_create: {}", config_.path, std::strerror(errno));
    }
    error("{}: command {} {}", config_.path, pid_, describe_status(status));
    if (!clean)
        status_ = exit_failure;
    loop_->stop();
}

void ProtocolServer::on_timer() {
    timer_.reset();
    try {
        start();
    } catch (const std::system_error &e) {
        error("{}: restarting the command: {}", config_.path, e.what());
        status_ = exit_failure;
        restarting_ = false;
        fail_calls(false);
        loop_->stop();
    }
}

void ProtocolServer::drain() {
    if (draining_)
        return;
    draining_ = true;
    fail_calls(true);
    timer_.reset();
    restarting_ = false;
    // End of input asks the command to end; shutdown() gives it --grace before SIGTERM.
    stdin_.reset();
    to_command_.clear();
    drain_timer_.start(*loop_, config_.grace, [this] { return !device_ || device_->open_files() == 0; });
}

void ProtocolServer::shutdown() {
    drain_timer_.cancel();
    timer_.reset();
    draining_ = true;
    fail_calls(true);
    remove_if_registered(loop_, device_, config_.path);
    files_.clear();
    stdin_.reset();
    stdout_.reset();
    pidfd_.unwatch();
    if (!pidfd_)
        return;
    // End of input first (above); then SIGTERM; then SIGKILL; --grace between each.
    auto exited_within = [this](double seconds) {
        pollfd p{pidfd_.get(), POLLIN, 0};
        auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        while (true) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            int n = ::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
            if (n > 0)
                return true;
            if (n == 0 || errno != EINTR)
                return false;
        }
    };
    if (!exited_within(config_.grace)) {
        signal_group(pid_, SIGTERM);
        if (!exited_within(config_.grace))
            signal_group(pid_, SIGKILL);
    }
    signal_group(pid_, SIGKILL);
    reap(pid_);
    pidfd_.reset();
}

} // namespace fusdctl::serve
