// fusd-bench: what libfusd costs, measured against baselines in the same run.
//
//   fusd-bench [--scale X]          (root; the FUSE backend on this host; FUSD_BACKEND honoured)
//   fusd-bench --fuse-transports [--scale X]
//                                   1 B..1 MiB reads through the FUSE backend's two transports
//                                   (libfuse, FUSE over io_uring: needs enable_uring on) and the
//                                   bare libfuse daemon, same CPU / different CPUs / unpinned
//   fusd-bench --compare-backends [--scale X] [--daemon-cpu N | --unpinned]
//                                   1-byte reads through a libfusd device on every usable backend
//                                   (kernel module, CUSE, FUSE) beside /dev/zero and a pipe
//                                   ping-pong, in one run; run in the QEMU guest by
//                                   `tests/vm/run --bench` (under TCG only the ratios mean anything).
//                                   The caller runs on CPU 0, the daemons (and the pipe's peer) on
//                                   CPU N (default 0); --unpinned: nobody is pinned, the scheduler
//                                   places them as it places any program
//
// Measures, each as the median of 5 rounds, caller and daemon pinned to one CPU (cross-CPU
// wake-ups in a VM cost 50 us and drown everything else, unless the guest polls when idle):
//   /dev/zero reads (the in-kernel floor), a two-process pipe ping-pong (the user-space round-trip
//   floor), a bare libfuse low-level daemon serving zeros over the same kind of mount (the FUSE
//   transport's own floor), and a libfusd device doing the same work.
// Prints ops/s or MB/s per case and the ratios; the target is libfusd <= 1.15x bare libfuse.
#define FUSE_USE_VERSION 35
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <functional>
#include <sched.h>
#include <string>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include <fuse_lowlevel.h>
#include <fusd/fusd.hpp>

namespace {

const std::vector<char> kZeros(1 << 20, 0);

// cpu < 0: anywhere (the scheduler places it, as it does for an ordinary program)
void pin_to_cpu(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0) {
        std::fprintf(stderr, "fusd-bench: cannot run on CPU %d: %s\n", cpu, std::strerror(errno));
        std::exit(1);
    }
}

// ---- the two daemons -----------------------------------------------------------------------------

int serve_fusd(const char *path)
{
    fusd::Loop loop;
    fusd::Callbacks cb;
    cb.read = [](fusd::Request req) {
        req.reply_data(std::span<const std::byte>(reinterpret_cast<const std::byte *>(kZeros.data()),
                                                  std::min(req.size(), kZeros.size())));
    };
    fusd::DeviceOptions o;
    o.name = path;
    o.mode = 0444;
    loop.add(o, cb);
    std::printf("ready\n");
    std::fflush(stdout);
    loop.run();
    return 0;
}

void bare_getattr(fuse_req_t req, fuse_ino_t, fuse_file_info *)
{
    struct stat st{};
    st.st_ino = 1;
    st.st_mode = S_IFREG | 0444;
    st.st_nlink = 1;
    fuse_reply_attr(req, &st, 86400);
}
void bare_open(fuse_req_t req, fuse_ino_t, fuse_file_info *fi)
{
    fi->direct_io = 1;
    fi->nonseekable = 1;
    fuse_reply_open(req, fi);
}
void bare_read(fuse_req_t req, fuse_ino_t, size_t size, off_t, fuse_file_info *)
{
    fuse_reply_buf(req, kZeros.data(), std::min(size, kZeros.size()));
}

int serve_bare(const char *path)
{
    int ph = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (ph < 0) {
        std::perror(path);
        return 1;
    }
    close(ph);
    fuse_lowlevel_ops ops{};
    ops.getattr = bare_getattr;
    ops.open = bare_open;
    ops.read = bare_read;
    const char *argv[] = {"bare", "-o", "allow_other", nullptr};
    fuse_args args = FUSE_ARGS_INIT(3, const_cast<char **>(argv));
    fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, nullptr);
    if (!se || fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, path) != 0) {
        unlink(path);
        return 1;
    }
    std::printf("ready\n");
    std::fflush(stdout);
    fuse_session_loop(se); // single-threaded: the fastest libfuse loop on this machine
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    unlink(path);
    return 0;
}

// ---- the caller side -----------------------------------------------------------------------------

struct Child {
    pid_t pid = -1;
    Child() = default;
    Child(Child &&other) noexcept : pid(std::exchange(other.pid, -1)) {}
    Child &operator=(Child &&) = delete;
    ~Child()
    {
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, nullptr, 0);
        }
    }
};

