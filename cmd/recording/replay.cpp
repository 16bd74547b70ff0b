// SPDX-License-Identifier: MIT
//
// fusdctl replay FILE [--as /dev/NAME] [--fast] [--loose]
//
// Serves a recording (fusd-recording(5)) as a device. Everything runs on the Loop's thread.
//
//   Track     one recorded open: its calls in order, how far the caller has come, the reads
//             waiting for their turn. The device's k-th open is matched with the recording's
//             k-th open.
//   Replayer  the device's callbacks: each call is checked against its Track's next recorded
//             call and answered as recorded; a read waits until its recorded time (measured
//             from the first open) unless --fast, on one timerfd. A departure (another call, or
//             the same call with other data) is answered EIO and reported naming both calls,
//             or with --loose answered as well as the recording allows and only reported.
//
// Recorded EAGAIN answers are not replayed as calls: they are the timing of a nonblocking
// caller, and the waiting turn of the next read reproduces them (a nonblocking read before its
// turn gets EAGAIN, and poll() says readable once the turn has come).
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "fd.hpp"
#include "fusd/fusd.hpp"
#include "recording/format.hpp"

namespace fusdctl {

namespace {

using recording::Call;
using recording::Event;
using Clock = std::chrono::steady_clock;

struct ReplayOptions {
    std::string file;
    std::string as;
    bool fast = false;
    bool loose = false;
    std::string mode = "0660";
    std::string backend = "auto";
};

struct Track {
    const Event *open = nullptr;
    std::vector<const Event *> calls; // after the open, close included
    std::size_t next = 0;
    bool opened = false;
    bool closed = false;
    std::shared_ptr<fusd::File> file;
    std::deque<fusd::Request> waiting_reads;

    const Event *expected() const { return next < calls.size() ? calls[next] : nullptr; }
    // A read still to come on this open: a read that arrives before the calls recorded ahead of
    // it (a reader thread beside a writer on one open) waits for them instead of departing.
    bool read_ahead() const {
        for (std::size_t i = next; i < calls.size(); ++i)
            if (calls[i]->call == Call::read)
                return true;
        return false;
    }
};

// What the caller's call was, in the recording's terms, for messages.
Event came_of(const fusd::Request &req) {
    Event e;
    switch (req.op()) {
    case fusd::Op::read:
        e.call = Call::read;
        e.size = req.size();
        break;
    case fusd::Op::write:
        e.call = Call::write;
        e.data = std::string(req.text());
        break;
    case fusd::Op::ioctl:
        e.call = Call::ioctl;
        e.request = req.ioctl_command();
        e.in = std::string(req.text());
        if (e.in.empty() && req.size() == 0)
            e.arg = req.ioctl_argument();
        break;
    case fusd::Op::release: e.call = Call::close; break;
    default:
        e.call = Call::open;
        e.access = recording::access_of(req.flags());
        break;
    }
    return e;
}

class Replayer {
public:
    Replayer(const ReplayOptions &opts, recording::Recording rec) : opts_(opts), rec_(std::move(rec)) {
        tracks_ = std::vector<Track>(rec_.opens); // in place: a Track is not copyable
        for (const Event &e : rec_.events) {
            Track &t = tracks_[e.open - 1];
            if (e.call == Call::open)
                t.open = &e;
            else if (!((e.call == Call::read || e.call == Call::write) && e.error == EAGAIN))
                t.calls.push_back(&e);
        }
        timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
        if (!timer_)
            throw std::system_error(errno, std::generic_category(), "timerfd_create");
    }

    fusd::Callbacks callbacks() {
        fusd::Callbacks cb;
        cb.open = [this](fusd::Request r) { on_open(std::move(r)); };
        cb.read = [this](fusd::Request r) { on_read(std::move(r)); };
        cb.write = [this](fusd::Request r) { on_write(std::move(r)); };
        cb.ioctl = [this](fusd::Request r) { on_ioctl(std::move(r)); };
        cb.release = [this](fusd::Request r) { on_release(std::move(r)); };
        cb.interrupt = [this](fusd::File &f, std::uint64_t id) { on_interrupt(f, id); };
        return cb;
    }

