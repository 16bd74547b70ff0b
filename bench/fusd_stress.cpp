// SPDX-License-Identifier: MIT
//
// fusd-stress: many callers, many devices, many opens, as counts that must come out exact.
//
//   fusd-stress [--backend NAME] [--callers N] [--rounds N] [--devices N] [--cycles N]
//
// A daemon child serves --devices echo devices (each open file keeps what was written to it and
// gives it back). Then, from this process:
//   callers  --callers threads, each with its own open file of the first device, write a block
//            that names the caller, the round and a sequence, and read it back, --rounds times:
//            every byte must come back, to its writer, in order.
//   devices  one open, write and read-back on every device of the daemon.
//   cycles   --cycles open/close pairs on one device; the daemon's resident memory and open
//            descriptors are read from /proc before and after (after a warm-up).
//   release  with the daemon SIGSTOPped, one child process per call (open, read, write, ioctl,
//            poll, close) makes the call and is SIGKILLed: the time until it is reaped (where
//            the kernel makes it wait without interruption, until `rm --force` releases it). Then a
//            second daemon is SIGKILLed with a read in flight: the time until the reader is
//            released (and its error), and until the node, its mount, the registry entry and
//            the control socket are gone, with no fusd command run.
// Prints one line per phase and exits 1 if any call failed, any byte was lost, duplicated or
// reordered, the daemon kept a descriptor, or anything of the release phase was still there
// after the hang guard (kGuard). Memory growth is printed, not judged: a
// reading of RSS carries the allocator's noise. Small counts run as a test (CTest); the full
// counts (1000 callers, 1000 devices, 100000 cycles) are a benchmark run by hand.
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <deque>
#include <iterator>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <fmt/core.h>

#include <fusd/admin.hpp>
#include <fusd/fusd.hpp>

#include "bench_common.hpp"

namespace {

using namespace fusd::bench;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
// A hang guard for the release phase, never a speed target: what is measured is printed.
constexpr auto kGuard = std::chrono::seconds(60);

struct Options {
    std::string backend = "auto";
    int callers = 20;
    int rounds = 20;
    int devices = 20;
    long cycles = 2000;
};

struct EchoFile {
    std::mutex mutex;
    std::string data;
};

std::string device_name(pid_t daemon, int i) { return fmt::format("/dev/fusd-stress-{}-{}", daemon, i); }

// The daemon: serves the devices until SIGTERM. Writes "ready\n" (or the error) to report_fd.
[[noreturn]] void run_daemon(const Options &o, int report_fd)
{
    auto report = [&](const std::string &line) { (void)!::write(report_fd, line.data(), line.size()); };
    try {
        fusd::Loop loop;
        fusd::Callbacks cb;
        cb.open = [](fusd::Request req) {
            req.file().state() = std::make_shared<EchoFile>();
            req.reply_ok();
        };
        cb.write = [](fusd::Request req) {
            auto e = std::static_pointer_cast<EchoFile>(req.file().state());
            std::lock_guard lock(e->mutex);
            e->data.append(req.text());
            req.reply_written(req.size());
        };
        cb.read = [](fusd::Request req) {
            auto e = std::static_pointer_cast<EchoFile>(req.file().state());
            std::lock_guard lock(e->mutex);
            std::size_t n = std::min(req.size(), e->data.size());
            req.reply_data(std::string_view(e->data).substr(0, n));
            e->data.erase(0, n);
        };
        fusd::DeviceOptions opt;
        opt.mode = 0600;
        auto backend = fusd::parse_backend(o.backend);
        if (!backend)
            throw fusd::Error(EINVAL, "unknown backend " + o.backend);
        opt.backend = *backend;
        for (int i = 0; i < o.devices; ++i) {
            opt.name = device_name(getpid(), i);
            loop.add(opt, cb);
        }
        report("ready\n");
        loop.run(); // until SIGTERM: the Loop removes every device
        _exit(0);
    } catch (const std::exception &e) {
        report(std::string("error ") + e.what() + "\n");
        _exit(1);
    }
}

long rss_kib(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0)
            return std::atol(line.c_str() + 6);
    return -1;
}

