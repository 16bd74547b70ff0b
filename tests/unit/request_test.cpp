// Request semantics through a real device served in-process (loop on its own thread).
#include <atomic>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#include <unistd.h>

#include <fusd/fusd.hpp>

namespace {

// Serves one device on a thread; the test body acts as the caller.
struct InProcess {
    fusd::Loop loop{false};
    std::string path;
    std::thread thread;
    InProcess(const std::string &tag, fusd::Callbacks cb)
    {
        fusd::DeviceOptions o;
        o.name = "fusd-unit-" + std::to_string(getpid()) + "-" + tag;
        o.mode = 0666;
        path = loop.add(o, std::move(cb)).path();
        thread = std::thread([this] { loop.run(); });
    }
    ~InProcess()
    {
        loop.post([this] {
            for (auto *d : loop.devices())
                loop.remove(*d);
        });
        thread.join();
    }
};

} // namespace

TEST(Request, DroppedUnansweredIsEio)
{
    fusd::Callbacks cb;
    cb.read = [](fusd::Request) { /* dropped */ };
    InProcess dev("drop", cb);
    int fd = open(dev.path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    char c;
    EXPECT_EQ(read(fd, &c, 1), -1);
    EXPECT_EQ(errno, EIO);
    close(fd);
}

TEST(Request, SecondAnswerIsALogicErrorAndTheFirstWins)
{
    std::atomic<int> threw{0};
    fusd::Callbacks cb;
    cb.read = [&](fusd::Request req) {
        req.reply_data(std::string_view("A"));
        try {
            req.reply_data(std::string_view("B"));
        } catch (const std::logic_error &) {
            threw++;
        }
    };
    InProcess dev("twice", cb);
    int fd = open(dev.path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    char c = 0;
    EXPECT_EQ(read(fd, &c, 1), 1);
    EXPECT_EQ(c, 'A');
    // the caller may run before the callback reaches its second answer: wait for it
    for (int i = 0; i < 500 && threw.load() == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(threw.load(), 1);
    close(fd);
}

TEST(Request, OversizedReplyIsRefusedAndTheCallerGetsEio)
{
    fusd::Callbacks cb;
    cb.read = [](fusd::Request req) { req.reply_data(std::string(req.size() + 1, 'x')); };
    InProcess dev("oversize", cb);
    int fd = open(dev.path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    char buf[4];
    EXPECT_EQ(read(fd, buf, sizeof buf), -1);
    EXPECT_EQ(errno, EIO);
    close(fd);
}

TEST(Request, AnyErrnoCanBeReturned)
{
    fusd::Callbacks cb;
    cb.open = [](fusd::Request req) { req.reply_error(EHWPOISON); }; // 133: beyond FUSD's 255? no; still unusual
    cb.write = [](fusd::Request req) { req.reply_error(ENOSPC); };
    InProcess dev("errno", cb);
    EXPECT_EQ(open(dev.path.c_str(), O_RDONLY), -1);
    EXPECT_EQ(errno, EHWPOISON);
}

TEST(Request, ThrowingCallbackCostsTheCallerEioNotTheDaemon)
{
    fusd::Callbacks cb;
    cb.read = [](fusd::Request) { throw std::runtime_error("driver bug"); };
    InProcess dev("throw", cb);
    for (int i = 0; i < 2; ++i) {
        int fd = open(dev.path.c_str(), O_RDONLY);
        ASSERT_GE(fd, 0);
        char c;
        EXPECT_EQ(read(fd, &c, 1), -1);
        EXPECT_EQ(errno, EIO);
        close(fd);
    }
}

TEST(Request, DeferredWriteKeepsItsData)
{
    // A write kept past its callback must still see its bytes after later requests have been
    // received (they reuse the transport's receive buffer unless the kept request took it).
    fusd::Request kept;
    fusd::Callbacks cb;
    cb.write = [&](fusd::Request req) { kept = std::move(req); };
    cb.read = [&](fusd::Request req) {
        if (!kept)
            return req.reply_error(ENODATA);
        std::string text(kept.text());
        kept.reply_written(kept.data().size());
        req.reply_data(std::string_view(text).substr(0, req.size()));
    };
    InProcess dev("keepbuf", cb);
    int wfd = open(dev.path.c_str(), O_WRONLY);
    int rfd = open(dev.path.c_str(), O_RDONLY);
    ASSERT_GE(wfd, 0);
    ASSERT_GE(rfd, 0);
    std::thread writer([&] { EXPECT_EQ(write(wfd, "first", 5), 5); });
    char buf[16] = {};
    ssize_t n = -1;
    for (int i = 0; i < 100; ++i) { // until the write has arrived
        n = read(rfd, buf, sizeof buf);
        if (n >= 0 || errno != ENODATA)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    writer.join();
    EXPECT_EQ(n, 5);
    EXPECT_STREQ(buf, "first");
    close(wfd);
    close(rfd);
}

// A Request kept past its Loop's life: the Loop's destruction answered its caller (ENODEV);
// answering it afterwards, and destroying it, touch nothing of the Loop (run under ASan).
TEST(Request, AnsweringAfterTheLoopIsGoneIsHarmless)
{
    std::mutex mutex;
    std::vector<fusd::Request> kept;
    std::atomic<int> arrived{0};
    auto loop = std::make_unique<fusd::Loop>(false);
    fusd::Callbacks cb;
    cb.read = [&](fusd::Request req) {
        std::lock_guard lock(mutex);
        kept.push_back(std::move(req));
        arrived++;
    };
    fusd::DeviceOptions o;
    o.name = "fusd-unit-" + std::to_string(getpid()) + "-outlive";
    o.mode = 0666;
    std::string path = loop->add(o, std::move(cb)).path();
    std::thread server([&] { loop->run(); });
    int fd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::atomic<ssize_t> got{0};
    std::atomic<int> err{0};
    std::thread reader([&] {
        char c[2];
        got = read(fd, c, 1);
        err = errno;
    });
    std::thread second_reader([&] {
        char c[2];
        (void)!read(fd, c, 1);
    });
    for (int i = 0; i < 6000 && arrived.load() < 2; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(arrived.load(), 2);
    loop->stop();
    server.join();
    loop.reset(); // the device goes; its waiting callers are answered
    reader.join();
    second_reader.join();
    EXPECT_EQ(got.load(), -1);
    EXPECT_NE(err.load(), 0);
    close(fd);
    std::lock_guard lock(mutex);
    ASSERT_EQ(kept.size(), 2u);
    EXPECT_NO_THROW(kept[0].reply_data(std::string_view("x"))); // answered: a no-op
    EXPECT_FALSE(kept[0]);
    kept.clear(); // the other one destroyed unanswered: a no-op too
}
