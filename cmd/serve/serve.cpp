// SPDX-License-Identifier: MIT
//
// fusdctl serve [OPTIONS] DEVICE -- COMMAND [ARG...]
//
// A libfusd driver whose reads and writes are piped to a command. Everything runs on the one
// thread of the fusd::Loop: the commands' pipes, their pidfds (exit without SIGCHLD) and their
// grace-period timers (timerfd) are watched in the same epoll set as the device.
//
// Per open (default): open() starts a command; read() takes its stdout (kept Request until data
// or end of file), write() feeds its stdin (kept Request until the pipe has room); close()
// closes its stdin and stdout, waits the grace period, then SIGTERM, the grace period again, then
// SIGKILL. A read-only open gives the command end of input at once; a write-only open drains and
// drops its output.
// Shared (--shared): one command for the device's lifetime, every open file reading from and
// writing to it; --restart starts it again when it exits.
//
// The parts, in cmd/serve/:
//   options  ServeOptions as typed, ServeConfig as checked (before anything is made or started)
//   detach   --detach (fork, setsid, the ready pipe), the start Reporter, --pidfile
//   server   Server: the device's callbacks, the Sessions, drain on a stop signal, shutdown
//   session  Session: one command, its pipes, pidfd and timer, and the calls waiting on it
//   output_buffer, watched_fd   what a Session owns: the unread output, a descriptor and its watch
//   tty, pty --tty: the terminal (TtyLine, with the Server), the command's view of the line
//            (TtyChannel), and on FUSE the pseudo-terminal served instead (serve_pty)
//   protocol ProtocolServer (--protocol json): one command answers every call as JSON lines
//   handler  HandlerServer (--handler): one run of a script per call, its exit status the answer
//   stopping DrainTimer and remove_if_registered: the way out the three servers share
// serve_with() runs any of Server, ProtocolServer and HandlerServer: the same setup, signals,
// readiness report and shutdown.
//
// The flow of one call (per open): the caller's open(2) reaches Server::on_open, which starts
// the command (spawn_command, child.cpp) and gives the open file a Session; read(2) reaches
// Session::read through Server::callbacks, answered at once from what the command wrote, or
// kept until Session::on_stdout has more (or end of file); write(2) reaches Session::write,
// queued and drained into the command's stdin by Session::flush_writes; close(2) reaches
// Server::on_release: the Session closes the pipes, ends the command (grace, SIGTERM,
// SIGKILL) and is buried once the command is reaped.
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "fusd/fusd.hpp"
#include "serve/detach.hpp"
#include "serve/handler.hpp"
#include "serve/options.hpp"
#include "serve/protocol.hpp"
#include "serve/server.hpp"
#include "serve/tty.hpp"
#include "serve/watched_fd.hpp"

namespace fusdctl {

namespace serve {

namespace {

// Starting what answers the calls: the terminal's line (--tty) and the shared command (per open:
// nothing yet), the protocol's command, or nothing (a handler script runs per call).
void start_driver(Server &server, const ServeConfig &config) {
    if (config.tty)
        server.start_tty();
    if (config.shared)
        server.start_shared();
}
void start_driver(ProtocolServer &server, const ServeConfig &) { server.start(); }
void start_driver(HandlerServer &, const ServeConfig &) {}

int exit_status(const Server &) { return exit_ok; }
int exit_status(const ProtocolServer &server) { return server.exit_status(); }
int exit_status(const HandlerServer &) { return exit_ok; }

// The serving process: register, report readiness, serve until stopped, clean up. Driver is
// Server (pipes to commands), ProtocolServer (--protocol) or HandlerServer (--handler).
template <typename Driver>
int serve_with(ServeConfig &config, Reporter reporter) {
    ignore_sigpipe();
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGCHLD, &dfl, nullptr); // an inherited SIG_IGN would reap our commands for us

