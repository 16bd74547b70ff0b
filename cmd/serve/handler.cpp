// SPDX-License-Identifier: MIT
//
// fusdctl serve --handler SCRIPT: HandlerServer (see handler.hpp).
#include "serve/handler.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.hpp"
#include "common.hpp"
#include "fusd/admin.hpp"

namespace fusdctl::serve {

namespace {

constexpr int kNotImplemented = 3; // the script's exit status for "do the default"
constexpr std::size_t kStderrKept = 64 * 1024;

struct HandlerFile {
    std::string state_dir;
};

// The script's first argument (fusd::to_string says "close" for a release).
std::string_view op_name(fusd::Op op) { return op == fusd::Op::release ? "release" : fusd::to_string(op); }

// Reads what is there (never waits); false at end of file. Keeps at most `keep` bytes in `into`.
bool drain_pipe(WatchedFd &fd, std::string &into, std::size_t keep) {
    char buf[16 * 1024];
    while (fd) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n > 0) {
            std::size_t room = keep > into.size() ? keep - into.size() : 0;
            into.append(buf, std::min(room, static_cast<std::size_t>(n)));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        fd.reset();
        return false;
    }
    return false;
}

// A fresh state directory for one open file, mode 0700, in the process's scratch directory: gone
// with the process, even when it is SIGKILLed.
std::string make_state_dir() {
    std::string templ = fusd::admin::scratch_dir() + "/handler-XXXXXX";
    if (!::mkdtemp(templ.data()))
        throw std::system_error(errno, std::generic_category(), "mkdtemp " + templ);
    return templ;
}

void remove_state_dir(const std::string &dir, const std::string &device) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec)
        error("{}: removing the state directory {}: {}", device, dir, ec.message());
    ::rmdir(dir.substr(0, dir.rfind('/')).c_str()); // the scratch directory, if nothing else is in it
}

} // namespace

fusd::Callbacks HandlerServer::callbacks() {
    fusd::Callbacks cb;
    cb.open = [this](fusd::Request req) { on_open(std::move(req)); };
    cb.release = [this](fusd::Request req) { on_release(std::move(req)); };
    cb.read = [this](fusd::Request req) {
        if (draining_)
            return req.reply_data(std::string_view{});
        std::string size = std::to_string(req.size());
        run(std::move(req), {size}, {}, {});
    };
    cb.write = [this](fusd::Request req) {
        if (draining_)
            return req.reply_error(EIO);
        std::string size = std::to_string(req.size());
        std::string data(req.text());
        run(std::move(req), {size}, std::move(data), {});
    };
    cb.ioctl = [this](fusd::Request req) {
        if (draining_)
            return req.reply_error(EIO);
        std::vector<std::string> args = {fmt::format("{:#x}", req.ioctl_command()), std::to_string(req.size())};
        std::string data(req.text());
        run(std::move(req), std::move(args), std::move(data), {});
    };
    cb.interrupt = [this](fusd::File &, std::uint64_t id) { on_interrupt(id); };
    return cb;
}

void HandlerServer::on_open(fusd::Request req) {
    if (draining_)
        return req.reply_error(ENXIO);
    std::string dir;
    try {
        dir = make_state_dir();
    } catch (const std::system_error &e) {
        error("{}: open by pid {}: {}", config_.path, req.caller().pid, e.what());
        return req.reply_error(EIO);
    }
    state_dirs_.push_back(dir);
    req.file().state() = std::make_shared<HandlerFile>(HandlerFile{dir});
    run(std::move(req), {}, {}, dir);
}

void HandlerServer::on_release(fusd::Request req) {
    auto *file = static_cast<HandlerFile *>(req.file().state().get());
    std::string dir = file ? file->state_dir : std::string{};
    req.file().state().reset();
    if (draining_ || dir.empty()) {
        if (!dir.empty()) {
            remove_state_dir(dir, config_.path);
            std::erase(state_dirs_, dir);
        }
        return req.reply_ok();
    }
    run(std::move(req), {}, {}, dir); // the directory goes once the script has ended
}

void HandlerServer::on_interrupt(std::uint64_t id) {
    for (auto &[p, call] : calls_) {
        if (call->id == id && !call->interrupted && call->op != fusd::Op::release) {
            call->interrupted = true;
            signal_group(call->pid, SIGKILL);
        }
    }
}

