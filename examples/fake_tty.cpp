// fake_tty: a serial port with a loopback plug. What is written comes back to be read (one buffer
// for the whole device, as on a real port), and the modem lines are wired back too: DTR drives
// DSR and CD, RTS drives CTS. It answers the terminal ioctls, so isatty() is true and stty,
// tcgetattr/tcsetattr, pyserial, picocom... work on it. There is no line discipline: bytes pass
// as in raw mode, whatever the settings say; the settings are kept and read back.
//   sudo ./fake_tty [/dev/ttyFAKE0]      then: stty -F /dev/ttyFAKE0 115200; stty -F /dev/ttyFAKE0 speed
//
// The kernel's terminal structures (struct termios2 and friends, <asm/termbits.h>) are what the
// ioctls carry; the C library's <termios.h> has other structures of the same names, so it is
// not included here.
#include <cstring>
#include <deque>
#include <fusd/fusd.hpp>
#include <iostream>
#include <string>

#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <asm/termios.h>
#include <linux/serial.h>
#include <linux/serial_core.h>

namespace {

struct Port {
    termios2 settings{};               // TCGETS returns its first sizeof(termios) bytes
    winsize window{};
    unsigned modem = 0;                // TIOCM_DTR | TIOCM_RTS as the caller set them
    bool exclusive = false;            // TIOCEXCL: further opens fail EBUSY (but root's)
    std::string buffer;                // written, not yet read
    std::deque<fusd::Request> readers; // reads waiting for data
};

// A fresh port: 9600 baud, 8N1, the usual terminal defaults.
void reset(termios2 &t)
{
    t = {};
    t.c_iflag = ICRNL | IXON;
    t.c_oflag = OPOST | ONLCR;
    t.c_cflag = B9600 | CS8 | CREAD | HUPCL | CLOCAL;
    t.c_lflag = ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN;
    const unsigned char cc[] = {3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0};
    std::memcpy(t.c_cc, cc, sizeof cc);
    t.c_ispeed = t.c_ospeed = 9600;
}

// The speed a CBAUD code stands for (TCGETS2 reports it in c_ispeed/c_ospeed).
unsigned speed_of(unsigned cflag, unsigned other)
{
    static const unsigned kSpeeds[] = {0, 50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400};
    static const unsigned kHigh[] = {57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000,
                                     1500000, 2000000, 2500000, 3000000, 3500000, 4000000};
    unsigned code = cflag & CBAUD;
    if (code == BOTHER)
        return other;
    if (code & CBAUDEX)
        return (code & ~CBAUDEX) >= 1 && (code & ~CBAUDEX) <= 15 ? kHigh[(code & ~CBAUDEX) - 1] : 0;
    return kSpeeds[code];
}

Port &port_of(fusd::Request &req) { return *std::static_pointer_cast<Port>(req.device().state()); }

template <class T> std::span<const std::byte> bytes_of(const T &value)
{
    return {reinterpret_cast<const std::byte *>(&value), sizeof value};
}

// The ioctl's input as a T (its size is the command's, checked by the library).
template <class T> T input(const fusd::Request &req)
{
    T value{};
    std::memcpy(&value, req.data().data(), std::min(sizeof value, req.data().size()));
    return value;
}

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

// The modem lines a caller reads: its own DTR and RTS, and what the loopback plug wires to them.
unsigned lines(const Port &p)
{
    unsigned in = p.modem;
    if (p.modem & TIOCM_DTR)
        in |= TIOCM_DSR | TIOCM_CAR;
    if (p.modem & TIOCM_RTS)
        in |= TIOCM_CTS;
    return in;
}

void ioctl(fusd::Request req)
{
    Port &p = port_of(req);
    const std::uint32_t cmd = req.ioctl_command();
    // A command whose argument bytes the backend could not bring (FUSE: see libfusd(3)).
    auto has = [&](std::size_t in, std::size_t out) { return req.data().size() >= in && req.size() >= out; };
    switch (cmd) {
    case TCGETS:
        if (!has(0, sizeof(termios)))
            return req.reply_error(ENOTTY);
        return req.reply_ioctl(0, bytes_of(p.settings).first(sizeof(termios)));
    case TCGETS2: {
        termios2 t = p.settings;
        t.c_ospeed = speed_of(t.c_cflag, t.c_ospeed);
        t.c_ispeed = speed_of(t.c_cflag >> IBSHIFT ? t.c_cflag >> IBSHIFT : t.c_cflag, t.c_ispeed);
        return req.reply_ioctl(0, bytes_of(t));
    }
    case TCSETS:
    case TCSETSW:
    case TCSETSF:
    case TCSETS2:
    case TCSETSW2:
    case TCSETSF2: {
        bool two = cmd == TCSETS2 || cmd == TCSETSW2 || cmd == TCSETSF2;
        if (!has(two ? sizeof(termios2) : sizeof(termios), 0))
            return req.reply_error(ENOTTY);
        std::memcpy(&p.settings, req.data().data(), two ? sizeof(termios2) : sizeof(termios));
        if (cmd == TCSETSF || cmd == TCSETSF2)
            p.buffer.clear(); // flush the input
        req.reply_ok();
        return;
    }
    case TIOCGWINSZ:
        return has(0, sizeof(winsize)) ? req.reply_ioctl(0, bytes_of(p.window)) : req.reply_error(ENOTTY);
    case TIOCSWINSZ:
        if (!has(sizeof(winsize), 0))
            return req.reply_error(ENOTTY);
        p.window = input<winsize>(req);
        return req.reply_ok();
    case TIOCMGET: {
        int value = int(lines(p));
        return has(0, sizeof value) ? req.reply_ioctl(0, bytes_of(value)) : req.reply_error(ENOTTY);
    }
    case TIOCMSET:
    case TIOCMBIS:
    case TIOCMBIC: {
        if (!has(sizeof(int), 0))
            return req.reply_error(ENOTTY);
        unsigned bits = unsigned(input<int>(req)) & (TIOCM_DTR | TIOCM_RTS);
        p.modem = cmd == TIOCMSET ? bits : cmd == TIOCMBIS ? p.modem | bits : p.modem & ~bits;
        return req.reply_ok();
    }
    case TIOCINQ: // FIONREAD
    case TIOCOUTQ: {
        int value = cmd == TIOCINQ ? int(p.buffer.size()) : 0; // output leaves at once
        return has(0, sizeof value) ? req.reply_ioctl(0, bytes_of(value)) : req.reply_error(ENOTTY);
    }
    case TCFLSH:
        if (req.ioctl_argument() == TCIFLUSH || req.ioctl_argument() == TCIOFLUSH)
            p.buffer.clear();
        else if (req.ioctl_argument() != TCOFLUSH)
            return req.reply_error(EINVAL);
        serve_readers(req.device(), p);
        return req.reply_ok();
    case TCSBRK:
    case TCSBRKP:
    case TCXONC:
    case TIOCSBRK:
    case TIOCCBRK:
        return req.reply_ok(); // breaks and flow control: nothing to do on a loopback
    case TIOCEXCL:
    case TIOCNXCL:
        p.exclusive = cmd == TIOCEXCL;
        return req.reply_ok();
    case TIOCGSERIAL: {
        serial_struct s{};
        s.type = PORT_16550A;
        s.line = 0;
        s.baud_base = 115200;
        s.xmit_fifo_size = 16;
        return has(0, sizeof s) ? req.reply_ioctl(0, bytes_of(s)) : req.reply_error(ENOTTY);
    }
    case TIOCSSERIAL:
        return has(sizeof(serial_struct), 0) ? req.reply_ok() : req.reply_error(ENOTTY);
    default:
        return req.reply_error(ENOTTY);
    }
}

} // namespace

int main(int argc, char **argv)
{
    fusd::Callbacks cb;
    cb.open = [](fusd::Request req) {
        if (port_of(req).exclusive && req.caller().uid != 0)
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
    cb.ioctl = ioctl;
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
        reset(port->settings);
        dev.state() = port;
        std::cout << "serving " << dev.path() << " on " << fusd::to_string(dev.backend()) << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << "fake_tty: " << e.what() << "\n";
        return 1;
    }
}
