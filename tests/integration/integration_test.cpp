// Integration tests: real devices through the backend named by $FUSD_BACKEND (default auto),
// driven by separate daemon processes, used by ordinary system calls.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/fsuid.h>
#include <sys/wait.h>
#include <grp.h>
#include <functional>
#include <optional>
#include <thread>
#include <unistd.h>

#include <fusd/admin.hpp>
#include <fusd/fusd.hpp>

#include "daemon.hpp"
#include "testd.h"

using namespace fusd_test;
using namespace std::chrono_literals;

namespace {

// Each test process gets a registry of its own: ctest runs tests in parallel, and a listing in
// one (which cleans dead entries) must not tidy away the dead daemon another test is checking.
class PrivateRegistry : public ::testing::Environment {
public:
    void SetUp() override
    {
        if (std::getenv("FUSD_RUNTIME_DIR"))
            return; // the caller chose one
        char dir[] = "/tmp/fusd-it-XXXXXX";
        ASSERT_NE(mkdtemp(dir), nullptr);
        chmod(dir, 0755);
        dir_ = dir;
        setenv("FUSD_RUNTIME_DIR", dir, 1); // inherited by the daemons the tests start
    }
    void TearDown() override
    {
        if (!dir_.empty())
            std::filesystem::remove_all(dir_);
    }

private:
    std::string dir_;
};
const auto *const g_private_registry = ::testing::AddGlobalTestEnvironment(new PrivateRegistry);

std::string testd() { return build_dir() + "/tests/fusd-testd"; }
std::string example(const std::string &name) { return build_dir() + "/examples/" + name; }
const char *backend() { return std::getenv("FUSD_BACKEND") ? std::getenv("FUSD_BACKEND") : "auto"; }

bool mounted(const std::string &path)
{
    std::ifstream in("/proc/self/mounts");
    std::string line;
    while (std::getline(in, line))
        if (line.find(" " + path + " ") != std::string::npos)
            return true;
    return false;
}

bool exists(const std::string &path)
{
    struct stat st{};
    return lstat(path.c_str(), &st) == 0;
}


// A testd daemon serving a fresh device.
struct TestDevice {
    std::string path;
    std::unique_ptr<Daemon> daemon;
    explicit TestDevice(const std::string &tag, const std::string &mode = "0666")
        : path("/dev/" + unique_name(tag))
    {
        daemon = std::make_unique<Daemon>(std::vector<std::string>{testd(), path, "--backend", backend(), "--mode", mode});
    }
    ~TestDevice()
    {
        int status = daemon->stop();
        EXPECT_FALSE(WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM && WTERMSIG(status) != SIGKILL)
            << "the daemon died of signal " << WTERMSIG(status);
        if (exists(path)) // a failed test must not leave the node behind
            try {
                fusd::admin::remove_device(path, true);
            } catch (...) {
            }
    }
    int open(int flags = O_RDWR) const { return ::open(path.c_str(), flags | O_CLOEXEC); }
};

// FUSE's node is a regular file; the kernel backend's and CUSE's are character devices.
bool on_fuse(const std::string &path)
{
    struct stat st{};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void sigusr1_handler(int) {}

// A thread blocked in a 1-byte read() of fd, and how that read ended.
class BlockedReader {
public:
    explicit BlockedReader(int fd) : state_(std::make_shared<State>())
    {
        thread_ = std::thread([s = state_, fd] {
            char c;
            ssize_t n = ::read(fd, &c, 1);
            s->err = n < 0 ? errno : 0;
            s->done = true;
        });
    }
    ~BlockedReader()
    {
        if (state_->done)
            thread_.join();
        else
            thread_.detach(); // still stuck after a failed check: must not hang the test run
    }
    pthread_t native_handle() { return thread_.native_handle(); }
    // Until the read returns, or kHangGuard has passed (false): a hang guard, not a speed target.
    bool wait_done()
    {
        auto until = std::chrono::steady_clock::now() + kHangGuard;
        while (!state_->done && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(10ms);
        return state_->done;
    }
    int error() const { return state_->err; }

private:
    struct State {
        std::atomic<bool> done{false};
        std::atomic<int> err{0};
    };
    std::shared_ptr<State> state_;
    std::thread thread_;
};

int socket_fd(const std::string &path)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

} // namespace

TEST(Device, WriteThenReadBackOnOneOpen)
{
    TestDevice dev("echo");
    ASSERT_TRUE(dev.daemon->ready()) << "daemon did not come up";
    int fd = dev.open();
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(write(fd, "hello", 5), 5);
    char buf[16] = {};
    ASSERT_EQ(read(fd, buf, sizeof buf), 5);
    EXPECT_STREQ(buf, "hello");
    close(fd);
}

TEST(Device, NodeIsNotSeekable)
{
    TestDevice dev("seek");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    EXPECT_EQ(lseek(fd, 10, SEEK_SET), -1);
    EXPECT_EQ(errno, ESPIPE);
    close(fd);
}

TEST(Device, BlockingReadIsAnsweredLaterFromAnotherThread)
{
    // The reader blocks in read(); a write on the same open file (another thread) must go through
    // while the read is pending (FOPEN_STREAM) and wake the reader.
    TestDevice dev("block");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    std::atomic<ssize_t> got{-2};
    char buf[16] = {};
    std::thread reader([&] { got = read(fd, buf, sizeof buf); });
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(got.load(), -2) << "read returned before any data was written";
    ASSERT_EQ(write(fd, "late", 4), 4);
    reader.join();
    EXPECT_EQ(got.load(), 4);
    EXPECT_EQ(std::string(buf, 4), "late");
    close(fd);
}

TEST(Device, NonblockingReadGetsEagain)
{
    TestDevice dev("nonblock");
    int fd = dev.open(O_RDWR | O_NONBLOCK);
    ASSERT_GE(fd, 0);
    char c;
    EXPECT_EQ(read(fd, &c, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
    // O_NONBLOCK cleared later with fcntl is seen by the driver too
    ASSERT_EQ(write(fd, "x", 1), 1);
    EXPECT_EQ(read(fd, &c, 1), 1);
    close(fd);
}

TEST(Device, PollFollowsTheDriversReadiness)
{
    TestDevice dev("poll");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    pollfd p{fd, POLLIN | POLLOUT, 0};
    ASSERT_EQ(poll(&p, 1, 0), 1);
    EXPECT_FALSE(p.revents & POLLIN);
    EXPECT_TRUE(p.revents & POLLOUT);
    // a poller blocked in poll() wakes when the driver says readable
    std::atomic<int> woke{-1};
    std::thread poller([&] {
        pollfd q{fd, POLLIN, 0};
        woke = poll(&q, 1, kHangGuard.count()) == 1 && (q.revents & POLLIN);
    });
    std::this_thread::sleep_for(100ms);
    int wfd = dev.open(); // other open: its own buffer, does not make fd readable
    close(wfd);
    ASSERT_EQ(write(fd, "abc", 3), 3);
    poller.join();
    EXPECT_EQ(woke.load(), 1);
    char buf[3];
    ASSERT_EQ(read(fd, buf, 3), 3);
    p.revents = 0;
    ASSERT_EQ(poll(&p, 1, kHangGuard.count()), 1); // readable state drops once drained (driver publishes it)
    for (int i = 0; i < kHangGuard.count() / 10 && (p.revents & POLLIN); ++i) {
        std::this_thread::sleep_for(10ms);
        p.revents = 0;
        poll(&p, 1, 0);
    }
    EXPECT_FALSE(p.revents & POLLIN);
    close(fd);
}

// Request::reply_retry: the driver fetches a structure, then the memory it points to, and writes
// back through another pointer; addresses the caller cannot use fail its call with EFAULT.
TEST(Device, IoctlRetriesReachTheCallersMemory)
{
    TestDevice dev("retry");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    char in[] = "hello, retry", out[32] = {};
    testd_gather g{std::uint64_t(std::uintptr_t(in)), std::uint64_t(std::uintptr_t(out)), 12, sizeof out};
    if (on_fuse(dev.path)) { // the kernel restricts a regular file's ioctls
        EXPECT_EQ(ioctl(fd, TESTD_GATHER, &g), -1);
        EXPECT_EQ(errno, EOPNOTSUPP);
        close(fd);
        return;
    }
    ASSERT_EQ(ioctl(fd, TESTD_GATHER, &g), 12) << strerror(errno);
    EXPECT_EQ(std::string(out), "yrter ,olleh");
    g.in = 16; // never mapped
    EXPECT_EQ(ioctl(fd, TESTD_GATHER, &g), -1);
    EXPECT_EQ(errno, EFAULT);
    g.in = std::uint64_t(std::uintptr_t(in));
    g.out = 0xffff888000000000ull; // the kernel's
    EXPECT_EQ(ioctl(fd, TESTD_GATHER, &g), -1);
    EXPECT_EQ(errno, EFAULT);
    EXPECT_EQ(ioctl(fd, TESTD_GATHER, reinterpret_cast<void *>(16)), -1);
    EXPECT_EQ(errno, EFAULT);
    close(fd);
}

TEST(Device, IoctlsOfEveryDirection)
{
    TestDevice dev("ioctl");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    std::uint64_t v = 0xfeedface12345678ull, back = 0;
    ASSERT_EQ(ioctl(fd, TESTD_SET, &v), 0) << strerror(errno);
    ASSERT_EQ(ioctl(fd, TESTD_GET, &back), 0);
    EXPECT_EQ(back, v);
    char s[64] = {};
    std::strcpy(s, "abc");
    ASSERT_EQ(ioctl(fd, TESTD_REVERSE, s), 0);
    EXPECT_EQ(s[63], 'a');
    EXPECT_EQ(s[62], 'b');
    EXPECT_EQ(ioctl(fd, TESTD_ADD1, 41), 42);
    std::string big(16000, '\0');
    ASSERT_EQ(ioctl(fd, TESTD_BIG, big.data()), 0);
    EXPECT_EQ(big[0], 'a');
    EXPECT_EQ(big[15999], char('a' + 15999 % 26));
    EXPECT_EQ(ioctl(fd, _IO('Z', 99)), -1);
    EXPECT_EQ(errno, ENOTTY);
    close(fd);
}

TEST(Device, CallerCredentialsAreRealIncludingNonRoot)
{
    TestDevice dev("caller");
    int fd = dev.open(O_RDWR | O_NONBLOCK);
    ASSERT_GE(fd, 0);
    testd_caller c{};
    ASSERT_EQ(ioctl(fd, TESTD_GET_CALLER, &c), 0);
    EXPECT_EQ(c.pid, std::uint32_t(getpid()));
    EXPECT_EQ(c.uid, getuid());
    EXPECT_TRUE(c.flags & O_NONBLOCK);
    close(fd);

    pid_t child = fork();
    if (child == 0) {
        if (setgid(65534) || setuid(65534))
            _exit(10);
        int cfd = ::open(dev.path.c_str(), O_RDWR);
        if (cfd < 0)
            _exit(11);
        testd_caller cc{};
        if (ioctl(cfd, TESTD_GET_CALLER, &cc) != 0)
            _exit(12);
        _exit(cc.uid == 65534 && cc.gid == 65534 && cc.pid == std::uint32_t(getpid()) ? 0 : 13);
    }
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

// The errno a caller of `dev` gets from TESTD_FAIL_WITH `errnum`, in a child process so that a
// caller left waiting cannot hang the test: -1 when it did not return within kHangGuard (the
// daemon is then stopped, which releases it, even from an uninterruptible wait).
int errno_seen_for(TestDevice &dev, std::int32_t errnum)
{
    int seen[2];
    if (pipe2(seen, O_CLOEXEC) != 0)
        return -3;
    pid_t child = fork();
    if (child == 0) {
        int fd = ::open(dev.path.c_str(), O_RDWR);
        int err = fd < 0 ? -4 : ioctl(fd, TESTD_FAIL_WITH, &errnum) == 0 ? 0 : errno;
        _exit(::write(seen[1], &err, sizeof err) == sizeof err ? 0 : 1);
    }
    close(seen[1]);
    int status = 0;
    for (auto until = std::chrono::steady_clock::now() + kHangGuard; std::chrono::steady_clock::now() < until;) {
        if (waitpid(child, &status, WNOHANG) == child) {
            int err = -2;
            if (::read(seen[0], &err, sizeof err) != sizeof err)
                err = -2;
            close(seen[0]);
            return err;
        }
        std::this_thread::sleep_for(10ms);
    }
    close(seen[0]);
    kill(child, SIGKILL);
    dev.daemon->stop();
    waitpid(child, &status, 0);
    return -1;
}

TEST(Device, ErrorNumbersAreTheSameOnEveryBackend)
{
    TestDevice dev("errno");
    // Every errno a caller can see (1..EHWPOISON, 133) passes unchanged, and so does anything
    // below 512; from 512 (the kernel's own codes: ERESTARTSYS...) to 4095 no errno exists, the
    // FUSE kernel refuses them, and the caller gets EIO, on every backend.
    for (std::int32_t e : {EPERM, ENOENT, ENOTTY, EOWNERDEAD, ENOTRECOVERABLE, ERFKILL, EHWPOISON, 200, 511})
        EXPECT_EQ(errno_seen_for(dev, e), e) << "errno " << e;
    for (std::int32_t e : {512, 529, 530, 999, 1000, 4095})
        EXPECT_EQ(errno_seen_for(dev, e), EIO) << "errno " << e;
    EXPECT_EQ(errno_seen_for(dev, EHWPOISON), EHWPOISON) << "the device stopped serving";
}

// The Caller of a TESTD_GET_IDS ioctl made by a child process that first runs `become` (which
// returns false when it cannot); nullopt when the child failed.
std::optional<testd_ids> ids_seen_by_child(const std::string &path, const std::function<bool()> &become)
{
    int seen[2];
    if (pipe2(seen, O_CLOEXEC) != 0)
        return std::nullopt;
    pid_t child = fork();
    if (child == 0) {
        testd_ids ids{};
        int fd = become() ? ::open(path.c_str(), O_RDWR) : -1;
        if (fd < 0 || ioctl(fd, TESTD_GET_IDS, &ids) != 0)
            _exit(1);
        ids.pid = ids.pid == std::uint32_t(getpid()) ? 1 : 0; // what the child checked: its own pid
        _exit(::write(seen[1], &ids, sizeof ids) == sizeof ids ? 0 : 1);
    }
    close(seen[1]);
    testd_ids ids{};
    bool ok = ::read(seen[0], &ids, sizeof ids) == sizeof ids;
    close(seen[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return std::nullopt;
    return ids;
}

TEST(Caller, PidIsTheProcessIdAlsoFromAnotherThread)
{
    TestDevice dev("tgid");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    testd_ids main_ids{}, thread_ids{};
    pid_t thread_tid = 0;
    ASSERT_EQ(ioctl(fd, TESTD_GET_IDS, &main_ids), 0);
    std::thread([&] {
        thread_tid = gettid();
        if (ioctl(fd, TESTD_GET_IDS, &thread_ids) != 0)
            thread_ids.pid = 0;
    }).join();
    close(fd);
    ASSERT_NE(thread_tid, getpid());
    EXPECT_EQ(main_ids.pid, std::uint32_t(getpid()));
    EXPECT_EQ(thread_ids.pid, std::uint32_t(getpid())) << "the thread's id was " << thread_tid;
    // and the file opened by another thread names this process as its opener, too
    std::thread([&] {
        int tfd = dev.open();
        if (tfd >= 0) {
            if (ioctl(tfd, TESTD_GET_IDS, &thread_ids) != 0)
                thread_ids.pid = 0;
            close(tfd);
        }
    }).join();
    EXPECT_EQ(thread_ids.pid, std::uint32_t(getpid()));
}

TEST(Caller, UidAndGidAreTheFilesystemIdsAndTheRealOnesAreGivenToo)
{
    TestDevice dev("ids");
    // As `setpriv --reuid=65534 --regid=65534 --clear-groups`: every id 65534.
    auto nobody = ids_seen_by_child(dev.path, [] {
        return setgroups(0, nullptr) == 0 && setregid(65534, 65534) == 0 && setreuid(65534, 65534) == 0;
    });
    ASSERT_TRUE(nobody);
    EXPECT_EQ(nobody->pid, 1u) << "pid is not the caller's getpid()";
    EXPECT_EQ(nobody->uid, 65534u);
    EXPECT_EQ(nobody->gid, 65534u);
    EXPECT_EQ(nobody->real_uid, 65534u);
    EXPECT_EQ(nobody->real_gid, 65534u);
    // Real ids of nobody, effective (and so filesystem) ids of root: they differ, both are given.
    auto mixed = ids_seen_by_child(dev.path, [] {
        return setresgid(65534, 0, 0) == 0 && setresuid(65534, 0, 0) == 0;
    });
    ASSERT_TRUE(mixed);
    EXPECT_EQ(mixed->uid, 0u);
    EXPECT_EQ(mixed->gid, 0u);
    EXPECT_EQ(mixed->real_uid, 65534u);
    EXPECT_EQ(mixed->real_gid, 65534u);
    // setfsuid moves only the filesystem ids: uid follows it, real_uid does not.
    auto fs_only = ids_seen_by_child(dev.path, [] {
        setfsgid(4242);
        setfsuid(4343);
        return true;
    });
    ASSERT_TRUE(fs_only);
    EXPECT_EQ(fs_only->uid, 4343u);
    EXPECT_EQ(fs_only->gid, 4242u);
    EXPECT_EQ(fs_only->real_uid, 0u);
    EXPECT_EQ(fs_only->real_gid, 0u);
}

TEST(Device, ModeBitsKeepOtherUsersOut)
{
    TestDevice dev("mode", "0600");
    pid_t child = fork();
    if (child == 0) {
        if (setgid(65534) || setuid(65534))
            _exit(10);
        int cfd = ::open(dev.path.c_str(), O_RDONLY);
        _exit(cfd < 0 && errno == EACCES ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(Device, LargeTransfersArriveIntact)
{
    TestDevice dev("large");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    std::string out(3 * 1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = char(i * 7 + i / 4096);
    std::thread writer([&] {
        std::size_t off = 0;
        while (off < out.size()) {
            ssize_t n = write(fd, out.data() + off, out.size() - off);
            if (n <= 0)
                break;
            off += std::size_t(n);
        }
    });
    std::string in;
    std::vector<char> buf(1 << 20);
    while (in.size() < out.size()) {
        ssize_t n = read(fd, buf.data(), buf.size());
        ASSERT_GT(n, 0);
        in.append(buf.data(), std::size_t(n));
    }
    writer.join();
    EXPECT_TRUE(in == out) << "data differs";
    close(fd);
}

TEST(Device, HundredConcurrentCallersKeepTheirOwnData)
{
    TestDevice dev("hundred");
    constexpr int kCallers = 100;
    std::atomic<int> ok{0};
    std::vector<std::thread> callers;
    for (int i = 0; i < kCallers; ++i)
        callers.emplace_back([&, i] {
            int fd = dev.open();
            if (fd < 0) {
                ADD_FAILURE() << "open: " << strerror(errno);
                return;
            }
            std::string mine(1000 + i, char('A' + i % 26));
            mine += std::to_string(i);
            ssize_t w = write(fd, mine.data(), mine.size());
            bool good = w == ssize_t(mine.size());
            if (!good)
                ADD_FAILURE() << "write: " << w << " " << strerror(errno);
            std::string back;
            char buf[4096];
            while (good && back.size() < mine.size()) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n <= 0) {
                    ADD_FAILURE() << "read: " << n << " " << strerror(errno);
                    good = false;
                } else
                    back.append(buf, std::size_t(n));
            }
            if (good && back != mine)
                ADD_FAILURE() << "caller " << i << " read back other data";
            if (good && back == mine)
                ok++;
            close(fd);
        });
    for (auto &t : callers)
        t.join();
    EXPECT_EQ(ok.load(), kCallers);
}

TEST(Device, InterruptedCallerGetsEintrAndTheDriverIsTold)
{
    TestDevice dev("intr");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    std::uint64_t before = 0;
    ASSERT_EQ(ioctl(fd, TESTD_INTERRUPTS, &before), 0);
    struct sigaction sa{};
    sa.sa_handler = sigusr1_handler; // no SA_RESTART
    sigaction(SIGUSR1, &sa, nullptr);
    BlockedReader reader(fd);
    std::this_thread::sleep_for(200ms);
    pthread_kill(reader.native_handle(), SIGUSR1);
    ASSERT_TRUE(reader.wait_done()) << "the signalled reader is still blocked";
    EXPECT_EQ(reader.error(), EINTR);
    std::uint64_t after = 0;
    ASSERT_EQ(ioctl(fd, TESTD_INTERRUPTS, &after), 0);
    EXPECT_EQ(after, before + 1);
    // the daemon keeps serving
    ASSERT_EQ(write(fd, "ok", 2), 2);
    char buf[2];
    EXPECT_EQ(read(fd, buf, 2), 2);
    close(fd);
}

// Interrupts that arrive while the driver answers from its own thread (testd answers reads from a
// worker): the backend's interrupt notice may name a request already answered, whose slot is being
// recycled. The daemon must neither crash nor tell the wrong request; every read ends.
TEST(Device, InterruptsRacingTheDriversAnswerLeaveTheDaemonServing)
{
    TestDevice dev("intr-race");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    struct sigaction sa{};
    sa.sa_handler = sigusr1_handler; // no SA_RESTART
    sigaction(SIGUSR1, &sa, nullptr);
    int answered = 0, interrupted = 0;
    for (int round = 0; round < 300; ++round) {
        BlockedReader reader(fd);
        std::this_thread::sleep_for(std::chrono::microseconds(200 + round % 7 * 100));
        if (round % 2) {
            ASSERT_EQ(write(fd, "x", 1), 1);
            pthread_kill(reader.native_handle(), SIGUSR1);
        } else {
            pthread_kill(reader.native_handle(), SIGUSR1);
            ASSERT_EQ(write(fd, "x", 1), 1);
        }
        ASSERT_TRUE(reader.wait_done()) << "round " << round << ": the reader is still blocked";
        if (reader.error() == EINTR)
            ++interrupted;
        else
            ASSERT_EQ(reader.error(), 0) << "round " << round;
        answered += reader.error() == 0;
    }
    EXPECT_EQ(answered + interrupted, 300);
    std::uint64_t value = 0;
    EXPECT_EQ(ioctl(fd, TESTD_GET, &value), 0) << "the daemon stopped serving";
    close(fd);
}

TEST(Device, KilledCallerLeavesTheDaemonServing)
{
    TestDevice dev("killcaller");
    pid_t child = fork();
    if (child == 0) {
        int cfd = ::open(dev.path.c_str(), O_RDWR);
        char c;
        (void)!read(cfd, &c, 1); // blocks forever
        _exit(0);
    }
    std::this_thread::sleep_for(300ms);
    kill(child, SIGKILL);
    int status;
    waitpid(child, &status, 0);
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "alive", 5), 5);
    char buf[5];
    EXPECT_EQ(read(fd, buf, 5), 5);
    close(fd);
}

// An environment variable set for the daemons a test starts, and unset again.
class ScopedEnv {
public:
    ScopedEnv(const char *name, const char *value) : name_(name) { setenv(name, value, 1); }
    ~ScopedEnv() { unsetenv(name_); }

private:
    const char *name_;
};

TEST(Lifecycle, DaemonKilledWhileCallerBlockedReleasesTheCaller)
{
    // No cleaner: the re-registration below must be what cleans (racing the cleaner:
    // RestartAtOnceAfterSigkillRacesTheCleanerAndWins).
    ScopedEnv no_cleaner("FUSD_CLEANER", "/nonexistent/fusd-cleaner");
    std::string path = "/dev/" + unique_name("sigkill");
    auto daemon = std::make_unique<Daemon>(std::vector<std::string>{testd(), path, "--backend", backend()});
    ASSERT_TRUE(daemon->ready());
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    BlockedReader reader(fd);
    std::this_thread::sleep_for(200ms);
    daemon->stop(SIGKILL);
    ASSERT_TRUE(reader.wait_done()) << "reader still blocked after the daemon died";
    EXPECT_NE(reader.error(), 0);
    close(fd);
    // The next registration of the same name cleans what the dead daemon left.
    Daemon again({testd(), path, "--backend", backend()});
    ASSERT_TRUE(again.ready()) << "re-registration after SIGKILL failed";
    int fd2 = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd2, 0);
    ASSERT_EQ(write(fd2, "x", 1), 1);
    close(fd2);
    again.stop();
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(mounted(path));
}

// The errors a dead daemon's callers see, as libfusd(3), fusd(4) and the README list them: the
// kernel backend gives FUSD's EPIPE; on CUSE and FUSE the kernel's FUSE code ends a call in
// flight with ECONNABORTED and later calls on the same file with ENOTCONN (fs/fuse/dev.c:
// fuse_abort_conn() and fuse_get_req()), which no daemon can change once it is dead.
TEST(Lifecycle, DaemonDeathGivesEachBackendsDocumentedErrors)
{
    std::string path = "/dev/" + unique_name("death");
    Daemon daemon({testd(), path, "--backend", backend()});
    ASSERT_TRUE(daemon.ready());
    std::string served = daemon.first_line().substr(daemon.first_line().rfind(' ') + 1);
    bool kernel = served == "kernel";
    ASSERT_TRUE(kernel || served == "cuse" || served == "fuse") << daemon.first_line();
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    BlockedReader reader(fd);
    std::this_thread::sleep_for(200ms); // a hang guard below; here only to let the read reach the daemon
    daemon.stop(SIGKILL);
    ASSERT_TRUE(reader.wait_done()) << "reader still blocked after the daemon died";
    EXPECT_EQ(reader.error(), kernel ? EPIPE : ECONNABORTED)
        << served << ": the call in flight got " << strerrorname_np(reader.error());
    char c;
    errno = 0;
    EXPECT_EQ(::read(fd, &c, 1), -1);
    EXPECT_EQ(errno, kernel ? EPIPE : ENOTCONN) << served << ": a later call got " << strerrorname_np(errno);
    EXPECT_EQ(::close(fd), 0) << strerror(errno);
}

TEST(Lifecycle, KilledDaemonLeavesNothingBehindWithNoHelp)
{
    // fusd-cleaner removes node, mount, registry entry and control socket at once: no fusd
    // command runs here, and nothing registers the name again.
    std::string path = "/dev/" + unique_name("cleaner");
    Daemon d({testd(), path, "--backend", backend()});
    ASSERT_TRUE(d.ready());
    std::string entry_file = fusd::admin::runtime_dir() + "/devices/dev:" + path.substr(5) + ".json";
    std::string entry;
    {
        std::ifstream in(entry_file);
        entry.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    auto at = entry.find("\"socket\":\"");
    ASSERT_NE(at, std::string::npos) << entry_file << ": " << entry;
    at += 10;
    std::string socket = entry.substr(at, entry.find('"', at) - at);
    ASSERT_TRUE(exists(socket)) << socket;
    d.stop(SIGKILL);
    auto all_gone = [&] { return !exists(path) && !mounted(path) && !exists(entry_file) && !exists(socket); };
    for (auto waited = 0ms; !all_gone() && waited < kHangGuard; waited += 10ms)
        std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(mounted(path));
    EXPECT_FALSE(exists(entry_file)) << entry_file;
    EXPECT_FALSE(exists(socket)) << socket;
}

TEST(Lifecycle, RestartAtOnceAfterSigkillRacesTheCleanerAndWins)
{
    // A supervisor restarts a killed daemon at once, while its fusd-cleaner is still removing
    // what it left: the new registration must wait for that cleanup (or finish it), never find
    // the node half removed and refuse the name, and the cleaner must never remove the new
    // daemon's node. Many rounds, as the window is narrow.
    std::string path = "/dev/" + unique_name("restart");
    constexpr int kRounds = 50;
    int refused = 0, broken = 0;
    std::string first_refusal;
    for (int round = 0; round < kRounds; ++round) {
        Daemon d({testd(), path, "--backend", backend()});
        if (!d.ready()) {
            if (first_refusal.empty())
                first_refusal = "round " + std::to_string(round);
            ++refused;
            d.stop();
            // Let the previous cleaner finish before the next round.
            for (auto waited = 0ms; exists(path) && waited < kHangGuard; waited += 10ms)
                std::this_thread::sleep_for(10ms);
            continue;
        }
        // The old daemon's cleaner may still be at work: it must leave this daemon's node alone.
        int fd = ::open(path.c_str(), O_RDWR);
        if (fd < 0 || write(fd, "x", 1) != 1)
            ++broken;
        if (fd >= 0)
            close(fd);
        d.stop(SIGKILL);
    }
    EXPECT_EQ(refused, 0) << refused << " of " << kRounds << " restarts refused, first in " << first_refusal;
    EXPECT_EQ(broken, 0) << broken << " of " << kRounds << " restarted daemons lost their node";
    // The last one's cleaner still removes everything, with no help.
    for (auto waited = 0ms; (exists(path) || mounted(path)) && waited < kHangGuard; waited += 10ms)
        std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(mounted(path));
}

TEST(Lifecycle, DeadDaemonIsListedDeadAndCleaned)
{
    // Without a cleaner (FUSD_CLEANER names no program), the next listing finds the dead
    // daemon's entry, reports it dead and cleans what it left.
    ScopedEnv no_cleaner("FUSD_CLEANER", "/nonexistent/fusd-cleaner");
    std::string path = "/dev/" + unique_name("dead");
    Daemon d({testd(), path, "--backend", backend()});
    ASSERT_TRUE(d.ready());
    d.stop(SIGKILL);
    bool seen_dead = false;
    for (const auto &info : fusd::admin::list_devices())
        if (info.path == path) {
            EXPECT_EQ(info.state, "dead");
            seen_dead = true;
        }
    EXPECT_TRUE(seen_dead);
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(mounted(path));
    for (const auto &info : fusd::admin::list_devices())
        EXPECT_NE(info.path, path) << "a cleaned dead device is listed again";
}

TEST(Lifecycle, SigtermLeavesNothingBehind)
{
    std::string path = "/dev/" + unique_name("term");
    Daemon d({testd(), path, "--backend", backend()});
    ASSERT_TRUE(d.ready());
    EXPECT_TRUE(exists(path));
    int status = d.stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(mounted(path));
    for (const auto &info : fusd::admin::list_devices())
        EXPECT_NE(info.path, path);
}

TEST(Lifecycle, ExistingNodeIsNeverReplaced)
{
    Daemon d({testd(), "/dev/null", "--backend", backend()});
    EXPECT_FALSE(d.ready());
    int status = d.stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    struct stat st{};
    ASSERT_EQ(stat("/dev/null", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/null was touched";
    EXPECT_FALSE(mounted("/dev/null"));
}

TEST(Lifecycle, NameServedByAnotherDaemonIsRefused)
{
    TestDevice dev("twice");
    ASSERT_TRUE(dev.daemon->ready());
    Daemon second({testd(), dev.path, "--backend", backend()});
    EXPECT_FALSE(second.ready());
    int status = second.stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    int fd = dev.open(); // the first one is untouched
    ASSERT_GE(fd, 0);
    close(fd);
}

TEST(Lifecycle, ForcedRemovalOfAStoppedDaemonReleasesBlockedCallers)
{
    TestDevice dev("force");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    auto reader = std::make_unique<BlockedReader>(fd);
    std::this_thread::sleep_for(200ms);
    dev.daemon->signal(SIGSTOP);
    fusd::admin::remove_device(dev.path, true);
    bool released = reader->wait_done();
    EXPECT_TRUE(released) << "blocked reader not released";
    if (!released) {
        dev.daemon->stop(SIGKILL);
        reader->wait_done();
    }
    reader.reset();
    close(fd);
    EXPECT_FALSE(exists(dev.path));
    EXPECT_FALSE(mounted(dev.path));
    // the resumed daemon notices and exits cleanly
    int status = dev.daemon->stop(SIGCONT);
    EXPECT_TRUE(WIFEXITED(status)) << "status " << status;
}

// Waits for child to exit, up to the hang guard; false if it is still there.
bool exits_within_guard(pid_t child)
{
    for (auto waited = 0ms; waited < kHangGuard; waited += 10ms) {
        int status;
        if (waitpid(child, &status, WNOHANG) == child)
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

TEST(Lifecycle, CloseNeverWaitsForAStoppedDaemon)
{
    // Every close of a descriptor, and a process exit while holding one (what a fork before exec
    // does), must go through without the daemon: a stopped daemon must not leave them asleep.
    TestDevice dev("closestop");
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    dev.daemon->signal(SIGSTOP);
    pid_t closer = fork();
    if (closer == 0) {
        close(fd);
        _exit(0);
    }
    pid_t exiter = fork();
    if (exiter == 0)
        _exit(0);
    bool closer_done = exits_within_guard(closer), exiter_done = exits_within_guard(exiter);
    EXPECT_TRUE(closer_done) << "close() waited for the stopped daemon";
    EXPECT_TRUE(exiter_done) << "exit() waited for the stopped daemon";
    dev.daemon->signal(SIGCONT);
    for (auto [pid, done] : {std::pair{closer, closer_done}, std::pair{exiter, exiter_done}})
        if (!done)
            waitpid(pid, nullptr, 0);
    close(fd);
}

TEST(Lifecycle, PoliteRemovalAsksTheDaemon)
{
    TestDevice dev("rm");
    ASSERT_TRUE(dev.daemon->ready());
    fusd::admin::remove_device(dev.path, false);
    EXPECT_FALSE(exists(dev.path));
    EXPECT_THROW(fusd::admin::remove_device(dev.path, false), fusd::Error);
}

TEST(Lifecycle, MalformedControlMessagesLeaveTheDaemonServing)
{
    // The control socket is reachable by every local user: garbage must get an error line or a
    // closed connection, never a crash or a hang.
    TestDevice dev("ctlfuzz");
    ASSERT_TRUE(dev.daemon->ready());
    std::string socket;
    {
        std::ifstream in(fusd::admin::runtime_dir() + "/devices/dev:" + dev.path.substr(5) + ".json");
        std::string entry((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto at = entry.find("\"socket\":\"");
        ASSERT_NE(at, std::string::npos) << entry;
        at += 10;
        socket = entry.substr(at, entry.find('"', at) - at);
    }
    const std::vector<std::string> inputs = {
        "\n", "{\n", "[]\n", "42\n", "{\"cmd\":7}\n", "{\"cmd\":\"nope\"}\n",
        "{\"cmd\":\"unregister\"}\n", "{\"cmd\":\"unregister\",\"device\":\"/dev/null\"}\n",
        "{\"cmd\":\"unregister\",\"device\":1}\n", "{\"cmd\":\"unregister\",\"device\":null}\n",
        "{\"cmd\":\"trace\",\"devices\":[1,null,{}]}\n", std::string(70000, 'x'),
        std::string("\0\xff\xfe{\"cmd\"\n", 10),
    };
    for (const auto &input : inputs) {
        int fd = socket_fd(socket);
        ASSERT_GE(fd, 0) << strerror(errno);
        (void)!::send(fd, input.data(), input.size(), MSG_NOSIGNAL);
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, 2000); // an error line, or the daemon hanging up: either is fine
        close(fd);
    }
    int fd = dev.open(); // still serving
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "ok", 2), 2);
    char buf[2];
    EXPECT_EQ(read(fd, buf, 2), 2);
    close(fd);
    bool live = false;
    for (const auto &info : fusd::admin::list_devices())
        if (info.path == dev.path)
            live = info.state == "live";
    EXPECT_TRUE(live);
}

TEST(Trace, EventsForAKnownSequenceOfCalls)
{
    TestDevice dev("trace");
    fusd::admin::TraceSubscription sub({dev.path});
    int fd = dev.open();
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "abc", 3), 3);
    char buf[8];
    ASSERT_EQ(read(fd, buf, sizeof buf), 3);
    close(fd);
    std::vector<std::string> ops;
    while (ops.size() < 4) {
        auto e = sub.next(5000);
        if (!e)
            break;
        EXPECT_EQ(e->device, dev.path);
        if (e->op == fusd::Op::poll)
            continue;
        ops.emplace_back(fusd::to_string(e->op));
        if (e->op == fusd::Op::write) {
            EXPECT_EQ(e->size, 3u);
            EXPECT_EQ(e->result, 3);
            EXPECT_EQ(e->pid, getpid());
        }
    }
    EXPECT_EQ(ops, (std::vector<std::string>{"open", "write", "read", "close"}));
}

TEST(Examples, HelloEchoUidFilterAndClassic)
{
    std::string base = "/dev/" + unique_name("ex");
    {
        Daemon hello({example("hello"), base + "-hello", "--backend", backend()});
        ASSERT_TRUE(hello.ready());
        std::ifstream in(base + "-hello");
        std::string line;
        std::getline(in, line);
        EXPECT_EQ(line, "Hello, world!");
    }
    {
        Daemon classic({example("classic/classic"), base.substr(5) + "-classic"});
        ASSERT_TRUE(classic.ready()) << "classic did not start";
        int fd = ::open((base + "-classic").c_str(), O_RDONLY);
        ASSERT_GE(fd, 0);
        char buf[64] = {};
        ASSERT_EQ(read(fd, buf, sizeof buf), 13);
        EXPECT_STREQ(buf, "classic fusd\n");
        EXPECT_EQ(read(fd, buf, sizeof buf), 0);
        int count = 0;
        EXPECT_EQ(ioctl(fd, _IOR('c', 1, int), &count), 0);
        EXPECT_EQ(count, 1);
        close(fd);
    }
    {
        Daemon who({example("uid-filter"), base + "-who"});
        ASSERT_TRUE(who.ready());
        pid_t child = fork();
        if (child == 0) {
            if (setgid(65534) || setuid(65534))
                _exit(10);
            int cfd = ::open((base + "-who").c_str(), O_RDONLY);
            _exit(cfd < 0 && errno == EACCES ? 0 : 1);
        }
        int status;
        waitpid(child, &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        std::ifstream in(base + "-who");
        std::string line;
        std::getline(in, line);
        EXPECT_EQ(line, "hello root");
    }
}

// ---- mmap: examples/shm-buffer, a frame buffer in the driver's memfd ----

namespace {

constexpr unsigned long kShmCapture = _IO('S', 1); // SHM_BUFFER_CAPTURE
constexpr std::size_t kShmFrame = 8192, kShmNote = 4096;

// A shm-buffer daemon (its frame in a memfd, or with `anonymous` in MAP_SHARED | MAP_ANONYMOUS
// memory answered by address); kernel() says whether the kernel backend serves it.
struct ShmBuffer {
    explicit ShmBuffer(bool anonymous = false) : daemon(argv(path, anonymous)) {}
    static std::vector<std::string> argv(const std::string &path, bool anonymous)
    {
        std::vector<std::string> v{example("shm-buffer"), path, "--backend", backend()};
        if (anonymous)
            v.push_back("--anonymous");
        return v;
    }
    std::string path = "/dev/" + unique_name("shm");
    Daemon daemon;
    bool kernel() const { return daemon.first_line().ends_with("(kernel)"); }
    ~ShmBuffer()
    {
        daemon.stop();
        if (exists(path))
            try {
                fusd::admin::remove_device(path, true);
            } catch (...) {
            }
    }
};

// In a child: read (and with `write`, also write) one byte at p. Returns the child's wait status.
int touch_in_child(volatile char *p, bool write)
{
    pid_t child = fork();
    if (child == 0) {
        std::signal(SIGBUS, SIG_DFL); // not a sanitizer's report: the death itself is the result
        char c = *p;
        if (write)
            *p = c;
        _exit(c ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return status;
}

bool died_of_sigbus(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS; }

char *map_frame(int fd, std::size_t length = kShmFrame, off_t offset = 0, int flags = MAP_SHARED)
{
    void *p = mmap(nullptr, length, PROT_READ | PROT_WRITE, flags, fd, offset);
    return p == MAP_FAILED ? nullptr : static_cast<char *>(p);
}

} // namespace

class Mmap : public ::testing::TestWithParam<bool> {}; // the frame in a memfd, or anonymous

TEST_P(Mmap, SharedFrameBufferSeenByBothSidesOnTheKernelBackendEnodevElsewhere)
{
    ShmBuffer shm(GetParam());
    ASSERT_TRUE(shm.daemon.ready());
    int fd = ::open(shm.path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    char *frame = map_frame(fd);
    if (!shm.kernel()) {
        // CUSE: a character device without mmap. FUSE: a regular file opened direct_io, whose
        // kernel refuses shared mappings; a private one is allowed but the file is empty (SIGBUS).
        EXPECT_EQ(frame, nullptr);
        EXPECT_EQ(errno, ENODEV);
        if (char *priv = map_frame(fd, kShmFrame, 0, MAP_PRIVATE)) {
            EXPECT_TRUE(died_of_sigbus(touch_in_child(priv, false))) << "a private mapping on " << backend();
            munmap(priv, kShmFrame);
        } else {
            EXPECT_EQ(errno, ENODEV);
        }
        close(fd);
        return;
    }
    ASSERT_NE(frame, nullptr) << strerror(errno);
    EXPECT_EQ(std::string(frame, 8), "frame 1\n");
    EXPECT_EQ(ioctl(fd, kShmCapture), 2);
    EXPECT_EQ(std::string(frame, 8), "frame 2\n") << "the driver's writes show in the mapping";
    std::strcpy(frame + kShmNote, "hello driver");
    char line[64] = {};
    EXPECT_EQ(read(fd, line, sizeof line), 13);
    EXPECT_STREQ(line, "hello driver\n") << "the driver sees the caller's writes";

    char *priv = map_frame(fd, kShmFrame, 0, MAP_PRIVATE);
    ASSERT_NE(priv, nullptr) << strerror(errno);
    std::strcpy(priv + kShmNote, "private");
    EXPECT_EQ(read(fd, line, sizeof line), 13);
    EXPECT_STREQ(line, "hello driver\n") << "MAP_PRIVATE writes stay the caller's";
    munmap(priv, kShmFrame);

    // Refused by the module (past the memfd's end): the caller gets its error through libfusd.
    EXPECT_EQ(map_frame(fd, 3 * kShmFrame), nullptr);
    EXPECT_EQ(errno, ENXIO);
    EXPECT_EQ(map_frame(fd, kShmNote, off_t(kShmFrame)), nullptr);
    EXPECT_EQ(errno, ENXIO);
    int ro = ::open(shm.path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(map_frame(ro), nullptr);
    EXPECT_EQ(errno, EACCES) << "PROT_WRITE, MAP_SHARED on an O_RDONLY open";
    close(ro);

    // A caller that exits with the buffer mapped leaves the driver serving.
    pid_t child = fork();
    if (child == 0) {
        char *m = map_frame(fd);
        _exit(m && m[0] == 'f' ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(ioctl(fd, kShmCapture), 3);
    EXPECT_EQ(std::string(frame, 8), "frame 3\n");

    // Forced removal (fusdctl rm --force) while mapped: the next access gets SIGBUS.
    fusd::admin::remove_device(shm.path, true);
    EXPECT_TRUE(died_of_sigbus(touch_in_child(frame, false)));
    EXPECT_TRUE(died_of_sigbus(touch_in_child(frame + kShmNote, true)));
    munmap(frame, kShmFrame);
    close(fd);
}

TEST_P(Mmap, DaemonKilledWhileMappedGivesSigbus)
{
    ShmBuffer shm(GetParam());
    ASSERT_TRUE(shm.daemon.ready());
    if (!shm.kernel())
        GTEST_SKIP() << "mmap is served on the kernel backend only (see the test above for " << backend() << ")";
    int fd = ::open(shm.path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    char *frame = map_frame(fd);
    ASSERT_NE(frame, nullptr) << strerror(errno);
    EXPECT_TRUE(WIFEXITED(touch_in_child(frame, true)));
    shm.daemon.stop(SIGKILL);
    EXPECT_TRUE(died_of_sigbus(touch_in_child(frame, false)));
    EXPECT_EQ(mmap(nullptr, kShmFrame, PROT_READ, MAP_SHARED, fd, 0), MAP_FAILED);
    munmap(frame, kShmFrame);
    close(fd);
}

INSTANTIATE_TEST_SUITE_P(Memory, Mmap, ::testing::Values(false, true),
                         [](const auto &info) { return info.param ? "AnonymousByAddress" : "Memfd"; });
