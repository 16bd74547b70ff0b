// pager: every reader blocks until someone pages; a page ("hello\n" written to the device) is
// delivered to every waiting reader by a separate worker thread -- replies from another thread,
// answered later. poll() reports readable while a page waits unread for that open.
//   sudo ./pager [/dev/pager]    then: cat /dev/pager &  echo hello > /dev/pager
#include <condition_variable>
#include <fusd/fusd.hpp>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

struct Pager {
    std::mutex mutex;
    std::condition_variable wake;
    std::vector<fusd::Request> waiting; // blocked reads
    std::vector<std::string> pages;     // pages to deliver
    bool stop = false;
};

int main(int argc, char **argv)
{
    fusd::Loop loop; // first: it blocks SIGINT/SIGTERM for the worker thread too
    Pager pager;
    std::thread worker([&] {
        std::unique_lock lock(pager.mutex);
        for (;;) {
            pager.wake.wait(lock, [&] { return pager.stop || !pager.pages.empty(); });
            if (pager.stop)
                return;
            std::string page = std::move(pager.pages.front());
            pager.pages.erase(pager.pages.begin());
            for (auto &r : pager.waiting)
                if (r)
                    r.reply_data(std::string_view(page).substr(0, r.size())); // from this thread
            pager.waiting.clear();
        }
    });
    fusd::Callbacks cb;
    cb.read = [&](fusd::Request req) {
        if (req.nonblocking())
            return req.reply_again();
        std::lock_guard lock(pager.mutex);
        pager.waiting.push_back(std::move(req));
    };
    cb.write = [&](fusd::Request req) {
        std::lock_guard lock(pager.mutex);
        pager.pages.emplace_back(req.text());
        req.reply_written(req.data().size());
        pager.wake.notify_one();
    };
    cb.interrupt = [&](fusd::File &, std::uint64_t id) {
        std::lock_guard lock(pager.mutex);
        std::erase_if(pager.waiting, [id](const fusd::Request &r) { return !r || r.id() == id; });
    };
    int rc = 0;
    try {
        fusd::DeviceOptions options;
        options.name = argc > 1 ? argv[1] : "pager";
        options.mode = 0666;
        fusd::Device &dev = loop.add(options, cb);
        std::cout << "serving " << dev.path() << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << "pager: " << e.what() << "\n";
        rc = 1;
    }
    {
        std::lock_guard lock(pager.mutex);
        pager.stop = true;
        pager.waiting.clear();
    }
    pager.wake.notify_one();
    worker.join();
    return rc;
}