bool read_exactly(int fd, std::string &out, std::size_t size)
{
    out.assign(size, '\0');
    for (std::size_t off = 0; off < size;) {
        ssize_t n = ::read(fd, out.data() + off, size - off);
        if (n <= 0)
            return false; // 0: the device gave back less than was written
        off += std::size_t(n);
    }
    return true;
}

// One caller's block for one round: names the caller and the round, then a running sequence.
std::string block(int caller, int round)
{
    std::string s = fmt::format("caller {} round {}:", caller, round);
    for (int i = 0; s.size() < 256; ++i)
        s += fmt::format(" {}", i);
    return s;
}

struct Counts {
    std::atomic<long> ok{0}, failed_calls{0}, wrong_bytes{0};
};

void caller(const std::string &dev, int id, int rounds, Counts &c)
{
    int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        c.failed_calls++;
        return;
    }
    std::string back;
    for (int r = 0; r < rounds; ++r) {
        std::string mine = block(id, r);
        if (!write_all(fd, mine) || !read_exactly(fd, back, mine.size())) {
            c.failed_calls++;
            break;
        }
        if (back != mine)
            c.wrong_bytes++;
        else
            c.ok++;
    }
    ::close(fd);
}

double ms_since(Clock::time_point t0)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Polls done() every millisecond up to kGuard; the milliseconds it took, or -1.
template <class Done> double wait_ms(Done done)
{
    auto t0 = Clock::now();
    while (!done()) {
        if (Clock::now() - t0 > kGuard)
            return -1;
        usleep(1000);
    }
    return ms_since(t0);
}

// Whether a child has been reaped; asks waitpid() until it has, then remembers (a second
// waitpid() of a reaped child fails).
class Child {
public:
    explicit Child(pid_t pid) : pid_(pid) {}
    pid_t pid() const { return pid_; }
    bool reaped()
    {
        int status;
        if (!reaped_)
            reaped_ = waitpid(pid_, &status, WNOHANG) == pid_;
        return reaped_;
    }
    void reap()
    {
        if (!reaped_)
            reaped_ = waitpid(pid_, nullptr, 0) == pid_;
    }

private:
    pid_t pid_;
    bool reaped_ = false;
};

// The state letter of /proc/PID/stat ('T' stopped, 'D' in an uninterruptible wait), or 0.
char proc_state(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto paren = stat.rfind(')'); // the command name, in parentheses, may hold anything
    return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : 0;
}

// One call on fd (open: on dev) in a child: it waits for `go`, then tells `started` just before
// making the call.
pid_t call_in_child(const std::string &call, const std::string &dev, int fd, int go, int started)
{
    pid_t child = fork();
    if (child != 0)
        return child;
    char c = 'x';
    (void)!::read(go, &c, 1);
    (void)!::write(started, &c, 1);
    if (call == "open")
        ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
    else if (call == "read")
        (void)!::read(fd, &c, 1);
    else if (call == "write")
        (void)!::write(fd, &c, 1);
    else if (call == "ioctl")
        ::ioctl(fd, _IO('f', 1));
    else if (call == "poll") {
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, int(std::chrono::milliseconds(kGuard).count()));
    } else if (call == "close")
        ::close(fd); // the last reference: the parent closed its copy
    _exit(0);
}

