// SPDX-License-Identifier: MIT
//
// fusd::Terminal (see <fusd/terminal.hpp>): the terminal ioctls over one State.
//
// The kernel's terminal structures (struct termios2 and friends, <asm/termbits.h>) are what the
// ioctls carry; the C library's <termios.h> has other structures of the same names, so it is
// not included here.
#include "fusd/terminal.hpp"

#include <algorithm>
#include <cstring>
#include <span>
#include <string_view>

#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <asm/termios.h>
#include <linux/serial.h>
#include <linux/serial_core.h>

namespace fusd {

struct Terminal::State {
    termios2 settings{}; // TCGETS returns its first sizeof(termios) bytes
    winsize window{};
    unsigned outputs = 0; // TIOCM_DTR | TIOCM_RTS as the callers set them
    unsigned inputs = 0;  // TIOCM_CTS | TIOCM_DSR | TIOCM_CAR | TIOCM_RNG as the other end drives them
    bool exclusive = false;
};

namespace {

constexpr unsigned kOutputLines = TIOCM_DTR | TIOCM_RTS;
constexpr unsigned kInputLines = TIOCM_CTS | TIOCM_DSR | TIOCM_CAR | TIOCM_RNG;

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

// The speed a CBAUD code stands for; BOTHER: the number given.
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

template <class T> std::span<const std::byte> bytes_of(const T &value)
{
    return {reinterpret_cast<const std::byte *>(&value), sizeof value};
}

template <class T> T input(const Request &req)
{
    T value{};
    std::memcpy(&value, req.data().data(), std::min(sizeof value, req.data().size()));
    return value;
}

} // namespace

Terminal::Terminal() : state_(std::make_unique<State>()) { reset(state_->settings); }

Terminal::~Terminal() = default;

bool Terminal::refuses(const Request &open) const { return state_->exclusive && open.caller().uid != 0; }

bool Terminal::answer_ioctl(Request &req)
{
    State &s = *state_;
    const std::uint32_t cmd = req.ioctl_command();
    auto has = [&](std::size_t in, std::size_t out) { return req.data().size() >= in && req.size() >= out; };
    auto changed_now = [this] {
        if (changed)
            changed();
    };
    // fusdctl trace shows the line as this call leaves it.
    auto note = [&] {
        if (req.traced())
            req.trace_note(describe());
    };
    switch (cmd) {
    case TCGETS:
        note();
        has(0, sizeof(termios)) ? req.reply_ioctl(0, bytes_of(s.settings).first(sizeof(termios)))
                                : req.reply_error(ENOTTY);
        return true;
    case TCGETS2: {
        termios2 t = s.settings;
        t.c_ospeed = speed_of(t.c_cflag, t.c_ospeed);
        t.c_ispeed = speed_of(t.c_cflag >> IBSHIFT ? t.c_cflag >> IBSHIFT : t.c_cflag, t.c_ispeed);
        note();
        has(0, sizeof t) ? req.reply_ioctl(0, bytes_of(t)) : req.reply_error(ENOTTY);
        return true;
    }
    case TCSETS:
    case TCSETSW:
    case TCSETSF:
    case TCSETS2:
    case TCSETSW2:
    case TCSETSF2: {
        bool two = cmd == TCSETS2 || cmd == TCSETSW2 || cmd == TCSETSF2;
        if (!has(two ? sizeof(termios2) : sizeof(termios), 0)) {
            req.reply_error(ENOTTY);
            return true;
        }
        std::memcpy(&s.settings, req.data().data(), two ? sizeof(termios2) : sizeof(termios));
        if ((cmd == TCSETSF || cmd == TCSETSF2) && flush_input)
            flush_input(req);
        changed_now();
        note();
        req.reply_ok();
        return true;
    }
    case TIOCGWINSZ:
        has(0, sizeof(winsize)) ? req.reply_ioctl(0, bytes_of(s.window)) : req.reply_error(ENOTTY);
        return true;
    case TIOCSWINSZ:
        if (!has(sizeof(winsize), 0)) {
            req.reply_error(ENOTTY);
            return true;
        }
        s.window = input<winsize>(req);
        req.reply_ok();
        return true;
    case TIOCMGET: {
        int value = int(modem_lines());
        note();
        has(0, sizeof value) ? req.reply_ioctl(0, bytes_of(value)) : req.reply_error(ENOTTY);
        return true;
    }
    case TIOCMSET:
    case TIOCMBIS:
    case TIOCMBIC: {
        if (!has(sizeof(int), 0)) {
            req.reply_error(ENOTTY);
            return true;
        }
        unsigned bits = unsigned(input<int>(req)) & kOutputLines;
        s.outputs = cmd == TIOCMSET ? bits : cmd == TIOCMBIS ? s.outputs | bits : s.outputs & ~bits;
        changed_now();
        note();
        req.reply_ok();
        return true;
    }
    case TIOCINQ: // FIONREAD
    case TIOCOUTQ: {
        int value = cmd == TIOCINQ && readable ? int(std::min<std::size_t>(readable(req), 0x7fffffff)) : 0;
        has(0, sizeof value) ? req.reply_ioctl(0, bytes_of(value)) : req.reply_error(ENOTTY);
        return true;
    }
    case TCFLSH:
        if (req.ioctl_argument() == TCIFLUSH || req.ioctl_argument() == TCIOFLUSH) {
            if (flush_input)
                flush_input(req);
        } else if (req.ioctl_argument() != TCOFLUSH) {
            req.reply_error(EINVAL);
            return true;
        }
        req.reply_ok(); // output leaves at once: nothing to drop
        return true;
    case TCSBRK:
    case TCSBRKP:
    case TCXONC:
    case TIOCSBRK:
    case TIOCCBRK:
        req.reply_ok(); // drains and breaks: output leaves at once; no flow control
        return true;
    case TIOCEXCL:
    case TIOCNXCL:
        s.exclusive = cmd == TIOCEXCL;
        req.reply_ok();
        return true;
    case TIOCGSERIAL: {
        serial_struct ser{};
        ser.type = PORT_16550A;
        ser.baud_base = 115200;
        ser.xmit_fifo_size = 16;
        has(0, sizeof ser) ? req.reply_ioctl(0, bytes_of(ser)) : req.reply_error(ENOTTY);
        return true;
    }
    case TIOCSSERIAL:
        has(sizeof(serial_struct), 0) ? req.reply_ok() : req.reply_error(ENOTTY);
        return true;
    default:
        return false;
    }
}

unsigned Terminal::speed() const { return speed_of(state_->settings.c_cflag, state_->settings.c_ospeed); }

unsigned Terminal::data_bits() const
{
    switch (state_->settings.c_cflag & CSIZE) {
    case CS5:
        return 5;
    case CS6:
        return 6;
    case CS7:
        return 7;
    default:
        return 8;
    }
}

char Terminal::parity() const
{
    unsigned c = state_->settings.c_cflag;
    if (!(c & PARENB))
        return 'n';
    if (c & CMSPAR)
        return c & PARODD ? 'm' : 's';
    return c & PARODD ? 'o' : 'e';
}

unsigned Terminal::stop_bits() const { return state_->settings.c_cflag & CSTOPB ? 2 : 1; }

unsigned Terminal::modem_lines() const { return state_->outputs | state_->inputs; }

void Terminal::set_inputs(unsigned tiocm_bits) { state_->inputs = tiocm_bits & kInputLines; }

bool Terminal::exclusive() const { return state_->exclusive; }

std::string Terminal::describe() const
{
    unsigned m = modem_lines();
    auto bit = [m](unsigned b) { return m & b ? '1' : '0'; };
    std::string out = "speed=" + std::to_string(speed()) + " bits=" + std::to_string(data_bits()) + " parity=" +
                      parity() + " stop=" + std::to_string(stop_bits());
    out += std::string(" dtr=") + bit(TIOCM_DTR) + " rts=" + bit(TIOCM_RTS) + " cts=" + bit(TIOCM_CTS) +
           " dsr=" + bit(TIOCM_DSR) + " cd=" + bit(TIOCM_CAR) + " ri=" + bit(TIOCM_RNG);
    return out;
}

std::string_view terminal_ioctl_name(std::uint32_t command)
{
    switch (command) {
#define FUSD_TERMINAL_IOCTL(name)                                                                                      \
    case name:                                                                                                         \
        return #name;
        FUSD_TERMINAL_IOCTL(TCGETS)
        FUSD_TERMINAL_IOCTL(TCSETS)
        FUSD_TERMINAL_IOCTL(TCSETSW)
        FUSD_TERMINAL_IOCTL(TCSETSF)
        FUSD_TERMINAL_IOCTL(TCGETS2)
        FUSD_TERMINAL_IOCTL(TCSETS2)
        FUSD_TERMINAL_IOCTL(TCSETSW2)
        FUSD_TERMINAL_IOCTL(TCSETSF2)
        FUSD_TERMINAL_IOCTL(TIOCGWINSZ)
        FUSD_TERMINAL_IOCTL(TIOCSWINSZ)
        FUSD_TERMINAL_IOCTL(TIOCMGET)
        FUSD_TERMINAL_IOCTL(TIOCMSET)
        FUSD_TERMINAL_IOCTL(TIOCMBIS)
        FUSD_TERMINAL_IOCTL(TIOCMBIC)
        FUSD_TERMINAL_IOCTL(FIONREAD)
        FUSD_TERMINAL_IOCTL(TIOCOUTQ)
        FUSD_TERMINAL_IOCTL(TCFLSH)
        FUSD_TERMINAL_IOCTL(TCSBRK)
        FUSD_TERMINAL_IOCTL(TCSBRKP)
        FUSD_TERMINAL_IOCTL(TCXONC)
        FUSD_TERMINAL_IOCTL(TIOCSBRK)
        FUSD_TERMINAL_IOCTL(TIOCCBRK)
        FUSD_TERMINAL_IOCTL(TIOCEXCL)
        FUSD_TERMINAL_IOCTL(TIOCNXCL)
        FUSD_TERMINAL_IOCTL(TIOCGSERIAL)
        FUSD_TERMINAL_IOCTL(TIOCSSERIAL)
#undef FUSD_TERMINAL_IOCTL
    default:
        return {};
    }
}

} // namespace fusd
