// SPDX-License-Identifier: MIT
//
// fusdctl record REAL-DEVICE (--as /dev/NAME | --in-place) -o FILE
//
// A pass-through device in front of a real one, writing every exchange to FILE
// (fusd-recording(5)).
//
//   Recorder     the device's callbacks: open makes a PassThrough, every other call is queued
//                on the open's PassThrough; interrupt wakes it.
//   PassThrough  one open of the device: its own thread and its own descriptor of the real
//                device, opened with the caller's access mode, nonblocking. The thread makes the
//                calls on the real device, answers the caller, writes the exchange to the
//                Journal, and publishes the real device's poll readiness. A read or write that
//                would block is parked until poll() on the real descriptor says it can go on,
//                while the thread goes on with the open's other calls: a reader thread blocked
//                on a terminal does not hold up the writes and ioctls of another thread on the
//                same open, and the Loop's thread never waits for the real device at all. The
//                thread's wake-up eventfd brings new calls, interrupts and the stop.
//   Journal      FILE: one line per answer, written before the answer goes back, so the lines
//                are in the order the callers saw them.
//   MovedNode    --in-place: the real node renamed aside while the recording runs, renamed
//                back when it ends, whatever ends it.
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <atomic>
#include <chrono>
#include <csignal>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "fd.hpp"
#include "fusd/fusd.hpp"
#include "recording/format.hpp"
#include "recording/pointer_ioctls.hpp"

namespace fusdctl {

namespace {

using recording::Call;
using recording::Event;

struct RecordOptions {
    std::string real;
    std::string as;
    std::string output;
    bool in_place = false;
    std::string mode = "0660";
    std::string backend = "auto";
};

class Journal {
public:
    explicit Journal(fusd::Fd fd) : fd_(std::move(fd)) {}

    bool write_line(const std::string &line) {
        std::lock_guard lock(mutex_);
        return write_locked(line);
    }

    // Stamps the event with the time since the first open and writes its line.
    void write(Event event) {
        std::lock_guard lock(mutex_);
        auto now = std::chrono::steady_clock::now();
        if (!origin_)
            origin_ = now;
        event.t = std::chrono::duration<double>(now - *origin_).count();
        ++lines_;
        write_locked(recording::format_event(event));
    }

    unsigned long lines() const {
        std::lock_guard lock(mutex_);
        return lines_;
    }
    int error() const {
        std::lock_guard lock(mutex_);
        return error_;
    }

private:
    bool write_locked(const std::string &line) {
        if (error_)
            return false;
        if (!write_all(fd_.get(), line + "\n")) {
            error_ = errno;
            return false;
        }
        return true;
    }

    mutable std::mutex mutex_;
    fusd::Fd fd_;
    std::optional<std::chrono::steady_clock::time_point> origin_;
    unsigned long lines_ = 0;
    int error_ = 0;
};

unsigned readiness_of(short revents) {
    unsigned r = 0;
    if (revents & POLLIN)
        r |= fusd::ready::readable;
    if (revents & POLLOUT)
        r |= fusd::ready::writable;
    if (revents & POLLERR)
        r |= fusd::ready::error;
    if (revents & POLLHUP)
        r |= fusd::ready::hangup;
    return r;
}

class PassThrough {
public:
    PassThrough(std::string real, Journal &journal, unsigned index, std::shared_ptr<fusd::File> file,
                std::function<void()> finished)
        : real_(std::move(real)), journal_(journal), index_(index), file_(std::move(file)),
          finished_(std::move(finished)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (!wake_)
            throw std::system_error(errno, std::generic_category(), "eventfd");
        thread_ = std::thread([this] { run(); });
    }
    PassThrough(const PassThrough &) = delete;
    PassThrough &operator=(const PassThrough &) = delete;
    ~PassThrough() {
        stop();
        // An ioctl can wait in the real device for as long as it likes (TIOCMIWAIT waits for a
        // modem line): a signal to the thread ends it with EINTR.
        while (!done_.load())
            if (in_ioctl_.load() != 0) {
                ::pthread_kill(thread_.native_handle(), kInterruptSignal);
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        thread_.join();
    }

    unsigned index() const { return index_; }

    void submit(fusd::Request req) {
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(req));
        }
        wake();
    }
    void interrupt(std::uint64_t id) {
        {
            std::lock_guard lock(mutex_);
            interrupted_.insert(id);
            if (in_ioctl_.load() == id)
                ::pthread_kill(thread_.native_handle(), kInterruptSignal); // its ioctl: EINTR
        }
        wake();
    }
    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake();
    }

