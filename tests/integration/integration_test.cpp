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
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

TEST(Lifecycle, DaemonKilledWhileCallerBlockedReleasesTheCaller)
{
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

TEST(Lifecycle, DeadDaemonIsListedDeadAndCleaned)
{
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