void HandlerServer::run(fusd::Request req, std::vector<std::string> args, std::string input, std::string state_dir) {
    auto call = std::make_unique<HandlerCall>();
    call->op = req.op();
    call->id = req.id();
    call->size = req.size();
    call->state_dir = state_dir;
    if (call->state_dir.empty())
        if (auto *file = static_cast<HandlerFile *>(req.file().state().get()))
            call->state_dir = file->state_dir;

    const fusd::Caller &caller = req.caller();
    std::vector<std::string> env = {
        "FUSD_DEVICE=" + config_.path,
        fmt::format("FUSD_CALLER_PID={}", caller.pid),
        fmt::format("FUSD_CALLER_UID={}", caller.real_uid),
        fmt::format("FUSD_CALLER_GID={}", caller.real_gid),
        fmt::format("FUSD_OPEN_FLAGS={}", req.flags()),
        fmt::format("FUSD_FILE={}", req.file().id()),
        "FUSD_STATE_DIR=" + call->state_dir,
    };
    if (call->op == fusd::Op::ioctl)
        env.push_back(fmt::format("FUSD_IOCTL_ARG={}", req.ioctl_argument()));
    CommandSpec spec = config_.command;
    spec.argv.emplace_back(op_name(call->op));
    for (std::string &a : args)
        spec.argv.push_back(std::move(a));

    auto fail = [&](int err, const std::string &why) {
        error("{}: {} by pid {}: {}", config_.path, op_name(call->op), caller.pid, why);
        if (call->op == fusd::Op::open || call->op == fusd::Op::release) {
            remove_state_dir(call->state_dir, config_.path);
            std::erase(state_dirs_, call->state_dir);
            req.file().state().reset();
        }
        if (call->op == fusd::Op::release)
            return req.reply_ok();
        req.reply_error(err);
    };
    // Its stderr on a pipe of ours (blocking on its side): an errno name there is the answer.
    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0)
        return fail(EIO, fmt::format("pipe2: {}", std::strerror(errno)));
    fusd::Fd err_r{err_pipe[0]}, err_w{err_pipe[1]};
    ::fcntl(err_r.get(), F_SETFL, ::fcntl(err_r.get(), F_GETFL) | O_NONBLOCK);
    Child child;
    try {
        child = spawn_command(spec, env, err_w.get());
    } catch (const std::system_error &e) {
        int err = e.code().value();
        return fail(err > 0 && err < 4096 ? err : EIO, e.what());
    }
    err_w.reset();

    call->req = std::move(req);
    call->pid = child.pid;
    call->to_write = std::move(input);
    HandlerCall *c = call.get();
    call->pidfd.reset(std::move(child.pidfd));
    call->input.reset(std::move(child.stdin_pipe));
    call->output.reset(std::move(child.stdout_pipe));
    call->errors.reset(std::move(err_r));
    calls_.emplace(c, std::move(call));

    c->pidfd.watch(*loop_, EPOLLIN, [this, c](std::uint32_t) { on_exit(*c); });
    c->output.watch(*loop_, EPOLLIN, [this, c](std::uint32_t) { collect(*c); });
    c->errors.watch(*loop_, EPOLLIN, [this, c](std::uint32_t) { collect(*c); });
    feed(*c);
}

// Its stdin: the call's data, then end of file.
void HandlerServer::feed(HandlerCall &call) {
    while (call.input && call.written < call.to_write.size()) {
        ssize_t n = ::write(call.input.get(), call.to_write.data() + call.written, call.to_write.size() - call.written);
        if (n > 0) {
            call.written += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!call.input.watched())
                call.input.watch(*loop_, EPOLLOUT, [this, &call](std::uint32_t) { feed(call); });
            return;
        }
        break; // EPIPE: it does not read its input
    }
    call.input.reset();
}

void HandlerServer::collect(HandlerCall &call) {
    // A read's or an ioctl's output is kept up to one byte more than the call takes (too much is
    // an error); a write's, up to a count. The rest is read and dropped, so that it never blocks.
    std::size_t keep = call.op == fusd::Op::read || call.op == fusd::Op::ioctl ? call.size + 1 : 32;
    drain_pipe(call.output, call.out, keep);
    drain_pipe(call.errors, call.err, kStderrKept);
}

void HandlerServer::on_exit(HandlerCall &call) {
    collect(call); // all it wrote is in the pipes by now
    // Whatever it left in its group goes with it (and so do the pipes' last writers).
    signal_group(call.pid, SIGKILL);
    int status = reap(call.pid);
    call.pidfd.reset();
    call.input.reset();
    call.output.reset();
    call.errors.reset();
    complete(call, status);
    bury(call);
}

