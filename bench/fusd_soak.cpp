// SPDX-License-Identifier: MIT
//
// fusd-soak: mixed traffic for a while, with the daemon disrupted again and again; every call
// counted, every error explained, and nothing left at the end.
//
//   fusd-soak [--backend NAME] [--seconds N] [--callers N] [--devices N] [--disrupt-every N]
//
// A daemon child serves --devices pipe-like devices: each open file gives back what was written
// to it; a read with nothing to give waits (kept Request) until a write on that file, or answers
// EAGAIN when nonblocking; readiness follows; two ioctls. From this process, until --seconds:
//   callers    --callers threads open a random device and, on it, write a block that names them
//              and read it back (after poll), make both ioctls, try a nonblocking read of the
//              empty file, then close; every byte must come back, to its writer, in order.
//   signals    a thread blocks in a read and is sent SIGUSR1 (its read must end EINTR); in turns,
//              a child process blocks in a read and is SIGKILLed (it must be reaped).
//   disruptions every --disrupt-every seconds, in turn: the daemon SIGKILLed; SIGTERMed; or
//              SIGSTOPped, a device removed by force, then SIGTERMed; then a new daemon serves
//              the same names (its first registration may wait for the old daemon's cleaner).
// A call that fails while a disruption is under way, or on a file opened before it, is expected
// and counted by errno; any other error, wrong byte, caller stuck past the hang guard, node,
// mount, registry entry or control socket left, descriptor of ours kept, or (kernel backend)
// module object alive at the end fails the run (exit 1). Short runs are a test (CTest, the
// guest's 55-stress.sh); the ten-minute run is bench/soak.sh.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <poll.h>
#include <pthread.h>
#include <random>
#include <stdexcept>
#include <string>
#include <sys/ioctl.h>
#include <sys/stat.h>
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
// How long any one call or wait may take before the run calls it stuck: a hang guard, never a
// speed target.
constexpr auto kGuard = 60s;
constexpr unsigned long kPing = _IO('f', 1);          // answered 0
constexpr unsigned long kPending = _IOR('f', 2, int); // the bytes the file holds

struct Options {
    std::string backend = "auto";
    long seconds = 600;
    int callers = 8;
    int devices = 4;
    long disrupt_every = 20;
};

std::string device_name(int i) { return fmt::format("/dev/fusd-soak-{}-{}", getpid(), i); }

// ---- the daemon -------------------------------------------------------------------------------

struct PipeFile {
    std::string data;
    std::deque<fusd::Request> waiting; // reads kept until a write
};

void give(PipeFile &f, fusd::Request &req)
{
    std::size_t n = std::min(req.size(), f.data.size());
    req.reply_data(std::string_view(f.data).substr(0, n));
    f.data.erase(0, n);
}

// Serves the devices until SIGTERM; writes "ready\n" (or the error) to report_fd.
[[noreturn]] void run_daemon(const Options &o, const std::vector<std::string> &names, int report_fd)
{
    auto report = [&](const std::string &line) { (void)!::write(report_fd, line.data(), line.size()); };
    try {
        fusd::Loop loop;
        fusd::Callbacks cb;
        auto file_of = [](fusd::File &file) { return std::static_pointer_cast<PipeFile>(file.state()); };
        cb.open = [](fusd::Request req) {
            req.file().state() = std::make_shared<PipeFile>();
            req.file().notify(fusd::ready::writable);
            req.reply_ok();
        };
        // Readiness is published before the answer: the caller may poll as soon as it has it.
        auto publish = [](fusd::File &file, const PipeFile &f) {
            file.notify(fusd::ready::writable | (f.data.empty() ? 0 : fusd::ready::readable));
        };
        cb.write = [file_of, publish](fusd::Request req) {
            fusd::File &file = req.file();
            auto f = file_of(file);
            f->data.append(req.text());
            while (!f->waiting.empty() && !f->data.empty()) {
                give(*f, f->waiting.front());
                f->waiting.pop_front();
            }
            publish(file, *f);
            req.reply_written(req.size());
        };
        cb.read = [file_of, publish](fusd::Request req) {
            fusd::File &file = req.file();
            auto f = file_of(file);
            if (!f->data.empty()) {
                std::size_t n = std::min(req.size(), f->data.size());
                std::string chunk = f->data.substr(0, n);
                f->data.erase(0, n);
                publish(file, *f);
                req.reply_data(chunk);
            } else if (req.nonblocking()) {
                req.reply_again();
            } else {
                f->waiting.push_back(std::move(req));
            }
        };
        cb.interrupt = [file_of](fusd::File &file, std::uint64_t id) {
            auto f = file_of(file);
            std::erase_if(f->waiting, [id](const fusd::Request &r) { return r && r.id() == id; });
        };
        cb.ioctl = [file_of](fusd::Request req) {
            if (req.ioctl_command() == kPing) {
                req.reply_ok();
            } else if (req.ioctl_command() == kPending) {
                int n = int(file_of(req.file())->data.size());
                req.reply_ioctl(0, std::as_bytes(std::span(&n, 1)));
            } else {
                req.reply_error(ENOTTY);
            }
        };
        fusd::DeviceOptions opt;
        opt.mode = 0600;
        auto backend = fusd::parse_backend(o.backend);
        if (!backend)
            throw fusd::Error(EINVAL, "unknown backend " + o.backend);
        opt.backend = *backend;
        for (const auto &name : names) {
            opt.name = name;
            loop.add(opt, cb);
        }
        report("ready\n");
        loop.run();
        _exit(0);
    } catch (const std::exception &e) {
        report(std::string("error ") + e.what() + "\n");
        _exit(1);
    }
}