// Callers SIGKILLed in each call of a stopped daemon. Each goes at once, except where the kernel
// waits without interruption: the last close of a file on CUSE, whose release is synchronous and
// forced (fs/fuse/cuse.c: cuse_release() -> fuse_sync_release(); fs/fuse/dev.c:
// request_wait_answer() waits out a forced request). There `fusdctl rm --force` releases it,
// and that is what is timed. Ends with `dev` removed when that happened.
bool release_killed_callers(pid_t daemon, const std::string &dev)
{
    bool good = true;
    for (std::string call : {"open", "read", "write", "ioctl", "poll", "close"}) {
        int fd = call == "open" ? -1 : ::open(dev.c_str(), O_RDWR | O_CLOEXEC); // while the daemon runs
        int go[2], started[2];
        if (pipe2(go, O_CLOEXEC) < 0 || pipe2(started, O_CLOEXEC) < 0)
            return false;
        Child child(call_in_child(call, dev, fd, go[0], started[1]));
        ::close(go[0]);
        ::close(started[1]);
        if (call == "close") {
            ::close(fd); // not the last reference: the child's is
            fd = -1;
        }
        kill(daemon, SIGSTOP);
        wait_ms([&] { return proc_state(daemon) == 'T'; });
        char c = 'x';
        (void)!::write(go[1], &c, 1);
        (void)!::read(started[0], &c, 1);
        ::close(go[1]);
        ::close(started[0]);
        usleep(200000); // lets the call reach its wait; what is measured starts at the kill
        bool waiting = !child.reaped();
        if (!waiting) {
            fmt::print("release: {} of a stopped daemon returned without it\n", call);
        } else {
            auto t0 = Clock::now();
            kill(child.pid(), SIGKILL);
            // Reaped, or seen in an uninterruptible wait for a whole second after the kill.
            double ms =
                wait_ms([&] { return child.reaped() || (Clock::now() - t0 > 1s && proc_state(child.pid()) == 'D'); });
            if (ms >= 0 && !child.reaped()) {
                auto t1 = Clock::now();
                try {
                    fusd::admin::remove_device(dev, true);
                } catch (const std::exception &e) {
                    fmt::print("release: rm --force of {}: {}\n", dev, e.what());
                }
                ms = wait_ms([&] { return child.reaped(); });
                if (ms >= 0) {
                    ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
                    fmt::print("release: a caller SIGKILLed in {} of a stopped daemon waits without interruption "
                               "(the kernel's); rm --force released it in {:.1f} ms\n",
                               call, ms);
                    good &= call == "close"; // the one call the kernel makes wait so (see above)
                }
            } else if (ms >= 0) {
                fmt::print("release: a caller SIGKILLed in {} of a stopped daemon: reaped in {:.1f} ms\n", call, ms);
            }
            if (ms < 0) {
                fmt::print("release: a caller SIGKILLed in {} of a stopped daemon is still there after {} s\n", call,
                           std::chrono::seconds(kGuard).count());
                good = false;
            }
        }
        kill(daemon, SIGCONT);
        child.reap();
        if (fd >= 0)
            ::close(fd);
    }
    return good;
}

// A daemon SIGKILLed with a read in flight: the reader released, and everything of the daemon
// gone, with no fusd command run (fusd-cleaner's work).
bool release_dead_daemon(const Options &o)
{
    Options one = o;
    one.devices = 1;
    std::string why;
    pid_t daemon = fork_daemon([&](int report_fd) { run_daemon(one, report_fd); }, why);
    if (daemon < 0) {
        fmt::print("release: the second daemon did not start: {}\n", why);
        return false;
    }
    const std::string dev = device_name(daemon, 0);
    // The registry entry is read as a file: list_devices() would clean a dead daemon's entry
    // itself, and what is measured is the cleanup nobody asked for.
    const std::string entry = fusd::admin::runtime_dir() + "/devices/dev:" + dev.substr(5) + ".json";
    std::string socket;
    {
        std::ifstream in(entry);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto at = text.find("\"socket\":\"");
        if (at != std::string::npos) {
            at += 10;
            socket = text.substr(at, text.find('"', at) - at);
        }
    }
    int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
    kill(daemon, SIGSTOP); // the read below waits for certain, then the daemon dies under it
    std::atomic<bool> done{false};
    std::atomic<int> error{0};
    Clock::time_point released_at;
    std::thread reader([&] {
        char c;
        error = ::read(fd, &c, 1) < 0 ? errno : 0;
        released_at = Clock::now();
        done = true;
    });
    usleep(200000);
    auto t0 = Clock::now();
    kill(daemon, SIGKILL);
    waitpid(daemon, nullptr, 0);
    double released = wait_ms([&] { return done.load(); });
    if (released >= 0)
        released = std::chrono::duration<double, std::milli>(released_at - t0).count();
    auto gone = [&] {
        struct stat st;
        return ::lstat(dev.c_str(), &st) != 0 && !mounted(dev) && ::lstat(entry.c_str(), &st) != 0 &&
               (socket.empty() || ::lstat(socket.c_str(), &st) != 0);
    };
    double cleaned = wait_ms(gone);
    double total = ms_since(t0);
    if (released < 0) {
        fmt::print("release: the reader of a SIGKILLed daemon is still waiting after {} s\n",
                   std::chrono::seconds(kGuard).count());
        reader.detach();
    } else {
        reader.join();
        fmt::print("release: a read in flight when its daemon was SIGKILLed: released in {:.1f} ms with {}\n",
                   released, strerrorname_np(error.load()) ? strerrorname_np(error.load()) : "no error");
    }
    if (cleaned < 0)
        fmt::print("release: the SIGKILLed daemon's node, mount, registry entry or control socket is still there after {} s\n",
                   std::chrono::seconds(kGuard).count());
    else
        fmt::print("release: the SIGKILLed daemon's node, mount, registry entry and control socket gone in {:.1f} ms\n",
                   total);
    ::close(fd);
    return released >= 0 && error != 0 && cleaned >= 0 && !socket.empty();
}

} // namespace