    void start(fusd::Loop &loop) {
        loop_ = &loop;
        loop.watch(timer_.get(), EPOLLIN, [this](std::uint32_t) {
            std::uint64_t n;
            [[maybe_unused]] ssize_t r = ::read(timer_.get(), &n, sizeof n);
            for (Track &t : tracks_)
                if (t.opened && !t.closed)
                    advance(t);
            arm_timer();
        });
        check_done();
    }
    void stop(fusd::Loop &loop) {
        loop.unwatch(timer_.get());
        for (Track &t : tracks_) {
            t.waiting_reads.clear(); // answered EIO by their destructors
            t.file.reset();
        }
    }

    unsigned departures() const { return departures_; }
    unsigned long replayed() const { return replayed_; }
    bool done() const { return done_; }
    std::string progress() const {
        std::size_t left = 0;
        for (const Track &t : tracks_)
            left += t.calls.size() - std::min(t.next, t.calls.size()) + (t.opened ? 0 : 1);
        return fmt::format("{} calls replayed, {} not reached", replayed_, left);
    }

private:
    Track *track_of(fusd::File &file) {
        auto index = std::static_pointer_cast<unsigned>(file.state());
        return index && *index ? &tracks_[*index - 1] : nullptr;
    }

    bool due(const Event &e) const {
        if (opts_.fast || !e.t || !origin_)
            return true;
        return Clock::now() >= due_time(e);
    }
    Clock::time_point due_time(const Event &e) const {
        return *origin_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*e.t));
    }

    // A departure: reported, counted unless --loose. Returns true when --loose.
    bool depart(const Track *t, unsigned index, const Event &came) {
        const Event *want = t ? t->expected() : nullptr;
        std::string expected;
        if (want)
            expected = fmt::format("{}:{}: open {}: expected {}", opts_.file, want->line, index, recording::describe(*want));
        else if (t)
            expected = fmt::format("{}: open {}: expected nothing more (its recorded calls are done)", opts_.file, index);
        else
            expected = fmt::format("{}: expected no more opens (the recording has {})", opts_.file, rec_.opens);
        error("replay: {}, came {}{}", expected, recording::describe(came), opts_.loose ? " (--loose: carried on)" : "");
        if (!opts_.loose)
            ++departures_;
        return opts_.loose;
    }

    void publish(Track &t) {
        if (!t.file || t.closed)
            return;
        unsigned r = fusd::ready::writable;
        const Event *e = t.expected();
        if (e && e->call == Call::read && due(*e))
            r |= fusd::ready::readable;
        t.file->notify(r);
    }

