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
// Prints one line per phase and exits 1 if any call failed, any byte was lost, duplicated or
// reordered, or the daemon kept a descriptor. Memory growth is printed, not judged: a
// reading of RSS carries the allocator's noise. Small counts run as a test (CTest); the full
// counts (1000 callers, 1000 devices, 100000 cycles) are a benchmark run by hand.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
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

#include <fusd/fusd.hpp>

namespace {

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

long open_fds(pid_t pid)
{
    std::error_code ec;
    long n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return ec ? -1 : n;
}

bool write_all(int fd, const std::string &s)
{
    for (std::size_t off = 0; off < s.size();) {
        ssize_t n = ::write(fd, s.data() + off, s.size() - off);
        if (n <= 0)
            return false;
        off += std::size_t(n);
    }
    return true;
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

int usage()
{
    std::fprintf(stderr, "usage: fusd-stress [--backend NAME] [--callers N] [--rounds N] [--devices N] [--cycles N]\n");
    return 2;
}

} // namespace

int main(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc)
            return usage();
        std::string v = argv[++i];
        char *end = nullptr;
        long n = std::strtol(v.c_str(), &end, 10);
        bool number = !v.empty() && *end == '\0' && n > 0;
        if (a == "--backend")
            o.backend = v;
        else if (a == "--callers" && number)
            o.callers = int(n);
        else if (a == "--rounds" && number)
            o.rounds = int(n);
        else if (a == "--devices" && number)
            o.devices = int(n);
        else if (a == "--cycles" && number)
            o.cycles = n;
        else
            return usage();
    }

    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0)
        return 1;
    pid_t daemon = fork();
    if (daemon == 0) {
        ::close(report[0]);
        run_daemon(o, report[1]);
    }
    ::close(report[1]);
    std::string line;
    char ch;
    while (::read(report[0], &ch, 1) == 1 && ch != '\n')
        line += ch;
    ::close(report[0]);
    auto stop_daemon = [&] {
        kill(daemon, SIGTERM);
        int status = 0;
        waitpid(daemon, &status, 0);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    };
    if (line != "ready") {
        std::fprintf(stderr, "fusd-stress: the daemon did not start: %s\n", line.c_str());
        stop_daemon();
        return 1;
    }
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

    bool clean_exit = stop_daemon();
    if (!clean_exit)
        fmt::print("the daemon did not exit cleanly on SIGTERM\n");
    good &= clean_exit;
    fmt::print("{}\n", good ? "stress: all counts exact" : "stress: FAILED");
    return good ? 0 : 1;
}