pid_t start_daemon(const Options &o, const std::vector<std::string> &names, std::string &error)
{
    return fork_daemon([&](int report_fd) { run_daemon(o, names, report_fd); }, error);
}

// ---- counting ---------------------------------------------------------------------------------

// Odd while a disruption is under way; each disruption adds 2.
std::atomic<unsigned> generation{0};

struct Counts {
    std::mutex mutex;
    std::map<std::string, long> calls;      // by call
    std::map<std::string, long> expected;   // errors during disruptions, by errno name
    std::map<std::string, long> unexpected; // "call: errno" of errors outside them, wrong bytes...
    long intact = 0, interrupted = 0, killed_reaped = 0;
    double slowest_reap_ms = 0;

    void call(const char *name)
    {
        std::lock_guard lock(mutex);
        calls[name]++;
    }
    // A failed call made since generation g0: expected if a disruption began or ran since.
    void failed(const char *name, int err, unsigned g0)
    {
        unsigned g = generation.load();
        std::lock_guard lock(mutex);
        const char *e = strerrorname_np(err) ? strerrorname_np(err) : "?";
        if (g != g0 || (g & 1))
            expected[e]++;
        else
            unexpected[fmt::format("{}: {}", name, e)]++;
    }
    void wrong(const std::string &what)
    {
        std::lock_guard lock(mutex);
        unexpected[what]++;
    }
    // The first few details of what went wrong, printed as they happen.
    void show_once(const std::string &detail)
    {
        std::lock_guard lock(mutex);
        if (shown++ < 5)
            fmt::print("soak: {}\n", detail);
    }
    int shown = 0;
};

std::string histogram(const std::map<std::string, long> &m)
{
    std::string s;
    for (const auto &[k, v] : m)
        s += fmt::format("{}{} {}", s.empty() ? "" : ", ", k, v);
    return s.empty() ? "none" : s;
}

// Each thread's last sign of life, to tell a stuck call from a slow one.
struct Heartbeat {
    std::atomic<long> at{0};
    void beat() { at = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count(); }
    bool stuck() const
    {
        long now = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
        return now - at.load() > std::chrono::milliseconds(kGuard).count();
    }
};

// ---- the callers ------------------------------------------------------------------------------

