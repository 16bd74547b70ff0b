// The shapes libfusd gives ioctl commands on CUSE (ioctl_shape(), from <linux/fusd_ioctl.h>,
// the table the fusd module expands too), checked against what the C library and the kernel's
// headers say of the same commands; and Request::reply_retry's checks and its answer on FUSE.
#include <cerrno>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/i2c-dev.h>
#include <linux/input.h>
#include <sys/ioctl.h>
#include <thread>
#include <unistd.h>

#include <fusd/fusd.hpp>

using fusd::ioctl_shape;

TEST(IoctlShape, LegacyNumbersHaveTheKernelsSizes)
{
#if defined(__x86_64__)
    EXPECT_EQ(ioctl_shape(TCGETS).size, 36u); // the kernel's struct termios: 4 flags, c_line, 19 c_cc
#endif
    EXPECT_EQ(ioctl_shape(TCGETS).dir, unsigned(_IOC_READ));
    EXPECT_EQ(ioctl_shape(TCSETSW).dir, unsigned(_IOC_WRITE));
    EXPECT_EQ(ioctl_shape(TCSETSW).size, ioctl_shape(TCGETS).size);
    EXPECT_EQ(ioctl_shape(TIOCGWINSZ).size, sizeof(winsize));
    EXPECT_EQ(ioctl_shape(TIOCGWINSZ).dir, unsigned(_IOC_READ));
    EXPECT_EQ(ioctl_shape(TIOCSWINSZ).dir, unsigned(_IOC_WRITE));
    EXPECT_EQ(ioctl_shape(TIOCMGET).size, sizeof(int));
    EXPECT_EQ(ioctl_shape(FIONREAD).size, sizeof(int));
    EXPECT_EQ(ioctl_shape(I2C_FUNCS).size, sizeof(unsigned long));
    EXPECT_EQ(ioctl_shape(I2C_RDWR).size, sizeof(i2c_rdwr_ioctl_data));
    EXPECT_EQ(ioctl_shape(I2C_SMBUS).size, sizeof(i2c_smbus_ioctl_data));
    for (unsigned cmd : {unsigned(TCFLSH), unsigned(TCSBRK), unsigned(TIOCEXCL), unsigned(I2C_SLAVE)}) {
        EXPECT_EQ(ioctl_shape(cmd).dir, 0u) << std::hex << cmd;
        EXPECT_EQ(ioctl_shape(cmd).size, 0u) << std::hex << cmd;
        EXPECT_TRUE(ioctl_shape(cmd).legacy) << std::hex << cmd;
    }
}

TEST(IoctlShape, IocNumbersSayTheirOwnAndOthersAreValues)
{
    auto name = ioctl_shape(EVIOCGNAME(200));
    EXPECT_EQ(name.dir, unsigned(_IOC_READ));
    EXPECT_EQ(name.size, 200u);
    EXPECT_FALSE(name.legacy);
    auto plain = ioctl_shape(_IO('Z', 3));
    EXPECT_EQ(plain.dir, 0u);
    EXPECT_EQ(plain.size, 0u);
    EXPECT_EQ(ioctl_shape(0x5499).size, 0u); // a legacy-looking number of no one's: a value
}

namespace {

struct Served {
    fusd::Loop loop{false};
    std::string path;
    std::thread thread;
    Served(const std::string &tag, fusd::Callbacks cb)
    {
        fusd::DeviceOptions o;
        o.name = "fusd-unit-" + std::to_string(getpid()) + "-" + tag;
        o.mode = 0666;
        path = loop.add(o, std::move(cb)).path();
        thread = std::thread([this] { loop.run(); });
    }
    ~Served()
    {
        loop.post([this] {
            for (auto *d : loop.devices())
                loop.remove(*d);
        });
        thread.join();
    }
};

} // namespace

TEST(RequestRetry, BadRangesThrowAndTheRequestStaysUnanswered)
{
    std::atomic<int> threw{0};
    fusd::Callbacks cb;
    cb.ioctl = [&](fusd::Request req) {
        const std::uint64_t a = 0x10000;
        auto expect_throw = [&](auto fn) {
            try {
                fn();
            } catch (const std::invalid_argument &) {
                threw++;
            } catch (const std::length_error &) {
                threw++;
            }
        };
        expect_throw([&] { req.reply_retry({}, {}); });
        expect_throw([&] { req.reply_retry(std::vector<fusd::MemoryRange>{{a, 0}}); });
        expect_throw([&] { req.reply_retry(std::vector<fusd::MemoryRange>{{~0ULL - 3, 8}}); });
        expect_throw([&] { req.reply_retry(std::vector<fusd::MemoryRange>{{a, fusd::kRetryBytesMax + 1}}); });
        expect_throw([&] {
            req.reply_retry({}, std::vector<fusd::MemoryRange>{{a, fusd::kRetryBytesMax}, {a, 1}});
        });
        expect_throw([&] { req.reply_retry(std::vector<fusd::MemoryRange>(fusd::kRetryRangesMax + 1, {a, 1})); });
        EXPECT_TRUE(req); // still unanswered
        req.reply_ioctl(7);
    };
    Served dev("retry-checks", cb);
    int fd = open(dev.path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(ioctl(fd, _IO('Z', 1), 0), 7);
    EXPECT_EQ(threw.load(), 6);
    close(fd);
}

TEST(RequestRetry, OnlyIoctlsRetry)
{
    std::atomic<int> threw{0};
    fusd::Callbacks cb;
    cb.read = [&](fusd::Request req) {
        try {
            req.reply_retry(std::vector<fusd::MemoryRange>{{0x10000, 1}});
        } catch (const std::logic_error &) {
            threw++;
        }
        req.reply_data(std::string_view(""));
    };
    Served dev("retry-read", cb);
    int fd = open(dev.path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    EXPECT_EQ(read(fd, &c, 1), 0);
    EXPECT_EQ(threw.load(), 1);
    close(fd);
}

// Only the kernel backend and CUSE can bring a caller's memory; FUSE answers the caller
// EOPNOTSUPP. (The unit tests run on the host, where FUSE is the backend.)
TEST(RequestRetry, OnFuseTheCallerGetsEopnotsupp)
{
    fusd::Callbacks cb;
    cb.ioctl = [](fusd::Request req) {
        std::uint64_t arg = req.ioctl_argument();
        req.reply_retry(std::vector<fusd::MemoryRange>{{arg, 8}});
    };
    Served dev("retry-fuse", cb);
    for (const auto &s : fusd::probe_backends())
        if (s.backend != fusd::Backend::fuse && s.usable)
            GTEST_SKIP() << "a backend other than FUSE is usable here; this checks FUSE's answer";
    int fd = open(dev.path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char buf[8] = {};
    EXPECT_EQ(ioctl(fd, _IO('Z', 2), buf), -1);
    EXPECT_EQ(errno, EOPNOTSUPP);
    close(fd);
}
