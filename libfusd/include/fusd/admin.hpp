// SPDX-License-Identifier: MIT
//
// The machine-wide view of fusd devices, for `fusdctl ls`, `trace` and `rm` and for tools.
//
// Every libfusd daemon publishes each of its devices as one entry in the runtime directory
// ($FUSD_RUNTIME_DIR, default /run/fusd: devices/<escaped path>.json) and answers a control
// socket (ctl/<pid>.sock) with its live state, a trace stream and unregister requests.
// Entries are never trusted: an entry whose process is gone (pid and start time no longer
// match) is stale; list_devices() reports it as dead and cleans its node and mount.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "fusd/fusd.hpp"

namespace fusd::admin {

std::string runtime_dir();
// The program that removes at once what a killed daemon leaves (node, FUSE mount, registry
// entry, control socket): $FUSD_CLEANER if set, else this build tree's or the installed
// fusd-cleaner. Empty, with `why` set, when there is none: the next `fusdctl ls` or `rm`, or
// registration of the name, cleans up instead.
std::string cleaner_program(std::string &why);

// The transport the FUSE backend's devices use here: "uring" (FUSE over io_uring) or "libfuse",
// with `why` (FUSD_FUSE_TRANSPORT, the kernel, its enable_uring parameter and how to turn it on).
// Empty, with `why` set, when FUSD_FUSE_TRANSPORT asks for what cannot be had.
std::string fuse_transport(std::string &why);

// A directory for this process's own files (mode 0700), $FUSD_RUNTIME_DIR/scratch/PID-START,
// made on the first call (throws fusd::Error). What is in it goes when the process dies, however
// it dies: fusd-cleaner removes it at once when the process served a device, and list_devices()
// (every `fusdctl ls`) removes any whose process is dead. A process that ends cleanly removes
// what it put there itself, and may rmdir the directory.
std::string scratch_dir();

struct DeviceInfo {
    std::string path;          // /dev/clock
    std::string backend;       // kernel, cuse, fuse; pty (see PtyEntry)
    pid_t pid = 0;             // serving process
    std::string command;       // its command line
    std::string state;         // "live", "unresponsive" (entry alive, socket silent), "dead" (cleaned)
    std::uint64_t open_files = 0;
    std::uint64_t calls = 0;
    double uptime_seconds = 0;
};

// Every device on the machine. Dead entries are cleaned (node, mount, entry) and reported once.
std::vector<DeviceInfo> list_devices();

// Asks the serving process to unregister `path`. With force, removes the node even when the
// daemon is stopped or hung: blocked callers are released with an error. Throws fusd::Error
// (ENOENT for an unknown device).
void remove_device(const std::string &path, bool force);

// A device that no backend serves but that stands in /dev for one: `fusdctl serve --tty` on FUSE
// makes /dev/NAME a symlink to a pseudo-terminal's slave (target). While a PtyEntry lives,
// list_devices() shows the device with backend "pty", live while this process lives (open files
// and calls are not counted: the kernel's pty driver answers them); remove_device() stops this
// process with SIGTERM (force: SIGKILL, and removes the symlink). An entry whose process died is
// cleaned as the others are: its symlink is removed if it still points to target. Not traced.
class PtyEntry {
public:
    PtyEntry(const std::string &path, const std::string &target); // throws Error
    ~PtyEntry();
    PtyEntry(const PtyEntry &) = delete;
    PtyEntry &operator=(const PtyEntry &) = delete;

private:
    std::string path_;
};

struct TraceEvent {
    std::int64_t time_ns = 0;      // CLOCK_REALTIME when the call was answered
    std::string device;
    pid_t pid = 0;                 // caller
    std::string comm;              // caller's command name
    Op op = Op::open;
    std::uint64_t size = 0;        // bytes asked (read), given (write), ioctl size
    std::uint64_t offset = 0;
    std::uint32_t ioctl = 0;       // ioctl request number
    int result = 0;                // >= 0, or -errno
    std::uint64_t latency_us = 0;  // from arrival to answer
    std::string note;              // what the driver said of the call (Request::trace_note), or empty
};

// A live stream of trace events from the named devices (all when empty), including daemons that
// start after the subscription; next() waits at most timeout_ms (-1: forever). Tracing needs root
// or the daemon's user: a named device whose daemon refuses the caller throws Error (EPERM), from
// the constructor or, for a daemon that starts later, from next(); with no device named, devices
// the caller may not trace are left out.
class TraceSubscription {
public:
    explicit TraceSubscription(std::vector<std::string> devices);
    ~TraceSubscription();
    TraceSubscription(const TraceSubscription &) = delete;
    TraceSubscription &operator=(const TraceSubscription &) = delete;
    std::optional<TraceEvent> next(int timeout_ms);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace fusd::admin