void caller(int id, const std::vector<std::string> &names, const std::atomic<bool> &stop, Counts &c, Heartbeat &hb)
{
    std::mt19937 rng(unsigned(id) * 7919u + unsigned(getpid()));
    for (long seq = 0; !stop; ++seq) {
        hb.beat();
        unsigned g0 = generation.load();
        if (g0 & 1) { // between daemons: nothing to call
            usleep(1000);
            continue;
        }
        const std::string &dev = names[rng() % names.size()];
        c.call("open");
        int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            c.failed("open", errno, g0);
            usleep(1000);
            continue;
        }
        bool ok = true;
        for (int k = 0, rounds = 1 + int(rng() % 8); ok && k < rounds && !stop; ++k) {
            hb.beat();
            std::string mine = fmt::format("caller {} seq {} round {}:{}", id, seq, k, std::string(rng() % 300, '.'));
            c.call("write");
            if (!write_all(fd, mine)) {
                c.failed("write", errno, g0);
                ok = false;
                break;
            }
            pollfd p{fd, POLLIN, 0};
            c.call("poll");
            int ready = ::poll(&p, 1, int(std::chrono::milliseconds(kGuard).count()));
            if (ready != 1 || !(p.revents & POLLIN)) {
                if (ready < 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
                    c.failed("poll", ready < 0 ? errno : EPIPE, g0);
                else
                    c.wrong("poll: not readable after a write");
                ok = false;
                break;
            }
            std::string back(mine.size(), '\0');
            for (std::size_t off = 0; ok && off < back.size();) {
                c.call("read");
                ssize_t n = ::read(fd, back.data() + off, back.size() - off);
                if (n <= 0) {
                    if (n == 0)
                        c.wrong("read: end of file before the block came back");
                    else
                        c.failed("read", errno, g0);
                    ok = false;
                } else {
                    off += std::size_t(n);
                }
            }
            if (!ok)
                break;
            if (back != mine) {
                c.wrong("read: a block came back changed");
                c.show_once(fmt::format("wrote {:?} ({} bytes), read back {:?}", mine.substr(0, 60), mine.size(),
                                        back.substr(0, 60)));
                ok = false;
                break;
            }
            {
                std::lock_guard lock(c.mutex);
                c.intact++;
            }
            int pending = -1;
            c.call("ioctl");
            if (::ioctl(fd, kPing) != 0 || (c.call("ioctl"), ::ioctl(fd, kPending, &pending)) != 0) {
                c.failed("ioctl", errno, g0);
                ok = false;
                break;
            }
            if (pending != 0)
                c.wrong("ioctl: bytes left after the block came back");
            int flags = ::fcntl(fd, F_GETFL);
            ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
            char x;
            c.call("read");
            ssize_t n = ::read(fd, &x, 1);
            int err = errno;
            ::fcntl(fd, F_SETFL, flags);
            if (n >= 0)
                c.wrong("nonblocking read of an empty file: data");
            else if (err != EAGAIN) {
                c.failed("read", err, g0);
                ok = false;
            }
        }
        c.call("close");
        if (::close(fd) != 0)
            c.failed("close", errno, g0);
    }
}

// Blocked callers to kill are forked by a single-threaded process of their own, started before
// the callers' threads: a fork of this many-threaded process while its callers read would break
// their reads on CUSE, where a read is direct I/O into the caller's pages (like O_DIRECT, see
// open(2), NOTES: the data can land in the child's copy of a page).
class Forker {
public:
    Forker()
    {
        int to[2], from[2];
        if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0)
            throw std::runtime_error("fusd-soak: pipe: " + std::string(strerror(errno)));
        pid_ = fork();
        if (pid_ == 0) {
            ::close(to[1]);
            ::close(from[0]);
            serve(to[0], from[1]);
        }
        ::close(to[0]);
        ::close(from[1]);
        to_ = to[1];
        from_ = from[0];
    }
    ~Forker()
    {
        ::close(to_);
        ::close(from_);
        waitpid(pid_, nullptr, 0);
    }
    // A child opens dev and blocks in a read; it is SIGKILLed: the milliseconds until it was
    // reaped, or -1 past the hang guard.
    double kill_a_blocked_reader(const std::string &dev)
    {
        std::string line = dev + "\n";
        if (::write(to_, line.data(), line.size()) != ssize_t(line.size()))
            return -1;
        std::string answer;
        char ch;
        while (::read(from_, &ch, 1) == 1 && ch != '\n')
            answer += ch;
        return answer.empty() ? -1 : std::atof(answer.c_str());
    }

private:
    [[noreturn]] static void serve(int in, int out)
    {
        std::string dev;
        char ch;
        while (::read(in, &ch, 1) == 1) {
            if (ch != '\n') {
                dev += ch;
                continue;
            }
            pid_t child = fork();
            if (child == 0) {
                int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
                if (fd >= 0)
                    (void)!::read(fd, &ch, 1);
                _exit(0);
            }
            dev.clear();
            usleep(20000); // lets it reach its read (or not: either way it must go)
            kill(child, SIGKILL);
            auto t0 = Clock::now();
            double ms = -1;
            while (Clock::now() - t0 < kGuard) {
                if (waitpid(child, nullptr, WNOHANG) == child) {
                    ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
                    break;
                }
                usleep(1000);
            }
            std::string answer = fmt::format("{}\n", ms);
            (void)!::write(out, answer.data(), answer.size());
            if (ms < 0)
                waitpid(child, nullptr, 0);
        }
        _exit(0);
    }

    pid_t pid_ = -1;
    int to_ = -1, from_ = -1;
};

void on_usr1(int) {}