    // Interrupts the thread's system call; its handler does nothing (installed without
    // SA_RESTART, so the call returns EINTR).
    static constexpr int kInterruptSignal = SIGUSR1;
    static void install_interrupt_handler() {
        struct sigaction sa {};
        sa.sa_handler = [](int) {};
        sigemptyset(&sa.sa_mask);
        ::sigaction(kInterruptSignal, &sa, nullptr);
    }

private:
    void wake() {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
    }

    void run() {
        serve();
        file_.reset();
        done_ = true;
    }

    // Under the lock that interrupt() signals under: an interrupt either is seen here, or comes
    // once in_ioctl_ is set and so signals the ioctl.
    bool cancelled_before_ioctl(std::uint64_t id) {
        std::lock_guard lock(mutex_);
        return stopping_ || interrupted_.count(id) > 0;
    }

    void drain_wake() {
        std::uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wake_.get(), &v, sizeof v);
    }

    void publish_readiness() {
        pollfd p{real_fd_.get(), POLLIN | POLLOUT, 0};
        if (::poll(&p, 1, 0) < 0)
            return;
        unsigned r = readiness_of(p.revents);
        if (r != published_) {
            published_ = r;
            file_->notify(r);
        }
    }

    // Until a request comes or the real device can do what is parked, or becomes ready in a way
    // not published yet (poll is level-triggered: what is already published would wake us at
    // once, so it is not watched).
    void wait() {
        short want = 0;
        if (!reads_.empty() || !(published_ & fusd::ready::readable))
            want |= POLLIN;
        if (!writes_.empty() || !(published_ & fusd::ready::writable))
            want |= POLLOUT;
        bool parked = !reads_.empty() || !writes_.empty();
        bool watch_real = real_fd_ && want && (parked || !(published_ & (fusd::ready::error | fusd::ready::hangup)));
        pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {real_fd_.get(), want, 0}};
        if (::poll(fds, watch_real ? 2 : 1, -1) > 0 && fds[0].revents)
            drain_wake();
    }

    void serve() {
        bool open = false;
        for (;;) {
            std::deque<fusd::Request> incoming;
            std::set<std::uint64_t> interrupted;
            {
                std::lock_guard lock(mutex_);
                if (stopping_)
                    return;
                incoming.swap(queue_);
                interrupted.swap(interrupted_);
            }
            for (fusd::Request &req : incoming) {
                switch (req.op()) {
                case fusd::Op::open:
                    open = do_open(std::move(req));
                    if (!open) {
                        finished_();
                        return;
                    }
                    break;
                case fusd::Op::read: reads_.push_back(std::move(req)); break;
                case fusd::Op::write: writes_.push_back(std::move(req)); break;
                case fusd::Op::ioctl: do_ioctl(std::move(req)); break;
                case fusd::Op::release:
                    reads_.clear(); // only interrupted ones can be left: answered already
                    writes_.clear();
                    do_release(std::move(req));
                    finished_();
                    return;
                default: req.reply_error(ENOSYS); break;
                }
            }
            // An interrupted caller has had its EINTR: its parked call is dropped unrecorded.
            auto gone = [&interrupted](const fusd::Request &r) { return interrupted.count(r.id()) > 0; };
            std::erase_if(reads_, gone);
            std::erase_if(writes_, gone);
            if (open) {
                while (!reads_.empty() && try_read(reads_.front()))
                    reads_.pop_front();
                while (!writes_.empty() && try_write(writes_.front()))
                    writes_.pop_front();
                publish_readiness();
            }
            wait();
        }
    }

    Event event(Call call) const {
        Event e;
        e.open = index_;
        e.call = call;
        return e;
    }

    bool do_open(fusd::Request req) {
        unsigned flags = req.flags();
        int real_flags = int(flags & (O_ACCMODE | O_APPEND | O_SYNC | O_DSYNC)) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
        Event e = event(Call::open);
        e.access = recording::access_of(flags);
        e.nonblock = flags & O_NONBLOCK;
        real_fd_.reset(::open(real_.c_str(), real_flags));
        if (!real_fd_) {
            e.error = errno;
            error("record: {}: open: {}", real_, std::strerror(e.error));
            journal_.write(e);
            req.reply_error(e.error);
            return false;
        }
        publish_readiness(); // before the open returns: a poll() right after it sees the real device
        journal_.write(e);
        req.reply_ok();
        return true;
    }

    // One read on the real device. False: it would block and the caller waits (parked; the
    // real descriptor is nonblocking, so the thread goes on with the open's other calls).
    bool try_read(fusd::Request &req) {
        std::string buf(req.size(), '\0');
        Event e = event(Call::read);
        e.size = req.size();
        ssize_t n;
        do
            n = ::read(real_fd_.get(), buf.data(), buf.size());
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN && !req.nonblocking())
            return false;
        if (n >= 0) {
            buf.resize(std::size_t(n));
            e.data = buf;
            journal_.write(e);
            req.reply_data(std::string_view(buf));
        } else {
            e.error = errno;
            journal_.write(e);
            req.reply_error(e.error);
        }
        return true;
    }

    bool try_write(fusd::Request &req) {
        Event e = event(Call::write);
        e.data = std::string(req.text());
        ssize_t n;
        do
            n = ::write(real_fd_.get(), e.data.data(), e.data.size());
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN && !req.nonblocking())
            return false;
        if (n >= 0) {
            e.result = n;
            journal_.write(e);
            req.reply_written(std::size_t(n));
        } else {
            e.error = errno;
            journal_.write(e);
            req.reply_error(e.error);
        }
        return true;
    }

    void do_ioctl(fusd::Request req) {
        Event e = event(Call::ioctl);
        e.request = req.ioctl_command();
        const fusd::IoctlShape shape = fusd::ioctl_shape(e.request);
        if (recording::holds_pointers(e.request)) {
            // what the argument points to would need retries: not passed on
            e.error = EOPNOTSUPP;
            journal_.write(e);
            req.reply_error(e.error);
            return;
        }
        int result;
        std::string buf;
        if (shape.size == 0) {
            e.arg = req.ioctl_argument();
        } else {
            e.in = std::string(req.text());
            buf.assign(std::max<std::size_t>(shape.size, std::max(e.in.size(), req.size())), '\0');
            std::memcpy(buf.data(), e.in.data(), e.in.size());
        }
        in_ioctl_ = req.id();
        if (cancelled_before_ioctl(req.id())) {
            in_ioctl_ = 0;
            return; // interrupted or stopping: the caller has its answer
        }
        if (shape.size == 0)
            result = ::ioctl(real_fd_.get(), e.request, static_cast<unsigned long>(e.arg));
        else
            result = ::ioctl(real_fd_.get(), e.request, buf.data());
        int err = errno;
        in_ioctl_ = 0;
        if (result < 0 && err == EINTR && cancelled_before_ioctl(req.id()))
            return; // ended by interrupt() or the stop: not a call the device answered
        errno = err;
        if (result < 0) {
            e.error = errno;
            journal_.write(e);
            req.reply_error(e.error);
            return;
        }
        e.result = result;
        e.out = buf.substr(0, std::min(buf.size(), req.size()));
        journal_.write(e);
        req.reply_ioctl(result, std::as_bytes(std::span(e.out.data(), e.out.size())));
    }

    void do_release(fusd::Request req) {
        real_fd_.reset();
        journal_.write(event(Call::close));
        req.reply_ok();
    }

    const std::string real_;
    Journal &journal_;
    const unsigned index_;
    std::shared_ptr<fusd::File> file_;
    std::function<void()> finished_;
    fusd::Fd wake_;
    fusd::Fd real_fd_;
    unsigned published_ = fusd::ready::readable | fusd::ready::writable;
    std::mutex mutex_;
    std::deque<fusd::Request> queue_;        // submitted, not yet taken by the thread
    std::set<std::uint64_t> interrupted_;
    std::deque<fusd::Request> reads_;        // the thread's: parked until the real device has data
    std::deque<fusd::Request> writes_;       // ... has room
    bool stopping_ = false;
    std::atomic<std::uint64_t> in_ioctl_{0}; // the request whose ioctl the thread is in
    std::atomic<bool> done_{false};
    std::thread thread_;
};