void HandlerServer::complete(HandlerCall &call, int status) {
    fusd::Request &req = call.req;
    std::string what = fmt::format("{}: {} {}", config_.path, config_.command.argv.at(0), op_name(call.op));
    // Its stderr goes to ours (or --log), but for the errno name that answers the call.
    std::string_view err = call.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ' || err.back() == '\r'))
        err.remove_suffix(1);
    std::size_t last_nl = err.rfind('\n');
    std::string_view last = last_nl == std::string_view::npos ? err : err.substr(last_nl + 1);
    int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int errnum = exit_code == 1 ? errno_by_name(last) : 0;
    std::string_view shown = errnum ? err.substr(0, last_nl == std::string_view::npos ? 0 : last_nl + 1) : err;
    if (!shown.empty()) {
        std::string text(shown);
        if (text.back() != '\n')
            text += '\n';
        (void)!::write(STDERR_FILENO, text.data(), text.size());
    }

    bool releasing = call.op == fusd::Op::release;
    bool opening = call.op == fusd::Op::open;
    auto finish_state = [&](bool keep) {
        if (keep)
            return;
        remove_state_dir(call.state_dir, config_.path);
        std::erase(state_dirs_, call.state_dir);
    };
    if (call.interrupted) {
        finish_state(!opening);
        return; // its caller already has EINTR (an open that fails leaves no file to release)
    }
    if (releasing) {
        if (exit_code != 0 && exit_code != kNotImplemented)
            error("{}: {}", what, describe_status(status));
        finish_state(false);
        return req.reply_ok(); // close(2) does not fail
    }

    if (exit_code == kNotImplemented) {
        switch (call.op) { // libfusd's defaults (Callbacks)
        case fusd::Op::open:
            return req.reply_ok();
        case fusd::Op::read:
            return req.reply_data(std::string_view{});
        case fusd::Op::write:
            return req.reply_written(call.size);
        default:
            return req.reply_error(ENOTTY);
        }
    }
    if (exit_code == 1 && errnum) {
        finish_state(!opening);
        return req.reply_error(errnum);
    }
    if (exit_code != 0) {
        if (exit_code == 1)
            error("{}: exited with status 1 and no errno name (such as EAGAIN) as the last line of its stderr", what);
        else
            error("{}: {}", what, describe_status(status));
        finish_state(!opening);
        return req.reply_error(EIO);
    }
    switch (call.op) {
    case fusd::Op::open:
        return req.reply_ok();
    case fusd::Op::read:
    case fusd::Op::ioctl:
        if (call.out.size() > call.size) {
            error("{}: printed more than the {} bytes the call takes", what, call.size);
            return req.reply_error(EIO);
        }
        if (call.op == fusd::Op::read)
            return req.reply_data(call.out);
        return req.reply_ioctl(0, {reinterpret_cast<const std::byte *>(call.out.data()), call.out.size()});
    case fusd::Op::write: {
        std::string_view out = call.out;
        while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
            out.remove_suffix(1);
        if (out.empty())
            return req.reply_written(call.size);
        std::size_t n = 0;
        auto [end, ec] = std::from_chars(out.data(), out.data() + out.size(), n);
        if (ec != std::errc{} || end != out.data() + out.size() || n > call.size) {
            error("{}: printed '{}', not a count of bytes taken from 0 to {}", what, out.substr(0, 40), call.size);
            return req.reply_error(EIO);
        }
        return req.reply_written(n);
    }
    default:
        return req.reply_error(EIO);
    }
}

void HandlerServer::bury(HandlerCall &call) {
    auto it = calls_.find(&call);
    if (it == calls_.end())
        return;
    bool first = graveyard_.empty();
    graveyard_.push_back(std::move(it->second));
    calls_.erase(it);
    if (first)
        loop_->post([this] { graveyard_.clear(); });
}

bool HandlerServer::idle() const { return calls_.empty() && (!device_ || device_->open_files() == 0); }

void HandlerServer::drain() {
    if (draining_)
        return;
    draining_ = true;
    drain_timer_.start(*loop_, config_.grace, [this] { return idle(); });
}

void HandlerServer::shutdown() {
    drain_timer_.cancel();
    draining_ = true;
    remove_if_registered(loop_, device_, config_.path);
    // Scripts still running: SIGTERM, --grace, SIGKILL; every one reaped.
    for (auto &[p, call] : calls_) {
        call->output.reset();
        call->errors.reset();
        call->input.reset();
        call->pidfd.unwatch();
        signal_group(call->pid, SIGTERM);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(config_.grace);
    for (auto &[p, call] : calls_) {
        pollfd pfd{call->pidfd.get(), POLLIN, 0};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() > 0)
            (void)::poll(&pfd, 1, static_cast<int>(left.count()));
        signal_group(call->pid, SIGKILL);
        reap(call->pid);
        call->pidfd.reset();
    }
    calls_.clear();
    graveyard_.clear();
    for (const std::string &dir : state_dirs_)
        remove_state_dir(dir, config_.path);
    state_dirs_.clear();
}

} // namespace fusdctl::serve