int main(int argc, char **argv)
{
    Options o;
    bool good_options = parse_options(
        argc, argv, "usage: fusd-stress [--backend NAME] [--callers N] [--rounds N] [--devices N] [--cycles N]",
        [&](const std::string &name, const std::string &value, long n) {
            if (name == "--backend")
                o.backend = value;
            else if (name == "--callers" && n)
                o.callers = int(n);
            else if (name == "--rounds" && n)
                o.rounds = int(n);
            else if (name == "--devices" && n)
                o.devices = int(n);
            else if (name == "--cycles" && n)
                o.cycles = n;
            else
                return false;
            return true;
        });
    if (!good_options)
        return 2;

    std::string error;
    pid_t daemon = fork_daemon([&](int report_fd) { run_daemon(o, report_fd); }, error);
    if (daemon < 0) {
        std::fprintf(stderr, "fusd-stress: the daemon did not start: %s\n", error.c_str());
        return 1;
    }
    auto stop_daemon = [&] {
        kill(daemon, SIGTERM);
        int status = 0;
        waitpid(daemon, &status, 0);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    };
    bool good = true;

    {
        Counts c;
        std::vector<std::thread> threads;
        for (int i = 0; i < o.callers; ++i)
            threads.emplace_back(caller, device_name(daemon, 0), i, o.rounds, std::ref(c));
        for (auto &t : threads)
            t.join();
        long expected = long(o.callers) * o.rounds;
        fmt::print("callers: {} concurrent on one device, {} rounds each: {} of {} blocks back intact, "
                   "{} wrong, {} failed calls\n",
                   o.callers, o.rounds, c.ok.load(), expected, c.wrong_bytes.load(), c.failed_calls.load());
        good &= c.ok == expected;
    }
    {
        Counts c;
        for (int i = 0; i < o.devices; ++i)
            caller(device_name(daemon, i), i, 1, c);
        fmt::print("devices: {} in one daemon: {} answered intact, {} wrong, {} failed calls\n", o.devices, c.ok.load(),
                   c.wrong_bytes.load(), c.failed_calls.load());
        good &= c.ok == o.devices;
    }
    {
        const std::string dev = device_name(daemon, 0);
        long failed = 0;
        auto cycle = [&](long n) {
            for (long i = 0; i < n; ++i) {
                int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
                if (fd < 0 || ::close(fd) != 0)
                    ++failed;
            }
        };
        cycle(std::min(o.cycles, 1000L)); // warm-up: the allocator's pools and the kernel's caches
        long rss0 = rss_kib(daemon), fds0 = open_fds(daemon);
        cycle(o.cycles);
        // Releases are answered before the daemon has dropped every reference: let them settle.
        long fds1 = open_fds(daemon);
        for (int i = 0; i < 100 && fds1 > fds0; ++i) {
            usleep(10000);
            fds1 = open_fds(daemon);
        }
        long rss1 = rss_kib(daemon);
        fmt::print("cycles: {} open/close pairs: {} failed; daemon descriptors {} -> {}, resident memory {} -> {} KiB\n",
                   o.cycles, failed, fds0, fds1, rss0, rss1);
        good &= failed == 0 && fds1 == fds0;
    }

    good &= release_killed_callers(daemon, device_name(daemon, 0));
    good &= release_dead_daemon(o);

    bool clean_exit = stop_daemon();
    if (!clean_exit)
        fmt::print("the daemon did not exit cleanly on SIGTERM\n");
    good &= clean_exit;
    fmt::print("{}\n", good ? "stress: all counts exact" : "stress: FAILED");
    return good ? 0 : 1;
}