// --in-place: the real node, renamed aside in its own directory while the recording runs.
class MovedNode {
public:
    MovedNode(std::string path) : path_(std::move(path)) {
        std::filesystem::path p(path_);
        aside_ = (p.parent_path() / ("." + p.filename().string() + ".fusd-record")).string();
        struct stat st {};
        if (::lstat(aside_.c_str(), &st) == 0)
            throw fusd::Error(EEXIST, fmt::format("{}: {} already exists (left by an earlier record?): "
                                                  "move it back by hand first",
                                                  path_, aside_));
        if (::rename(path_.c_str(), aside_.c_str()) != 0)
            throw fusd::Error(errno, fmt::format("{}: moving it aside to {}: {}", path_, aside_, std::strerror(errno)));
    }
    MovedNode(const MovedNode &) = delete;
    MovedNode &operator=(const MovedNode &) = delete;
    ~MovedNode() {
        if (::rename(aside_.c_str(), path_.c_str()) != 0)
            error("record: {}: putting it back from {}: {}", path_, aside_, std::strerror(errno));
    }
    const std::string &aside() const { return aside_; }

private:
    std::string path_;
    std::string aside_;
};

mode_t parse_mode(const std::string &text) {
    char *end = nullptr;
    unsigned long m = std::strtoul(text.c_str(), &end, 8);
    if (text.empty() || *end || m > 07777)
        throw UsageError{fmt::format("record: --mode {}: not an octal mode such as 0660", text)};
    return mode_t(m);
}