// A thread blocked in a read, sent SIGUSR1 until its read ends: EINTR. In turns, a child process
// blocked in a read and SIGKILLed: reaped (forked by `forker`).
void signalled(const std::vector<std::string> &names, const std::atomic<bool> &stop, Counts &c, Heartbeat &hb,
               Forker &forker)
{
    for (long turn = 0; !stop; ++turn) {
        hb.beat();
        unsigned g0 = generation.load();
        if (g0 & 1) {
            usleep(1000);
            continue;
        }
        const std::string &dev = names[std::size_t(turn) % names.size()];
        if (turn % 2 == 0) {
            std::atomic<bool> done{false};
            std::atomic<int> result{0};
            std::thread reader([&] {
                int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
                if (fd < 0) {
                    result = errno;
                } else {
                    char ch;
                    result = ::read(fd, &ch, 1) < 0 ? errno : 0;
                    ::close(fd);
                }
                done = true;
            });
            usleep(2000);
            while (!done) { // until the read ends: a signal before it began would be lost
                pthread_kill(reader.native_handle(), SIGUSR1);
                usleep(5000);
            }
            reader.join();
            c.call("read");
            if (result == EINTR) {
                std::lock_guard lock(c.mutex);
                c.interrupted++;
            } else if (result == 0) {
                c.wrong("signalled read: data from an empty file");
            } else {
                c.failed("read", result, g0);
            }
        } else {
            double ms = forker.kill_a_blocked_reader(dev);
            std::lock_guard lock(c.mutex);
            if (ms < 0) {
                c.unexpected["a SIGKILLed caller was not reaped"]++;
            } else {
                c.killed_reaped++;
                c.slowest_reap_ms = std::max(c.slowest_reap_ms, ms);
            }
        }
    }
}

} // namespace

