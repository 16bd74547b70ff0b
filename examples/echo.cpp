// echo: what one open writes, the same open reads back. A read with nothing to read waits (or
// fails EAGAIN with O_NONBLOCK) until that open writes; poll() says readable when data is there.
//   sudo ./echo [/dev/echo]      then: exec 3<>/dev/echo; echo hi >&3; head -1 <&3
#include <deque>
#include <fusd/fusd.hpp>
#include <iostream>

struct EchoFile {
    std::string data;              // written, not yet read
    std::deque<fusd::Request> readers; // reads waiting for data
};

static EchoFile &echo_of(fusd::Request &req) { return *std::static_pointer_cast<EchoFile>(req.file().state()); }

static void serve_readers(fusd::File &file, EchoFile &e)
{
    while (!e.readers.empty() && !e.data.empty()) {
        fusd::Request &r = e.readers.front();
        std::size_t n = std::min(r.size(), e.data.size());
        r.reply_data(std::string_view(e.data).substr(0, n));
        e.data.erase(0, n);
        e.readers.pop_front();
    }
    file.notify(fusd::ready::writable | (e.data.empty() ? 0 : fusd::ready::readable));
}

int main(int argc, char **argv)
{
    fusd::Callbacks cb;
    cb.open = [](fusd::Request req) {
        req.file().state() = std::make_shared<EchoFile>();
        req.file().notify(fusd::ready::writable);
        req.reply_ok();
    };
    cb.write = [](fusd::Request req) {
        EchoFile &e = echo_of(req);
        e.data.append(req.text());
        fusd::File &file = req.file();
        req.reply_written(req.data().size());
        serve_readers(file, e);
    };
    cb.read = [](fusd::Request req) {
        EchoFile &e = echo_of(req);
        if (e.data.empty() && req.nonblocking())
            return req.reply_again();
        fusd::File &file = req.file();
        e.readers.push_back(std::move(req)); // answered later, when this open writes
        serve_readers(file, e);
    };
    cb.interrupt = [](fusd::File &file, std::uint64_t id) {
        auto &e = *std::static_pointer_cast<EchoFile>(file.state());
        std::erase_if(e.readers, [id](const fusd::Request &r) { return !r || r.id() == id; });
    };
    try {
        fusd::Loop loop;
        fusd::DeviceOptions options;
        options.name = argc > 1 ? argv[1] : "echo";
        options.mode = 0666;
        fusd::Device &dev = loop.add(options, cb);
        std::cout << "serving " << dev.path() << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << "echo: " << e.what() << "\n";
        return 1;
    }
}