Child start_daemon(const char *self, const char *mode, const std::string &path, const char *backend = nullptr,
                   int cpu = 0)
{
    int out[2];
    if (pipe(out) < 0)
        std::exit(1);
    Child c;
    c.pid = fork();
    if (c.pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        if (backend)
            setenv("FUSD_BACKEND", backend, 1);
        execl(self, self, mode, path.c_str(), std::to_string(cpu).c_str(), nullptr);
        _exit(127);
    }
    close(out[1]);
    char buf[16] = {};
    if (read(out[0], buf, sizeof buf - 1) <= 0 || std::strncmp(buf, "ready", 5) != 0) {
        std::fprintf(stderr, "fusd-bench: daemon %s did not start\n", mode);
        std::exit(1);
    }
    close(out[0]);
    return c;
}

double seconds(const std::function<void()> &fn)
{
    auto t0 = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median_rate(int rounds, long ops, const std::function<void(long)> &body)
{
    std::vector<double> rates;
    for (int r = 0; r < rounds; ++r)
        rates.push_back(double(ops) / seconds([&] { body(ops); }));
    std::sort(rates.begin(), rates.end());
    return rates[rates.size() / 2];
}

// n reads of exactly `size` bytes each from fd, into buf
void read_n(int fd, char *buf, std::size_t size, long n)
{
    for (long i = 0; i < n; ++i)
        if (read(fd, buf, size) != ssize_t(size)) {
            std::perror("read");
            std::exit(1);
        }
}

// reads/s of `size`-byte reads from path
double read_rate(const std::string &path, std::size_t size, long ops)
{
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) {
        std::perror(path.c_str());
        std::exit(1);
    }
    std::vector<char> buf(size);
    double rate = median_rate(5, ops, [&](long n) { read_n(fd, buf.data(), size, n); });
    close(fd);
    return rate;
}

double pipe_pingpong_rate(long ops, int peer_cpu = 0)
{
    int a[2], b[2];
    if (pipe(a) < 0 || pipe(b) < 0)
        std::exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        pin_to_cpu(peer_cpu);
        close(a[1]);
        close(b[0]);
        char c;
        while (read(a[0], &c, 1) == 1)
            if (write(b[1], &c, 1) != 1)
                break;
        _exit(0);
    }
    close(a[0]);
    close(b[1]);
    char c = 'x';
    double rate = median_rate(5, ops, [&](long n) {
        for (long i = 0; i < n; ++i)
            if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
                std::exit(1);
    });
    close(a[1]);
    close(b[0]);
    waitpid(pid, nullptr, 0);
    return rate;
}

// Every usable backend at once, measured in turns (one round of each, five times over) so that a
// drift of the machine during the run moves all of them alike; the median round of each.
int compare_backends(const char *self, double scale, int daemon_cpu)
{
    const long ops = long(20000 * scale);
    constexpr int kRounds = 5;
    std::string base = "/dev/fusd-bench-" + std::to_string(getpid());
    if (daemon_cpu < 0)
        std::printf("fusd-bench: 1-byte reads, caller and daemons unpinned; median of %d rounds, "
                    "the backends in turns\n", kRounds);
    else
        std::printf("fusd-bench: 1-byte reads, caller on CPU 0, daemons on CPU %d; median of %d rounds, "
                    "the backends in turns\n", daemon_cpu, kRounds);
    double zero = read_rate("/dev/zero", 1, ops * 5);
    double pipe = pipe_pingpong_rate(ops, daemon_cpu);
    std::printf("%-28s %10.0f ns/op\n", "/dev/zero", 1e9 / zero);
    std::printf("%-28s %10.0f ns/op\n", "pipe ping-pong", 1e9 / pipe);
    struct Device {
        fusd::Backend backend;
        Child daemon;
        int fd;
        std::vector<double> rates;
    };
    std::deque<Device> devices;
    for (const auto &status : fusd::probe_backends()) {
        std::string name(fusd::to_string(status.backend));
        if (!status.usable) {
            std::printf("%-28s %10s (%s)\n", ("libfusd " + name).c_str(), "-", status.reason.c_str());
            continue;
        }
        std::string path = base + "-" + name;
        Device &d = devices.emplace_back(status.backend, start_daemon(self, "--serve-fusd", path, name.c_str(), daemon_cpu), -1);
        if ((d.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC)) < 0) {
            std::perror(path.c_str());
            return 1;
        }
    }
    char byte;
    for (int round = 0; round < kRounds; ++round)
        for (Device &d : devices)
            d.rates.push_back(double(ops) / seconds([&] { read_n(d.fd, &byte, 1, ops); }));
    double per_backend[4] = {};
    for (Device &d : devices) {
        close(d.fd);
        std::sort(d.rates.begin(), d.rates.end());
        double rate = d.rates[d.rates.size() / 2];
        per_backend[int(d.backend)] = rate;
        std::string label = "libfusd " + std::string(fusd::to_string(d.backend));
        std::printf("%-28s %10.0f ns/op  (%.0fx /dev/zero, %.2fx pipe)\n", label.c_str(), 1e9 / rate, zero / rate,
                    pipe / rate);
    }
    double kernel = per_backend[int(fusd::Backend::kernel)], cuse = per_backend[int(fusd::Backend::cuse)];
    if (kernel > 0 && cuse > 0)
        std::printf("ratio kernel/cuse (time per read): %.2f (target <= 0.60)\n", cuse / kernel);
    return 0;
}