int run_record(const RecordOptions &opts) {
    if (opts.in_place == !opts.as.empty())
        throw UsageError{"record: give either --as /dev/NAME (a new device) or --in-place (in place of the real one)"};
    mode_t mode = parse_mode(opts.mode);
    auto backend = fusd::parse_backend(opts.backend);
    if (!backend)
        throw UsageError{fmt::format("record: --backend {}: not one of {}", opts.backend, fusd::backend_names())};
    struct stat st {};
    if (::stat(opts.real.c_str(), &st) != 0) {
        error("record: {}: {}", opts.real, std::strerror(errno));
        return exit_failure;
    }
    if (S_ISDIR(st.st_mode)) {
        error("record: {}: is a directory, not a device", opts.real);
        return exit_failure;
    }
    std::string real = std::filesystem::absolute(opts.real).lexically_normal().string();
    std::string as = opts.in_place ? real : opts.as;
    try {
        as = fusd::device_path(as);
    } catch (const fusd::Error &e) {
        throw UsageError{fmt::format("record: --as {}", e.what())};
    }

    ignore_sigpipe();
    PassThrough::install_interrupt_handler();
    fusd::Fd out(::open(opts.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!out) {
        error("record: {}: {}", opts.output, std::strerror(errno));
        return exit_failure;
    }
    Journal journal(std::move(out));
    auto give_up = [&](const std::string &why) {
        ::unlink(opts.output.c_str());
        error("record: {}", why);
        return exit_failure;
    };
    if (!journal.write_line(recording::format_header(real)))
        return give_up(fmt::format("{}: {}", opts.output, std::strerror(journal.error())));

    fusd::Loop loop; // SIGINT/SIGTERM: the device goes, run() returns
    std::optional<MovedNode> moved;
    std::string open_path = real;
    if (opts.in_place) {
        try {
            moved.emplace(real);
        } catch (const fusd::Error &e) {
            return give_up(e.what());
        }
        open_path = moved->aside();
    }

    // The PassThroughs by open number, owned here on the Loop's thread only (a File's state is
    // just its number: a PassThrough keeps its File, so the File must not keep it).
    std::map<unsigned, std::unique_ptr<PassThrough>> live;
    unsigned opens = 0;
    auto pass_of = [&live](fusd::File &file) -> PassThrough * {
        auto index = std::static_pointer_cast<unsigned>(file.state());
        auto it = index ? live.find(*index) : live.end();
        return it == live.end() ? nullptr : it->second.get();
    };
    fusd::Callbacks cb;
    auto forward = [&pass_of](fusd::Request req) {
        if (PassThrough *pass = pass_of(req.file()))
            pass->submit(std::move(req));
        else
            req.reply_error(EIO);
    };
    cb.open = [&](fusd::Request req) {
        unsigned index = ++opens;
        try {
            // a finished PassThrough (file closed, or its open failed) is dropped on the loop's thread
            auto finished = [&loop, &live, index] { loop.post([&live, index] { live.erase(index); }); };
            live[index] = std::make_unique<PassThrough>(open_path, journal, index, req.file().keep(), finished);
        } catch (const std::exception &e) {
            error("record: {}: {}", as, e.what());
            req.reply_error(EIO);
            return;
        }
        req.file().state() = std::make_shared<unsigned>(index);
        live[index]->submit(std::move(req));
    };
    cb.read = forward;
    cb.write = forward;
    cb.ioctl = forward;
    cb.release = [&pass_of](fusd::Request req) {
        if (PassThrough *pass = pass_of(req.file()))
            pass->submit(std::move(req));
        else
            req.reply_ok();
    };
    cb.interrupt = [&pass_of](fusd::File &file, std::uint64_t id) {
        if (PassThrough *pass = pass_of(file))
            pass->interrupt(id);
    };

    fusd::DeviceOptions dev;
    dev.name = as;
    dev.mode = mode;
    dev.backend = *backend;
    fusd::Device *device = nullptr;
    try {
        device = &loop.add(dev, cb);
    } catch (const std::exception &e) {
        std::string what = e.what();
        if (what.find(as) == std::string::npos)
            what = fmt::format("{}: {}", as, what);
        moved.reset();
        return give_up(what);
    }
    error("record: recording {} as {} on {} into {} (stop with Ctrl-C)", real, as, fusd::to_string(device->backend()),
          opts.output);
    int status = exit_ok;
    try {
        loop.run();
    } catch (const std::exception &e) {
        error("record: {}: {}", as, e.what());
        status = exit_failure;
    }
    for (auto &[index, pass] : live)
        pass->stop();
    live.clear(); // joins the threads
    for (fusd::Device *d : loop.devices())
        loop.remove(*d);
    moved.reset();
    if (int err = journal.error()) {
        error("record: {}: {}", opts.output, std::strerror(err));
        return exit_failure;
    }
    error("record: {} calls on {} opens written to {}", journal.lines(), opens, opts.output);
    return status;
}

} // namespace

Command add_record(CLI::App &app) {
    auto opts = std::make_shared<RecordOptions>();
    CLI::App *sub = app.add_subcommand("record", "Put a pass-through device in front of a real one and record every call to FILE");
    sub->add_option("REAL-DEVICE", opts->real, "The real device, e.g. /dev/ttyUSB0")->required();
    sub->add_option("--as", opts->as, "The pass-through device to create: /dev/NAME or NAME");
    sub->add_flag("--in-place", opts->in_place,
                  "Move the real node aside and take its place while recording; put it back afterwards");
    sub->add_option("-o,--output", opts->output, "The recording to write (fusd-recording(5))")->required();
    sub->add_option("-m,--mode", opts->mode, "Permissions of the node, octal (default 0660)");
    sub->add_option("-b,--backend", opts->backend, "One of " + fusd::backend_names() + " (default auto)");
    return Command{sub, [opts] { return run_record(*opts); }};
}

} // namespace fusdctl
