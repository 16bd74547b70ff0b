// SPDX-License-Identifier: MIT
//
// fusdctl serve --tty on FUSE: serve_pty (see tty.hpp).
//
// A FUSE file is a regular file: no ioctl of a terminal can reach us through it. So the device
// is a pseudo-terminal instead: /dev/NAME is a symlink to its slave (/dev/pts/N), the command's
// stdin and stdout are its master. The kernel's pty driver is then the terminal: settings,
// FIONREAD, TCFLSH, TIOCEXCL, tcdrain are its own; a pty has no modem lines (TIOCMGET fails),
// so there is no FUSD_TTY_CONTROL. We hold the slave open, so that the master never sees the
// last caller's close as a hangup, and publish the settings to FUSD_TTY_STATE (a pty tells its
// master nothing when they change: we look every 100 ms). The command is shared by all callers.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common.hpp"
#include "fusd/admin.hpp"
#include "serve/tty.hpp"

namespace fusdctl::serve {

namespace {

unsigned baud_of(speed_t code) {
    static const struct {
        speed_t code;
        unsigned baud;
    } kSpeeds[] = {{B0, 0},           {B50, 50},           {B75, 75},           {B110, 110},
                   {B134, 134},       {B150, 150},         {B200, 200},         {B300, 300},
                   {B600, 600},       {B1200, 1200},       {B1800, 1800},       {B2400, 2400},
                   {B4800, 4800},     {B9600, 9600},       {B19200, 19200},     {B38400, 38400},
                   {B57600, 57600},   {B115200, 115200},   {B230400, 230400},   {B460800, 460800},
                   {B500000, 500000}, {B576000, 576000},   {B921600, 921600},   {B1000000, 1000000},
                   {B1152000, 1152000}, {B1500000, 1500000}, {B2000000, 2000000}, {B2500000, 2500000},
                   {B3000000, 3000000}, {B3500000, 3500000}, {B4000000, 4000000}};
    for (const auto &s : kSpeeds)
        if (s.code == code)
            return s.baud;
    return 0;
}

// The state line of a pty: as fusd::Terminal::describe() without the modem lines.
std::string describe(const termios &t) {
    unsigned bits = (t.c_cflag & CSIZE) == CS5 ? 5 : (t.c_cflag & CSIZE) == CS6 ? 6 : (t.c_cflag & CSIZE) == CS7 ? 7 : 8;
    char parity = !(t.c_cflag & PARENB) ? 'n' : (t.c_cflag & CMSPAR) ? (t.c_cflag & PARODD ? 'm' : 's')
                                                                      : (t.c_cflag & PARODD ? 'o' : 'e');
    return fmt::format("speed={} bits={} parity={} stop={}", baud_of(cfgetospeed(&t)), bits, parity,
                       t.c_cflag & CSTOPB ? 2 : 1);
}

// The symlink, removed on the way out if it is still ours.
struct Symlink {
    std::string path, target;
    ~Symlink() {
        char buf[256];
        ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
        if (n > 0 && std::string(buf, static_cast<std::size_t>(n)) == target)
            ::unlink(path.c_str());
    }
};

// Ends the command: SIGTERM to its group, --grace, SIGKILL; reaped.
void end_command(Child &child, double grace) {
    if (!child.pidfd)
        return;
    signal_group(child.pid, SIGTERM);
    pollfd p{child.pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(grace * 1000)) <= 0)
        signal_group(child.pid, SIGKILL);
    reap(child.pid);
    child.pidfd.reset();
}

} // namespace

