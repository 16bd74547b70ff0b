// SPDX-License-Identifier: MIT
//
// fusdctl serve --tty: the device is a terminal (a serial port) to its callers.
//
//   TtyChannel  what the command sees of the line: FUSD_TTY_STATE, a file holding one line
//               ("speed=115200 bits=8 parity=n stop=1 dtr=1 rts=0 cts=0 dsr=0 cd=0 ri=0"),
//               replaced whole (rename) on each change; and, where the modem lines exist,
//               FUSD_TTY_CONTROL, a FIFO on which the command writes "cd=1 cts=0"-style lines
//               to drive the lines the far end drives (CTS, DSR, CD, RI).
//   TtyLine     on the kernel and CUSE backends: one per device, the fusd::Terminal answering
//               the terminal ioctls (settings, modem lines, TIOCEXCL) and its TtyChannel. The
//               Server asks it for each ioctl and each open; the Sessions give it their unread
//               output (FIONREAD) and drop it (TCFLSH).
//   serve_pty   on FUSE, where a regular file can never be a terminal: a pseudo-terminal whose
//               slave the /dev path is a symlink to; the command's stdin and stdout are the master.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "fusd/fusd.hpp"
#include "fusd/terminal.hpp"
#include "serve/detach.hpp"
#include "serve/options.hpp"
#include "serve/watched_fd.hpp"

namespace fusdctl::serve {

class TtyChannel {
public:
    // Makes a private directory for the state file (and the control FIFO when with_control).
    // Throws std::system_error.
    TtyChannel(const std::string &device, bool with_control);
    ~TtyChannel(); // removes the files and the directory
    TtyChannel(const TtyChannel &) = delete;
    TtyChannel &operator=(const TtyChannel &) = delete;

    std::vector<std::string> env() const; // FUSD_TTY_STATE=..., FUSD_TTY_CONTROL=...
    void publish(const std::string &state); // rewrites the state file when it changed
    // The FIFO, open for reading (and writing, so that it never reports end of file); -1 without.
    int control_fd() const { return control_fd_.get(); }
    // Reads what the command wrote; applies each complete line's "name=0|1" words (cts, dsr,
    // cd, ri) to inputs (TIOCM_* bits). A bad word is reported and skipped.
    unsigned read_control(unsigned inputs);

private:
    std::string device_;
    std::string dir_, state_path_, control_path_;
    std::string last_;
    fusd::Fd control_fd_;
    std::string partial_; // a line not yet ended
};

class TtyLine {
public:
    explicit TtyLine(const std::string &device) : channel_(device, true) {}
    void start(fusd::Loop &loop); // watches the control FIFO, publishes the first state
    void stop() { control_.reset(); }
    std::vector<std::string> env() const { return channel_.env(); }
    void publish() { channel_.publish(terminal.describe()); }

    fusd::Terminal terminal;

private:
    TtyChannel channel_;
    WatchedFd control_;
};

// What --tty makes of the device on a backend, for `fusdctl doctor` (fusdctl-serve(1) says the
// same in the same words).
std::string tty_on(fusd::Backend backend);

// --tty on FUSE: serves the pseudo-terminal until a stop signal or the command's end.
int serve_pty(ServeConfig &config, Reporter reporter);

} // namespace fusdctl::serve