    // Blocked before any thread exists, so that only our signalfd sees them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    Driver server(config);
    int status = exit_ok;
    {
        std::optional<fusd::Loop> loop;
        fusd::Device *device = nullptr;
        try {
            loop.emplace(false); // our own signalfd below: SIGINT, SIGTERM and SIGHUP drain first
            device = &loop->add(config.device, server.callbacks());
        } catch (const std::exception &e) {
            std::string what = e.what();
            if (what.find(config.path) == std::string::npos)
                what = fmt::format("{}: {}", config.path, what);
            return reporter.fail(what);
        }
        server.set_device(*loop, *device);
        try {
            start_driver(server, config);
        } catch (const std::system_error &e) {
            server.shutdown();
            return reporter.fail(fmt::format("{}: {}", config.path, e.what()));
        }
        // SIGINT/SIGTERM/SIGHUP (blocked above, so one sent early waits here) through our own
        // signalfd: waiting callers are answered (end of file) before the node goes.
        WatchedFd stop_signal;
        stop_signal.reset(fusd::Fd{::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC)});
        if (!stop_signal) {
            int err = errno;
            server.shutdown();
            return reporter.fail(fmt::format("{}: signalfd: {}", config.path, std::strerror(err)));
        }
        int sig_fd = stop_signal.get();
        Driver *sv = &server;
        stop_signal.watch(*loop, EPOLLIN, [sig_fd, sv](std::uint32_t) {
            signalfd_siginfo info{};
            if (::read(sig_fd, &info, sizeof info) == sizeof info)
                sv->drain(); // stops the loop once the files are closed, or after --grace
        });
        if (!config.pidfile.empty()) {
            std::string why;
            if (!write_pidfile(config.pidfile, why)) {
                stop_signal.reset();
                server.shutdown();
                return reporter.fail(fmt::format("{}: --pidfile {}: {}", config.path, config.pidfile, why));
            }
        }
        if (config.log) {
            ::dup2(config.log.get(), STDERR_FILENO); // our own messages go to the log too
            config.log.reset();
        }
        reporter.ready();
        try {
            loop->run();
        } catch (const std::exception &e) {
            error("{}: {}", config.path, e.what());
            status = exit_failure;
        }
        stop_signal.reset();
        server.shutdown();
        if (status == exit_ok)
            status = exit_status(server);
    }
    if (!config.pidfile.empty())
        ::unlink(config.pidfile.c_str());
    return status;
}

int serve_device(ServeConfig &config, Reporter reporter) {
    if (config.protocol)
        return serve_with<ProtocolServer>(config, std::move(reporter));
    if (config.handler)
        return serve_with<HandlerServer>(config, std::move(reporter));
    return serve_with<Server>(config, std::move(reporter));
}

} // namespace

// Checks the options, then serves in this process or in a detached one.
int run(const ServeOptions &opts) {
    ServeConfig config = check_options(opts);
    auto serve = config.pty ? serve_pty : serve_device;
    if (opts.detach)
        return serve_detached(config, serve);
    return serve(config, Reporter{});
}

} // namespace serve

Command add_serve(CLI::App &app) {
    auto opts = std::make_shared<serve::ServeOptions>();
    CLI::App *sub = app.add_subcommand("serve", "Make DEVICE a device whose reads and writes are piped to COMMAND");
    sub->add_option("DEVICE", opts->device, "Device to create: /dev/NAME or NAME")->required();
    sub->add_option("COMMAND", opts->command, "Command to run, after '--' (argv, no shell)");
    sub->add_flag("--shared", opts->shared, "One command for the device's lifetime, shared by every open file");
    sub->add_flag("--tty", opts->tty,
                  "Make DEVICE a terminal (a serial port); on fuse, a pseudo-terminal (needs --shared)");
    sub->add_flag("--restart", opts->restart, "With --shared or --protocol: start the command again when it exits");
    sub->add_option("--restart-delay", opts->restart_delay, "Seconds before a restart (default 1)");
    sub->add_option("--grace", opts->grace,
                    "Seconds between close and SIGTERM, and between SIGTERM and SIGKILL (default 1)");
    sub->add_option("-m,--mode", opts->mode, "Permissions of the node, octal (default 0660)");
    sub->add_option("-o,--owner", opts->owner, "Owner of the node: user name or uid");
    sub->add_option("-g,--group", opts->group, "Group of the node: group name or gid");
    sub->add_option("-b,--backend", opts->backend, "One of " + fusd::backend_names() + " (default auto)");
    sub->add_flag("-d,--detach", opts->detach, "Run in the background; print its PID once the device is ready");
    sub->add_option("-p,--pidfile", opts->pidfile, "Write the serving process's PID to FILE once ready");
    sub->add_option("-l,--log", opts->log, "Append the command's stderr (and fusdctl's messages) to FILE");
    sub->add_option("--protocol", opts->protocol,
                    "json: one COMMAND answers every call as JSON lines (see fusd-protocol(7))");
    sub->add_option("--handler", opts->handler,
                    "Run SCRIPT once per call: SCRIPT open|read SIZE|write SIZE|ioctl NUMBER SIZE|release");
    return Command{sub, [opts] { return serve::run(*opts); }};
}

} // namespace fusdctl