int serve_pty(ServeConfig &config, Reporter reporter) {
    ignore_sigpipe();
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGCHLD, &dfl, nullptr);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    fusd::Fd stop{::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC)};
    if (!stop)
        return reporter.fail(fmt::format("{}: signalfd: {}", config.path, std::strerror(errno)));

    fusd::Fd master{::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)};
    char slave_name[128];
    if (!master || ::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0 ||
        ::ptsname_r(master.get(), slave_name, sizeof slave_name) != 0)
        return reporter.fail(fmt::format("{}: --tty: no pseudo-terminal: {}", config.path, std::strerror(errno)));
    fusd::Fd slave{::open(slave_name, O_RDWR | O_NOCTTY | O_CLOEXEC)};
    if (!slave)
        return reporter.fail(fmt::format("{}: --tty: {}: {}", config.path, slave_name, std::strerror(errno)));
    // Raw, as a serial port's bytes: no echo of the command's output back into its input.
    termios t{};
    ::tcgetattr(slave.get(), &t);
    ::cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    ::cfsetspeed(&t, B9600);
    ::tcsetattr(slave.get(), TCSANOW, &t);
    if (::chmod(slave_name, config.device.mode) != 0 ||
        ::chown(slave_name, config.device.owner.value_or(static_cast<uid_t>(-1)),
                config.device.group.value_or(static_cast<gid_t>(-1))) != 0)
        return reporter.fail(fmt::format("{}: --tty: {}: {}", config.path, slave_name, std::strerror(errno)));

    std::optional<fusd::admin::PtyEntry> entry; // goes after the link: `fusdctl ls` never sees a dangling one
    bool made = ::symlink(slave_name, config.path.c_str()) == 0;
    if (!made && errno == EEXIST) {
        fusd::admin::list_devices(); // cleans what a killed server left (its link, its entry)
        made = ::symlink(slave_name, config.path.c_str()) == 0;
    }
    if (!made) {
        int err = errno;
        return reporter.fail(err == EEXIST ? fmt::format("{}: already exists", config.path)
                                           : fmt::format("{}: --tty: symlink to {}: {}", config.path, slave_name,
                                                         std::strerror(err)));
    }
    Symlink link{config.path, slave_name};
    try {
        entry.emplace(config.path, slave_name);
    } catch (const fusd::Error &e) {
        return reporter.fail(fmt::format("{}: --tty: {}", config.path, e.what()));
    }

    std::optional<TtyChannel> channel;
    try {
        channel.emplace(config.path, false);
    } catch (const std::system_error &e) {
        return reporter.fail(fmt::format("{}: {}", config.path, e.what()));
    }
    channel->publish(describe(t));
    std::vector<std::string> env = channel->env();
    env.push_back("FUSD_DEVICE=" + config.path);
    auto start = [&]() { return spawn_command(config.command, env, config.log.get(), master.get()); };
    Child child;
    try {
        child = start();
    } catch (const std::system_error &e) {
        return reporter.fail(fmt::format("{}: {}", config.path, e.what()));
    }
    if (!config.pidfile.empty()) {
        std::string why;
        if (!write_pidfile(config.pidfile, why)) {
            end_command(child, config.grace);
            return reporter.fail(fmt::format("{}: --pidfile {}: {}", config.path, config.pidfile, why));
        }
    }
    if (config.log) {
        ::dup2(config.log.get(), STDERR_FILENO);
        config.log.reset();
    }
    reporter.ready();

    int status = exit_ok;
    int restart_in_ms = -1; // --restart: the command ended, the next starts after this long
    while (true) {
        pollfd fds[2] = {{stop.get(), POLLIN, 0}, {child.pidfd.get(), POLLIN, 0}};
        int timeout = restart_in_ms >= 0 ? std::min(restart_in_ms, 100) : 100;
        int n = ::poll(fds, child.pidfd ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) {
            error("{}: poll: {}", config.path, std::strerror(errno));
            status = exit_failure;
            break;
        }
        termios now{};
        if (::tcgetattr(master.get(), &now) == 0) // a master reads its slave's settings
            channel->publish(describe(now));
        if (n > 0 && (fds[0].revents & POLLIN))
            break;
        if (child.pidfd && n > 0 && (fds[1].revents & POLLIN)) {
            signal_group(child.pid, SIGKILL);
            int st = reap(child.pid);
            child.pidfd.reset();
            bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            if (!clean || !config.restart)
                error("{}: command {} {}", config.path, child.pid, describe_status(st));
            if (!config.restart)
                break;
            restart_in_ms = static_cast<int>(config.restart_delay * 1000);
            continue;
        }
        if (restart_in_ms >= 0) {
            restart_in_ms -= timeout; // close enough: the delay is a pause, not a deadline
            if (restart_in_ms <= 0) {
                restart_in_ms = -1;
                try {
                    child = start();
                } catch (const std::system_error &e) {
                    error("{}: restarting the command: {}", config.path, e.what());
                    restart_in_ms = static_cast<int>(config.restart_delay * 1000);
                }
            }
        }
    }
    end_command(child, config.grace);
    if (!config.pidfile.empty())
        ::unlink(config.pidfile.c_str());
    return status;
}

} // namespace fusdctl::serve