    void arm_timer() {
        std::optional<Clock::time_point> first;
        if (!opts_.fast && origin_)
            for (const Track &t : tracks_) {
                const Event *e = t.expected();
                if (t.opened && !t.closed && e && e->call == Call::read && e->t && !due(*e))
                    first = first ? std::min(*first, due_time(*e)) : due_time(*e);
            }
        itimerspec spec{};
        if (first) {
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*first - Clock::now()).count();
            ns = std::max<long long>(ns, 1);
            spec.it_value.tv_sec = ns / 1000000000;
            spec.it_value.tv_nsec = ns % 1000000000;
        }
        ::timerfd_settime(timer_.get(), 0, &spec, nullptr);
    }

    unsigned index_of(const Track &t) const { return unsigned(&t - tracks_.data()) + 1; }

    void on_open(fusd::Request req) {
        Event came = came_of(req);
        if (!origin_)
            origin_ = Clock::now();
        if (opened_ == tracks_.size()) {
            if (depart(nullptr, 0, came)) {
                req.file().state() = std::make_shared<unsigned>(0);
                ++live_;
                req.reply_ok();
            } else {
                req.reply_error(EIO);
            }
            return;
        }
        Track &t = tracks_[opened_];
        unsigned index = opened_ + 1;
        if (t.open->access != came.access) {
            error("replay: {}:{}: open {}: expected {}, came {}{}", opts_.file, t.open->line, index,
                  recording::describe(*t.open), recording::describe(came), opts_.loose ? " (--loose: carried on)" : "");
            if (!opts_.loose) {
                ++departures_;
                req.reply_error(EIO);
                return;
            }
        }
        ++opened_;
        ++replayed_;
        t.opened = true;
        if (t.open->error) {
            t.closed = true;
            req.reply_error(t.open->error);
            check_done();
            return;
        }
        t.file = req.file().keep();
        req.file().state() = std::make_shared<unsigned>(index);
        ++live_;
        publish(t); // before the open returns: a poll() right after it sees the recording's turn
        req.reply_ok();
        arm_timer();
    }

    // Answers the reads waiting on t that can be answered now.
    void advance(Track &t) {
        while (!t.waiting_reads.empty()) {
            fusd::Request &req = t.waiting_reads.front();
            const Event *e = t.expected();
            if (e && e->call != Call::read && t.read_ahead())
                break;
            if (!e || e->call != Call::read) {
                fusd::Request r = std::move(req);
                t.waiting_reads.pop_front();
                if (depart(&t, index_of(t), came_of(r)))
                    r.reply_data(std::string_view{});
                else
                    r.reply_error(EIO);
                continue;
            }
            if (!due(*e))
                break;
            fusd::Request r = std::move(req);
            t.waiting_reads.pop_front();
            answer_read(t, *e, std::move(r));
        }
        publish(t);
    }

    void answer_read(Track &t, const Event &e, fusd::Request req) {
        if (e.error) {
            ++t.next;
            ++replayed_;
            req.reply_error(e.error);
            return;
        }
        std::string_view data = e.data;
        if (req.size() < data.size()) {
            if (!depart(&t, index_of(t), came_of(req))) {
                req.reply_error(EIO);
                return;
            }
            data = data.substr(0, req.size());
        }
        ++t.next;
        ++replayed_;
        req.reply_data(data);
    }

    void on_read(fusd::Request req) {
        Track *t = track_of(req.file());
        if (!t) {
            depart(nullptr, 0, came_of(req)); // only under --loose: an open beyond the recording
            req.reply_data(std::string_view{});
            return;
        }
        const Event *e = t->expected();
        if (e && e->call != Call::read && t->read_ahead()) {
            if (req.nonblocking())
                req.reply_again();
            else
                t->waiting_reads.push_back(std::move(req));
            return;
        }
        if (!e || e->call != Call::read) {
            if (depart(t, index_of(*t), came_of(req)))
                req.reply_data(std::string_view{});
            else
                req.reply_error(EIO);
            return;
        }
        if (t->waiting_reads.empty() && due(*e)) {
            answer_read(*t, *e, std::move(req));
            publish(*t);
            return;
        }
        if (req.nonblocking()) {
            req.reply_again();
            return;
        }
        t->waiting_reads.push_back(std::move(req));
        arm_timer();
    }

    void on_write(fusd::Request req) {
        Track *t = track_of(req.file());
        const Event *e = t ? t->expected() : nullptr;
        if (!e || e->call != Call::write || e->data != req.text()) {
            bool same_kind = e && e->call == Call::write;
            if (!depart(t, t ? index_of(*t) : 0, came_of(req))) {
                req.reply_error(EIO);
                return;
            }
            if (!same_kind) {
                req.reply_written(req.text().size());
                return;
            }
        }
        ++t->next;
        ++replayed_;
        if (e->error)
            req.reply_error(e->error);
        else
            req.reply_written(std::min<std::size_t>(std::size_t(e->result), req.text().size()));
        after_call(*t);
    }

    void on_ioctl(fusd::Request req) {
        Track *t = track_of(req.file());
        const Event *e = t ? t->expected() : nullptr;
        Event came = came_of(req);
        bool same_kind = e && e->call == Call::ioctl && e->request == came.request;
        if (!same_kind || e->in != came.in || (came.in.empty() && req.size() == 0 && e->arg != came.arg)) {
            if (!depart(t, t ? index_of(*t) : 0, came)) {
                req.reply_error(EIO);
                return;
            }
            if (!same_kind) {
                req.reply_error(ENOTTY);
                return;
            }
        }
        ++t->next;
        ++replayed_;
        if (e->error)
            req.reply_error(e->error);
        else
            req.reply_ioctl(int(e->result), std::as_bytes(std::span(e->out.data(), std::min(e->out.size(), req.size()))));
        after_call(*t);
    }

    void after_call(Track &t) {
        advance(t);
        arm_timer();
    }

    void on_release(fusd::Request req) {
        Track *t = track_of(req.file());
        if (t) {
            const Event *e = t->expected();
            if (e && e->call == Call::close) {
                ++t->next;
                ++replayed_;
            } else if (e) {
                depart(t, index_of(*t), came_of(req));
            }
            t->closed = true;
            t->waiting_reads.clear();
            t->file.reset();
        }
        if (req.file().state())
            --live_;
        req.reply_ok();
        check_done();
    }

    void on_interrupt(fusd::File &file, std::uint64_t id) {
        if (Track *t = track_of(file))
            std::erase_if(t->waiting_reads, [id](const fusd::Request &r) { return r.id() == id; });
    }

    // The recording is done once each of its opens came and was closed, and no file is open.
    void check_done() {
        if (!loop_ || done_ || live_ > 0 || opened_ < tracks_.size())
            return;
        for (const Track &t : tracks_)
            if (!t.closed)
                return;
        done_ = true;
        loop_->stop();
    }

    const ReplayOptions &opts_;
    recording::Recording rec_;
    std::vector<Track> tracks_;
    unsigned opened_ = 0;
    std::size_t live_ = 0;
    unsigned departures_ = 0;
    unsigned long replayed_ = 0;
    bool done_ = false;
    std::optional<Clock::time_point> origin_;
    fusd::Fd timer_;
    fusd::Loop *loop_ = nullptr;
};