int main(int argc, char **argv)
{
    Options o;
    bool good_options = parse_options(
        argc, argv, "usage: fusd-soak [--backend NAME] [--seconds N] [--callers N] [--devices N] [--disrupt-every N]",
        [&](const std::string &name, const std::string &value, long n) {
            if (name == "--backend")
                o.backend = value;
            else if (name == "--seconds" && n)
                o.seconds = n;
            else if (name == "--callers" && n && n <= 1000)
                o.callers = int(n);
            else if (name == "--devices" && n && n <= 1000)
                o.devices = int(n);
            else if (name == "--disrupt-every" && n)
                o.disrupt_every = n;
            else
                return false;
            return true;
        });
    if (!good_options)
        return 2;
    struct sigaction sa {};
    sa.sa_handler = on_usr1; // no SA_RESTART: a signalled read ends EINTR
    sigaction(SIGUSR1, &sa, nullptr);

    std::vector<std::string> names;
    for (int i = 0; i < o.devices; ++i)
        names.push_back(device_name(i));
    Forker forker; // before any thread
    long fds0 = open_fds(getpid());
    std::string error;
    pid_t daemon = start_daemon(o, names, error);
    std::vector<pid_t> daemons{daemon};
    if (daemon < 0) {
        fmt::print(stderr, "fusd-soak: the daemon did not start: {}\n", error);
        return 1;
    }
    std::string served = "?";
    for (const auto &d : fusd::admin::list_devices())
        if (d.path == names[0])
            served = d.backend;
    fmt::print("soak: {} s on {}: {} callers, {} devices, a disruption every {} s\n", o.seconds, served, o.callers,
               o.devices, o.disrupt_every);
    std::fflush(stdout);

    Counts c;
    std::atomic<bool> stop{false};
    std::deque<Heartbeat> beats(std::size_t(o.callers) + 1);
    std::vector<std::thread> threads;
    std::atomic<long> finished{0};
    for (int i = 0; i < o.callers; ++i)
        threads.emplace_back([&, i] {
            caller(i, names, stop, c, beats[std::size_t(i)]);
            finished++;
        });
    threads.emplace_back([&] {
        signalled(names, stop, c, beats.back(), forker);
        finished++;
    });

    std::map<std::string, long> disruptions;
    bool good = true;
    auto t_end = Clock::now() + std::chrono::seconds(o.seconds);
    auto next = Clock::now() + std::chrono::seconds(o.disrupt_every);
    for (long turn = 0; Clock::now() < t_end && good;) {
        std::this_thread::sleep_for(100ms);
        for (const auto &hb : beats)
            if (hb.stuck()) {
                fmt::print("soak: a caller is stuck in one call for more than {} s\n", std::chrono::seconds(kGuard).count());
                good = false;
            }
        if (Clock::now() < next || Clock::now() >= t_end)
            continue;
        generation++; // odd: under way
        const char *kind = turn % 3 == 0 ? "SIGKILL" : turn % 3 == 1 ? "SIGTERM" : "forced removal";
        ++turn;
        if (std::string(kind) == "forced removal") {
            kill(daemon, SIGSTOP);
            try {
                fusd::admin::remove_device(names[0], true);
            } catch (const std::exception &e) {
                fmt::print("soak: forced removal of {} failed: {}\n", names[0], e.what());
                good = false;
            }
            kill(daemon, SIGTERM);
            kill(daemon, SIGCONT);
        } else {
            kill(daemon, std::string(kind) == "SIGKILL" ? SIGKILL : SIGTERM);
        }
        waitpid(daemon, nullptr, 0);
        daemon = start_daemon(o, names, error);
        daemons.push_back(daemon);
        if (daemon < 0) {
            fmt::print("soak: the daemon did not start again after a {}: {}\n", kind, error);
            good = false;
        }
        disruptions[kind]++;
        generation++; // even: over
        next = Clock::now() + std::chrono::seconds(o.disrupt_every);
    }
    stop = true;
    generation++; // the last daemon's stop is a disruption too: calls still in flight may fail
    // Readers still blocked end with the daemon: stopping it releases them.
    if (daemon > 0) {
        kill(daemon, SIGTERM);
        waitpid(daemon, nullptr, 0);
    }
    // Every thread ends within the hang guard, or the run reports it and leaves without it.
    auto until = Clock::now() + kGuard;
    while (finished < long(threads.size()) && Clock::now() < until)
        std::this_thread::sleep_for(10ms);
    if (finished < long(threads.size())) {
        fmt::print("soak: FAILED: {} caller(s) still in a call {} s after the end\n", long(threads.size()) - finished,
                   std::chrono::seconds(kGuard).count());
        std::fflush(stdout);
        std::_Exit(1);
    }
    for (auto &t : threads)
        t.join();

    long calls = 0;
    std::string by_call;
    for (const auto &[k, v] : c.calls) {
        calls += v;
        by_call += fmt::format("{}{} {}", by_call.empty() ? "" : ", ", k, v);
    }
    fmt::print("calls: {} ({}); {} blocks came back intact\n", calls, by_call, c.intact);
    fmt::print("signals: {} blocked reads ended EINTR by SIGUSR1; {} blocked callers SIGKILLed and reaped, the slowest in "
               "{:.1f} ms\n",
               c.interrupted, c.killed_reaped, c.slowest_reap_ms);
    fmt::print("disruptions: {}; errors during them: {}\n", histogram(disruptions), histogram(c.expected));
    fmt::print("errors outside disruptions: {}\n", histogram(c.unexpected));
    good &= c.unexpected.empty() && c.intact > 0;

    // Leftovers, after a moment for the last daemon's cleaner (a hang guard, polled).
    auto left = [&] {
        std::vector<std::string> found;
        for (const auto &name : names) {
            struct stat st;
            if (::lstat(name.c_str(), &st) == 0)
                found.push_back("node " + name);
            if (mounted(name))
                found.push_back("mount " + name);
            std::string entry = fusd::admin::runtime_dir() + "/devices/dev:" + name.substr(5) + ".json";
            if (::lstat(entry.c_str(), &st) == 0)
                found.push_back("registry entry " + entry);
        }
        std::error_code ec;
        for (auto it = std::filesystem::directory_iterator(fusd::admin::runtime_dir() + "/ctl", ec);
             !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
            std::string socket = it->path().filename().string(); // PID-N.sock
            for (pid_t d : daemons)
                if (d > 0 && socket.rfind(std::to_string(d) + "-", 0) == 0)
                    found.push_back("control socket " + it->path().string());
        }
        return found;
    };
    auto cleaned_by = Clock::now() + kGuard;
    while (!left().empty() && Clock::now() < cleaned_by)
        std::this_thread::sleep_for(10ms);
    std::string leftovers;
    for (const auto &f : left())
        leftovers += (leftovers.empty() ? "" : ", ") + f;
    long fds1 = open_fds(getpid());
    std::string module;
    for (const char *what : {"channels", "devices", "files", "requests"}) {
        std::ifstream in(std::string("/sys/module/fusd/parameters/live_") + what);
        long v;
        if (served == "kernel" && in >> v) {
            module += fmt::format("{}{} {}", module.empty() ? "" : ", ", what, v);
            good &= v == 0;
        }
    }
    fmt::print("left behind: {}; our descriptors {} -> {}{}\n", leftovers.empty() ? "nothing" : leftovers, fds0, fds1,
               module.empty() ? "" : "; module objects alive: " + module);
    good &= leftovers.empty() && fds1 == fds0;
    fmt::print("{}\n", good ? "soak: passed" : "soak: FAILED");
    return good ? 0 : 1;
}
