// fake_tty: a serial port with a loopback plug. What is written comes back to be read (one buffer
// for the whole device, as on a real port), and the modem lines are wired back too: DTR drives
// DSR and CD, RTS drives CTS. It answers the terminal ioctls, so isatty() is true and stty,
// tcgetattr/tcsetattr, pyserial, picocom... work on it. There is no line discipline: bytes pass
// as in raw mode, whatever the settings say; the settings are kept and read back.
//   sudo ./fake_tty [/dev/ttyFAKE0]      then: stty -F /dev/ttyFAKE0 115200; stty -F /dev/ttyFAKE0 speed
//
// The terminal ioctls are fusd::Terminal's (<fusd/terminal.hpp>); this driver adds the data
// (one buffer) and the loopback plug.
#include <deque>
#include <fusd/fusd.hpp>
#include <fusd/terminal.hpp>
#include <iostream>
#include <string>

#include <sys/ioctl.h>

namespace {

struct Port {
    fusd::Terminal terminal;
    std::string buffer;                // written, not yet read
    std::deque<fusd::Request> readers; // reads waiting for data
};

Port &port_of(fusd::Request &req) { return *std::static_pointer_cast<Port>(req.device().state()); }

void serve_readers(fusd::Device &dev, Port &p)
{
    while (!p.readers.empty() && !p.buffer.empty()) {
        fusd::Request &r = p.readers.front();
        std::size_t n = std::min(r.size(), p.buffer.size());
        r.reply_data(std::string_view(p.buffer).substr(0, n));
        p.buffer.erase(0, n);
        p.readers.pop_front();
    }
    dev.notify_all(fusd::ready::writable | (p.buffer.empty() ? 0 : fusd::ready::readable));
}

// The loopback plug: DTR drives DSR and CD, RTS drives CTS.
void wire_loopback(fusd::Terminal &t)
{
    unsigned out = t.modem_lines();
    t.set_inputs((out & TIOCM_DTR ? TIOCM_DSR | TIOCM_CAR : 0) | (out & TIOCM_RTS ? TIOCM_CTS : 0));
}

} // namespace

int main(int argc, char **argv)
{
    fusd::Callbacks cb;
    cb.open = [](fusd::Request req) {
        if (port_of(req).terminal.refuses(req))
            return req.reply_error(EBUSY);
        req.file().notify(fusd::ready::writable | (port_of(req).buffer.empty() ? 0 : fusd::ready::readable));
        req.reply_ok();
    };
    cb.write = [](fusd::Request req) {
        Port &p = port_of(req);
        p.buffer.append(req.text());
        fusd::Device &dev = req.device();
        req.reply_written(req.data().size());
        serve_readers(dev, p);
    };
    cb.read = [](fusd::Request req) {
        Port &p = port_of(req);
        if (p.buffer.empty() && req.nonblocking())
            return req.reply_again();
        fusd::Device &dev = req.device();
        p.readers.push_back(std::move(req)); // answered when something is written
        serve_readers(dev, p);
    };
    cb.ioctl = [](fusd::Request req) {
        if (!port_of(req).terminal.answer_ioctl(req))
            req.reply_error(ENOTTY);
    };
    cb.interrupt = [](fusd::File &file, std::uint64_t id) {
        auto &p = *std::static_pointer_cast<Port>(file.device().state());
        std::erase_if(p.readers, [id](const fusd::Request &r) { return !r || r.id() == id; });
    };
    try {
        fusd::Loop loop;
        fusd::DeviceOptions options;
        options.name = argc > 1 ? argv[1] : "ttyFAKE0";
        options.mode = 0666;
        fusd::Device &dev = loop.add(options, cb);
        auto port = std::make_shared<Port>();
        Port *p = port.get();
        p->terminal.readable = [p](fusd::Request &) { return p->buffer.size(); };
        p->terminal.flush_input = [p, &dev](fusd::Request &) {
            p->buffer.clear();
            serve_readers(dev, *p);
        };
        p->terminal.changed = [p] { wire_loopback(p->terminal); };
        dev.state() = port;
        std::cout << "serving " << dev.path() << " on " << fusd::to_string(dev.backend()) << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << "fake_tty: " << e.what() << "\n";
        return 1;
    }
}