int run_replay(const ReplayOptions &opts) {
    char *end = nullptr;
    unsigned long mode = std::strtoul(opts.mode.c_str(), &end, 8);
    if (opts.mode.empty() || *end || mode > 07777)
        throw UsageError{fmt::format("replay: --mode {}: not an octal mode such as 0660", opts.mode)};
    auto backend = fusd::parse_backend(opts.backend);
    if (!backend)
        throw UsageError{fmt::format("replay: --backend {}: not one of {}", opts.backend, fusd::backend_names())};

    recording::Recording rec;
    try {
        rec = recording::parse_recording(opts.file);
    } catch (const recording::RecordingError &e) {
        error("replay: {}", e.what());
        return exit_failure;
    }
    std::string as = opts.as.empty() ? rec.device : opts.as;
    if (as.empty())
        throw UsageError{fmt::format("replay: {} names no device: give --as /dev/NAME", opts.file)};
    try {
        as = fusd::device_path(as);
    } catch (const fusd::Error &e) {
        throw UsageError{fmt::format("replay: --as {}", e.what())};
    }

    Replayer replayer(opts, std::move(rec));
    fusd::Loop loop; // SIGINT/SIGTERM: the device goes, run() returns
    fusd::DeviceOptions dev;
    dev.name = as;
    dev.mode = mode_t(mode);
    dev.backend = *backend;
    fusd::Device *device = nullptr;
    try {
        device = &loop.add(dev, replayer.callbacks());
    } catch (const std::exception &e) {
        std::string what = e.what();
        if (what.find(as) == std::string::npos)
            what = fmt::format("{}: {}", as, what);
        error("replay: {}", what);
        return exit_failure;
    }
    error("replay: serving {} as {} on {}", opts.file, as, fusd::to_string(device->backend()));
    replayer.start(loop);
    int status = exit_ok;
    int sig = 0;
    try {
        if (!replayer.done())
            sig = loop.run();
    } catch (const std::exception &e) {
        error("replay: {}: {}", as, e.what());
        status = exit_failure;
    }
    replayer.stop(loop);
    for (fusd::Device *d : loop.devices())
        loop.remove(*d);
    if (sig)
        error("replay: stopped by {}: {}", sigabbrev_np(sig) ? fmt::format("SIG{}", sigabbrev_np(sig)) : "a signal",
              replayer.progress());
    if (replayer.departures()) {
        error("replay: {}: {} departures from the recording; {}", opts.file, replayer.departures(), replayer.progress());
        return exit_failure;
    }
    if (!sig)
        error("replay: {}: done, {}", opts.file, replayer.progress());
    return status;
}

} // namespace

Command add_replay(CLI::App &app) {
    auto opts = std::make_shared<ReplayOptions>();
    CLI::App *sub = app.add_subcommand("replay", "Serve a recording made by 'fusdctl record' as a device");
    sub->add_option("FILE", opts->file, "The recording (fusd-recording(5))")->required();
    sub->add_option("--as", opts->as, "The device to create: /dev/NAME or NAME (default: the recorded device)");
    sub->add_flag("--fast", opts->fast, "Answer reads at once instead of at their recorded time");
    sub->add_flag("--loose", opts->loose, "Report departures from the recording but carry on, exit status 0");
    sub->add_option("-m,--mode", opts->mode, "Permissions of the node, octal (default 0660)");
    sub->add_option("-b,--backend", opts->backend, "One of " + fusd::backend_names() + " (default auto)");
    return Command{sub, [opts] { return run_replay(*opts); }};
}

} // namespace fusdctl
