// SPDX-License-Identifier: MIT
//
// fusdctl serve --tty: TtyChannel and TtyLine (see tty.hpp).
#include "serve/tty.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.hpp"
#include "fusd/admin.hpp"

namespace fusdctl::serve {

namespace {

std::system_error sys_error(int err, const std::string &what) {
    return std::system_error(err, std::generic_category(), what);
}

// The control words and the lines they drive.
struct ControlWord {
    const char *name;
    unsigned bit;
};
constexpr ControlWord kControlWords[] = {
    {"cts", TIOCM_CTS}, {"dsr", TIOCM_DSR}, {"cd", TIOCM_CAR}, {"ri", TIOCM_RNG}};

} // namespace

TtyChannel::TtyChannel(const std::string &device, bool with_control) : device_(device) {
    // In the process's scratch directory: gone with the process, even when it is SIGKILLed.
    std::string tmpl = fusd::admin::scratch_dir() + "/tty.XXXXXX";
    if (!::mkdtemp(tmpl.data()))
        throw sys_error(errno, fmt::format("--tty: cannot make a directory like {}", tmpl));
    dir_ = tmpl;
    state_path_ = dir_ + "/state";
    if (with_control) {
        control_path_ = dir_ + "/control";
        if (::mkfifo(control_path_.c_str(), 0600) != 0) {
            int err = errno;
            ::rmdir(dir_.c_str());
            throw sys_error(err, fmt::format("--tty: mkfifo {}", control_path_));
        }
        // Read and write: no end of file when a writer closes, and no wait for one to come.
        control_fd_.reset(::open(control_path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
        if (!control_fd_) {
            int err = errno;
            ::unlink(control_path_.c_str());
            ::rmdir(dir_.c_str());
            throw sys_error(err, fmt::format("--tty: open {}", control_path_));
        }
    }
}

TtyChannel::~TtyChannel() {
    control_fd_.reset();
    ::unlink(state_path_.c_str());
    ::unlink((state_path_ + ".new").c_str());
    if (!control_path_.empty())
        ::unlink(control_path_.c_str());
    ::rmdir(dir_.c_str());
    ::rmdir(dir_.substr(0, dir_.rfind('/')).c_str()); // the scratch directory, if nothing else is in it
}

std::vector<std::string> TtyChannel::env() const {
    std::vector<std::string> out = {"FUSD_TTY_STATE=" + state_path_};
    if (!control_path_.empty())
        out.push_back("FUSD_TTY_CONTROL=" + control_path_);
    return out;
}

void TtyChannel::publish(const std::string &state) {
    if (state == last_)
        return;
    std::string tmp = state_path_ + ".new";
    fusd::Fd fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    std::string line = state + "\n";
    if (!fd || !write_all(fd.get(), line) || ::rename(tmp.c_str(), state_path_.c_str()) != 0) {
        error("{}: --tty: writing {}: {}", device_, state_path_, std::strerror(errno));
        return;
    }
    last_ = state;
}

unsigned TtyChannel::read_control(unsigned inputs) {
    char buf[512];
    while (true) {
        ssize_t n = ::read(control_fd_.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        partial_.append(buf, static_cast<std::size_t>(n));
        if (partial_.size() > 4096) { // no line end in sight: not our protocol
            error("{}: --tty: {}: a line longer than 4096 bytes, dropped", device_, control_path_);
            partial_.clear();
        }
    }
    std::size_t end;
    while ((end = partial_.find('\n')) != std::string::npos) {
        std::string line = partial_.substr(0, end);
        partial_.erase(0, end + 1);
        std::size_t pos = 0;
        while (pos < line.size()) {
            std::size_t start = line.find_first_not_of(" \t\r", pos);
            if (start == std::string::npos)
                break;
            std::size_t stop = line.find_first_of(" \t\r", start);
            std::string word = line.substr(start, stop == std::string::npos ? std::string::npos : stop - start);
            pos = stop == std::string::npos ? line.size() : stop;
            bool known = false;
            for (const ControlWord &w : kControlWords) {
                std::string on = std::string(w.name) + "=1", off = std::string(w.name) + "=0";
                if (word == on || word == off) {
                    inputs = word == on ? inputs | w.bit : inputs & ~w.bit;
                    known = true;
                }
            }
            if (!known)
                error("{}: --tty: {}: '{}' is not one of cts=0|1, dsr=0|1, cd=0|1, ri=0|1", device_, control_path_,
                      word);
        }
    }
    return inputs;
}

std::string tty_on(fusd::Backend backend) {
    if (backend == fusd::Backend::fuse)
        return "a pseudo-terminal: the node is a symlink to /dev/pts/N, the kernel's pty driver answers the "
               "terminal ioctls; no modem lines (TIOCMGET fails with ENOTTY, no FUSD_TTY_CONTROL), always 8 bits "
               "without parity, one command shared by the callers (--shared), backend pty in fusdctl ls, not traced";
    return "a terminal device: the terminal ioctls reach fusdctl (settings, modem lines, FIONREAD, TCFLSH, "
           "TIOCEXCL), shown by name in fusdctl trace";
}

void TtyLine::start(fusd::Loop &loop) {
    publish();
    control_.reset(fusd::Fd{::dup(channel_.control_fd())});
    if (!control_)
        throw sys_error(errno, "--tty: dup");
    control_.watch(loop, EPOLLIN, [this](std::uint32_t) {
        unsigned inputs = channel_.read_control(terminal.modem_lines());
        terminal.set_inputs(inputs);
        publish();
    });
}

} // namespace fusdctl::serve
