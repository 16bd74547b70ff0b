// fusd-testd DEVICE [--backend NAME] [--mode OCTAL]: the daemon the integration tests drive.
// Per open: an echo buffer (what an open writes, it reads back); reads wait for data and are
// answered by a separate replier thread (deferred replies from another thread); O_NONBLOCK reads
// get EAGAIN; readiness follows the buffer. ioctls in testd.h. Prints "ready PATH BACKEND" once the
// node can be opened; SIGTERM/SIGINT end it cleanly.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fusd/fusd.hpp>
#include <iostream>
#include <mutex>
#include <thread>

#include "testd.h"

namespace {

struct EchoFile {
    std::mutex mutex;
    std::string data;
    std::deque<fusd::Request> readers;
    std::uint64_t value = 0;
};

std::atomic<std::uint64_t> g_interrupts{0};

// Replies to waiting reads on a thread of its own.
class Replier {
public:
    Replier() : thread_([this] { run(); }) {}
    ~Replier()
    {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }
    void kick(std::shared_ptr<EchoFile> file, std::shared_ptr<fusd::File> handle)
    {
        {
            std::lock_guard lock(mutex_);
            work_.emplace_back(std::move(file), handle);
        }
        wake_.notify_one();
    }

private:
    void run()
    {
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return stop_ || !work_.empty(); });
            if (stop_)
                return;
            auto [file, handle] = std::move(work_.front());
            work_.pop_front();
            lock.unlock();
            serve(*file, *handle);
            lock.lock();
        }
    }
    static void serve(EchoFile &e, fusd::File &handle)
    {
        std::lock_guard lock(e.mutex);
        while (!e.readers.empty() && !e.data.empty()) {
            fusd::Request &r = e.readers.front();
            if (r) {
                std::size_t n = std::min(r.size(), e.data.size());
                r.reply_data(std::string_view(e.data).substr(0, n));
                e.data.erase(0, n);
            }
            e.readers.pop_front();
        }
        handle.notify(fusd::ready::writable | (e.data.empty() ? 0 : fusd::ready::readable));
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::pair<std::shared_ptr<EchoFile>, std::shared_ptr<fusd::File>>> work_;
    bool stop_ = false;
    std::thread thread_;
};

std::shared_ptr<EchoFile> echo_of(fusd::File &f) { return std::static_pointer_cast<EchoFile>(f.state()); }

void ioctl_answer(fusd::Request req)
{
    auto e = echo_of(req.file());
    auto out = [&](const void *p, std::size_t n) {
        req.reply_ioctl(0, std::span<const std::byte>(static_cast<const std::byte *>(p), n));
    };
    switch (req.ioctl_command()) {
    case TESTD_GET_CALLER: {
        testd_caller c{std::uint32_t(req.caller().pid), req.caller().uid, req.caller().gid, req.flags()};
        return out(&c, sizeof c);
    }
    case TESTD_SET:
        if (req.data().size() != sizeof(std::uint64_t))
            return req.reply_error(EINVAL);
        std::memcpy(&e->value, req.data().data(), sizeof e->value);
        return req.reply_ok();
    case TESTD_GET:
        return out(&e->value, sizeof e->value);
    case TESTD_REVERSE: {
        std::string s(reinterpret_cast<const char *>(req.data().data()), req.data().size());
        std::reverse(s.begin(), s.end());
        return out(s.data(), s.size());
    }
    case TESTD_ADD1:
        return req.reply_ioctl(int(req.ioctl_argument() + 1));
    case TESTD_INTERRUPTS: {
        std::uint64_t n = g_interrupts.load();
        return out(&n, sizeof n);
    }
    case TESTD_BIG: {
        std::string big(16000, '\0');
        for (std::size_t i = 0; i < big.size(); ++i)
            big[i] = char('a' + i % 26);
        return out(big.data(), big.size());
    }
    case TESTD_FAIL_WITH: {
        std::int32_t errnum = 0;
        if (req.data().size() != sizeof errnum)
            return req.reply_error(EINVAL);
        std::memcpy(&errnum, req.data().data(), sizeof errnum);
        return req.reply_error(errnum);
    }
    default:
        return req.reply_error(ENOTTY);
    }
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::cerr << "usage: fusd-testd DEVICE [--backend NAME] [--mode OCTAL]\n";
        return 2;
    }
    fusd::DeviceOptions options;
    options.name = argv[1];
    options.mode = 0666;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string opt = argv[i];
        if (opt == "--backend")
            options.backend = fusd::parse_backend(argv[i + 1]).value_or(fusd::Backend::automatic);
        else if (opt == "--mode")
            options.mode = mode_t(std::stoul(argv[i + 1], nullptr, 8));
    }
    fusd::Loop loop; // first: it blocks SIGINT/SIGTERM for the threads started after it
    Replier replier;
    fusd::Callbacks cb;
    cb.open = [](fusd::Request req) {
        req.file().state() = std::make_shared<EchoFile>();
        req.file().notify(fusd::ready::writable);
        req.reply_ok();
    };
    cb.write = [&](fusd::Request req) {
        auto e = echo_of(req.file());
        auto file = req.file().keep();
        {
            std::lock_guard lock(e->mutex);
            e->data.append(req.text());
        }
        req.reply_written(req.data().size());
        replier.kick(e, file);
    };
    cb.read = [&](fusd::Request req) {
        auto e = echo_of(req.file());
        std::lock_guard lock(e->mutex);
        if (e->data.empty() && req.nonblocking())
            return req.reply_again();
        auto file = req.file().keep();
        e->readers.push_back(std::move(req));
        replier.kick(e, file);
    };
    cb.ioctl = ioctl_answer;
    cb.release = [](fusd::Request req) {
        auto e = echo_of(req.file());
        {
            std::lock_guard lock(e->mutex);
            e->readers.clear();
        }
        req.reply_ok();
    };
    cb.interrupt = [](fusd::File &file, std::uint64_t id) {
        g_interrupts++;
        auto e = echo_of(file);
        std::lock_guard lock(e->mutex);
        std::erase_if(e->readers, [id](const fusd::Request &r) { return !r || r.id() == id; });
    };
    try {
        fusd::Device &dev = loop.add(options, cb);
        std::cout << "ready " << dev.path() << " " << fusd::to_string(dev.backend()) << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << "fusd-testd: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
