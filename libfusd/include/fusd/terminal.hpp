// SPDX-License-Identifier: MIT
//
// fusd::Terminal: what a driver needs to be a terminal (a serial port) to its callers. It keeps
// a device's line settings (struct termios2), window size, modem lines and exclusive flag, and
// answers the terminal ioctls (TCGETS/TCSETS*, TCGETS2/TCSETS*2, TIOCGWINSZ/TIOCSWINSZ,
// TIOCMGET/TIOCMSET/TIOCMBIS/TIOCMBIC, FIONREAD, TIOCOUTQ, TCFLSH, TCSBRK, TCSBRKP, TCXONC,
// TIOCSBRK/TIOCCBRK, TIOCEXCL/TIOCNXCL, TIOCGSERIAL/TIOCSSERIAL) so that isatty(), stty,
// tcgetattr/tcsetattr, pyserial and terminal programs work on the device. There is no line
// discipline: the settings are kept and read back, the bytes pass as in raw mode.
//
// The data itself stays the driver's: the Terminal asks it, through the hooks below, how much a
// caller can read (FIONREAD) and to drop what waits to be read (TCFLSH, TCSETSF).
//
// The kernel's terminal structures are not in this header (they clash with <termios.h>): the
// settings are seen through speed(), describe() and friends.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "fusd/fusd.hpp"

namespace fusd {

class Terminal {
public:
    // A fresh port: 9600 baud, 8N1, the usual terminal defaults, DTR and RTS off.
    Terminal();
    ~Terminal();
    Terminal(const Terminal &) = delete;
    Terminal &operator=(const Terminal &) = delete;

    // Answers req if its command is a terminal ioctl (true), else leaves it untouched (false).
    // A command whose argument the backend could not bring (FUSE: see libfusd(3)) gets ENOTTY.
    bool answer_ioctl(Request &req);

    // An open while exclusive (TIOCEXCL) by a caller other than root: the driver answers EBUSY.
    bool refuses(const Request &open) const;

    // The hooks the driver sets. readable: the bytes the caller could read now (FIONREAD; none
    // when unset). flush_input: drop what waits to be read by the caller (TCFLSH TCIFLUSH or
    // TCIOFLUSH, TCSETSF). changed: the settings or the modem lines changed (called before the
    // call is answered).
    std::function<std::size_t(Request &)> readable;
    std::function<void(Request &)> flush_input;
    std::function<void()> changed;

    unsigned speed() const;       // output speed in baud (BOTHER: the number set)
    unsigned data_bits() const;   // 5..8
    char parity() const;          // 'n', 'e', 'o' (and 'm', 's' with CMSPAR)
    unsigned stop_bits() const;   // 1 or 2
    // The modem lines as TIOCMGET reports them (TIOCM_* bits): the ones the callers drive (DTR,
    // RTS) and the ones the other end drives (CTS, DSR, CD, RI: set_inputs()).
    unsigned modem_lines() const;
    void set_inputs(unsigned tiocm_bits); // CTS, DSR, CD, RI; other bits ignored; calls no hook
    bool exclusive() const;
    // "speed=115200 bits=8 parity=n stop=1 dtr=1 rts=0 cts=0 dsr=0 cd=0 ri=0"
    std::string describe() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

// A terminal ioctl's name ("TCSETS", "TIOCMBIS"...), or empty for another command.
std::string_view terminal_ioctl_name(std::uint32_t command);

} // namespace fusd