// The FUSE backend's transports side by side: the bare libfuse daemon, libfusd through libfuse's
// session and libfusd through FUSE over io_uring, each size and placement measured in turns (one
// round of each daemon, kRounds times over) so that load on a shared machine hits them alike.
// Prints the median and the spread (lowest to highest round) in microseconds per read.
int compare_fuse_transports(const char *self, double scale)
{
    constexpr int kRounds = 5;
    struct Placement {
        const char *name;
        int caller_cpu, daemon_cpu;
    };
    const Placement placements[] = {{"same CPU (0/0)", 0, 0}, {"different CPUs (0/1)", 0, 1}, {"unpinned", -1, -1}};
    const std::size_t sizes[] = {1, 4096, 65536, 1 << 20};
    const char *names[] = {"bare libfuse", "libfusd libfuse", "libfusd uring"};
    std::printf("fusd-bench: FUSE transports, reads; median [lowest-highest] of %d rounds, in turns; us per read\n",
                kRounds);
    std::printf("%-22s %-8s %-26s %-26s %-26s\n", "placement", "size", names[0], names[1], names[2]);
    for (const Placement &pl : placements) {
        if (pl.caller_cpu >= 0)
            pin_to_cpu(pl.caller_cpu);
        else {
            cpu_set_t all;
            CPU_ZERO(&all);
            for (int c = 0; c < CPU_SETSIZE; ++c)
                CPU_SET(c, &all);
            sched_setaffinity(0, sizeof all, &all);
        }
        std::string base = "/dev/fusd-bench-" + std::to_string(getpid()) + "-t";
        Child bare = start_daemon(self, "--serve-bare", base + "-bare", nullptr, pl.daemon_cpu);
        setenv("FUSD_FUSE_TRANSPORT", "libfuse", 1);
        Child lib = start_daemon(self, "--serve-fusd", base + "-libfuse", "fuse", pl.daemon_cpu);
        setenv("FUSD_FUSE_TRANSPORT", "uring", 1);
        Child ur = start_daemon(self, "--serve-fusd", base + "-uring", "fuse", pl.daemon_cpu);
        unsetenv("FUSD_FUSE_TRANSPORT");
        const std::string paths[] = {base + "-bare", base + "-libfuse", base + "-uring"};
        for (std::size_t size : sizes) {
            long ops = long((size >= (1u << 20) ? 400 : size >= 65536 ? 4000 : 20000) * scale);
            if (ops < 1)
                ops = 1;
            std::vector<double> us[3];
            std::vector<char> buf(size);
            int fds[3];
            for (int d = 0; d < 3; ++d)
                if ((fds[d] = open(paths[d].c_str(), O_RDONLY)) < 0) {
                    std::perror(paths[d].c_str());
                    return 1;
                }
            for (int r = 0; r < kRounds; ++r)
                for (int d = 0; d < 3; ++d)
                    us[d].push_back(1e6 * seconds([&] { read_n(fds[d], buf.data(), size, ops); }) / double(ops));
            for (int fd : fds)
                close(fd);
            char cells[3][40];
            for (int d = 0; d < 3; ++d) {
                std::sort(us[d].begin(), us[d].end());
                std::snprintf(cells[d], sizeof cells[d], "%.2f [%.2f-%.2f]", us[d][kRounds / 2], us[d].front(),
                              us[d].back());
            }
            std::printf("%-22s %-8zu %-26s %-26s %-26s\n", pl.name, size, cells[0], cells[1], cells[2]);
        }
    }
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc == 4 && std::strcmp(argv[1], "--serve-fusd") == 0) {
        pin_to_cpu(std::atoi(argv[3]));
        return serve_fusd(argv[2]);
    }
    if (argc == 4 && std::strcmp(argv[1], "--serve-bare") == 0) {
        pin_to_cpu(std::atoi(argv[3]));
        return serve_bare(argv[2]);
    }
    double scale = 1.0;
    bool compare = false;
    int daemon_cpu = 0;
    bool unpinned = false;
    bool transports = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
            scale = std::atof(argv[++i]);
        else if (std::strcmp(argv[i], "--daemon-cpu") == 0 && i + 1 < argc)
            daemon_cpu = std::atoi(argv[++i]);
        else if (std::strcmp(argv[i], "--compare-backends") == 0)
            compare = true;
        else if (std::strcmp(argv[i], "--unpinned") == 0)
            unpinned = true;
        else if (std::strcmp(argv[i], "--fuse-transports") == 0)
            transports = true;
        else {
            std::fprintf(stderr, "usage: fusd-bench [--compare-backends [--daemon-cpu N | --unpinned] | "
                                 "--fuse-transports] [--scale X]\n");
            return 2;
        }
    }
    if (unpinned && !compare) {
        std::fprintf(stderr, "fusd-bench: --unpinned goes with --compare-backends\n");
        return 2;
    }
    if (transports)
        return compare_fuse_transports(argv[0], scale);
    if (unpinned)
        return compare_backends(argv[0], scale, -1);
    pin_to_cpu(0);
    if (compare)
        return compare_backends(argv[0], scale, daemon_cpu);
    const long small = long(40000 * scale), medium = long(8000 * scale), large = long(600 * scale);
    std::string base = "/dev/fusd-bench-" + std::to_string(getpid());

    std::printf("fusd-bench: caller and daemons pinned to CPU 0; median of 5 rounds\n");
    double zero1 = read_rate("/dev/zero", 1, small * 5);
    double pipe1 = pipe_pingpong_rate(small);
    double bare1, bare64, bare1m, fusd1, fusd64, fusd1m;
    {
        Child bare = start_daemon(argv[0], "--serve-bare", base + "-bare");
        bare1 = read_rate(base + "-bare", 1, small);
        bare64 = read_rate(base + "-bare", 65536, medium);
        bare1m = read_rate(base + "-bare", 1 << 20, large);
    }
    {
        Child dev = start_daemon(argv[0], "--serve-fusd", base + "-fusd");
        fusd1 = read_rate(base + "-fusd", 1, small);
        fusd64 = read_rate(base + "-fusd", 65536, medium);
        fusd1m = read_rate(base + "-fusd", 1 << 20, large);
    }
    auto mbps = [](double rate, double size) { return rate * size / 1e6; };
    std::printf("%-34s %12s %12s\n", "case", "ops/s", "MB/s");
    std::printf("%-34s %12.0f %12s\n", "/dev/zero 1 B read", zero1, "-");
    std::printf("%-34s %12.0f %12s\n", "pipe ping-pong 1 B (2 processes)", pipe1, "-");
    std::printf("%-34s %12.0f %12s\n", "bare libfuse 1 B read", bare1, "-");
    std::printf("%-34s %12.0f %12s\n", "libfusd (fuse) 1 B read", fusd1, "-");
    std::printf("%-34s %12.0f %12.0f\n", "bare libfuse 64 KiB read", bare64, mbps(bare64, 65536));
    std::printf("%-34s %12.0f %12.0f\n", "libfusd (fuse) 64 KiB read", fusd64, mbps(fusd64, 65536));
    std::printf("%-34s %12.0f %12.0f\n", "bare libfuse 1 MiB read", bare1m, mbps(bare1m, 1 << 20));
    std::printf("%-34s %12.0f %12.0f\n", "libfusd (fuse) 1 MiB read", fusd1m, mbps(fusd1m, 1 << 20));
    std::printf("\nratios (time per op; lower is better)\n");
    std::printf("  libfusd / bare libfuse, 1 B:    %.2fx  (target <= 1.15x)\n", bare1 / fusd1);
    std::printf("  libfusd / bare libfuse, 64 KiB: %.2fx\n", bare64 / fusd64);
    std::printf("  libfusd / bare libfuse, 1 MiB:  %.2fx\n", bare1m / fusd1m);
    std::printf("  libfusd 1 B / pipe round trip:  %.2fx\n", pipe1 / fusd1);
    std::printf("  libfusd 1 B / /dev/zero:        %.1fx\n", zero1 / fusd1);
    return 0;
}
