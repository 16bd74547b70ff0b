// SPDX-License-Identifier: MIT
//
// fusdctl trace [DEVICE...] [--json] [-n COUNT]: the message traffic of devices, as it happens.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "fusd/admin.hpp"
#include "fusd/fusd.hpp"
#include "fusd/terminal.hpp"

namespace fusdctl {

namespace {

struct TraceOptions {
    std::vector<std::string> devices;
    bool json = false;
    long count = 0;
};

volatile std::sig_atomic_t stop_requested = 0;

void on_stop_signal(int) { stop_requested = 1; }

// What users call the operation: close(2) is the release of the last descriptor.
std::string op_name(fusd::Op op) {
    if (op == fusd::Op::release)
        return "close";
    return std::string(fusd::to_string(op));
}

std::string local_time(std::int64_t ns) {
    std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
    std::tm tm{};
    ::localtime_r(&secs, &tm);
    return fmt::format("{:02}:{:02}:{:02}.{:06}", tm.tm_hour, tm.tm_min, tm.tm_sec, (ns % 1000000000) / 1000);
}

std::string utc_time(std::int64_t ns) {
    std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, (ns % 1000000000) / 1000);
}

std::string text_line(const fusd::admin::TraceEvent &ev) {
    std::string args;
    switch (ev.op) {
    case fusd::Op::read:
    case fusd::Op::write:
        args = fmt::format(" size={} offset={}", ev.size, ev.offset);
        break;
    case fusd::Op::ioctl: {
        std::string_view name = fusd::terminal_ioctl_name(ev.ioctl);
        args = fmt::format(" {}{}cmd={:#010x} size={}", name, name.empty() ? "" : " ", ev.ioctl, ev.size);
        break;
    }
    default:
        break;
    }
    if (!ev.note.empty())
        args += fmt::format(" ({})", ev.note);
    std::string result = ev.result >= 0 ? fmt::format("{}", ev.result)
                                        : fmt::format("-1 {}", errno_name(-ev.result));
    return fmt::format("{} {} {} {} {}{} = {} {}us\n", local_time(ev.time_ns), ev.device, ev.pid,
                       ev.comm.empty() ? "?" : ev.comm, op_name(ev.op), args, result, ev.latency_us);
}

std::string json_line(const fusd::admin::TraceEvent &ev) {
    nlohmann::json j = {
        {"time", utc_time(ev.time_ns)},
        {"time_ns", ev.time_ns},
        {"device", ev.device},
        {"pid", ev.pid},
        {"comm", ev.comm},
        {"op", op_name(ev.op)},
        {"size", ev.size},
        {"offset", ev.offset},
        {"ioctl", ev.ioctl},
        {"ioctl_name", ev.op == fusd::Op::ioctl && !fusd::terminal_ioctl_name(ev.ioctl).empty()
                           ? nlohmann::json(std::string(fusd::terminal_ioctl_name(ev.ioctl)))
                           : nlohmann::json(nullptr)},
        {"result", ev.result},
        {"errno", ev.result < 0 ? nlohmann::json(errno_name(-ev.result)) : nlohmann::json(nullptr)},
        {"latency_us", ev.latency_us},
        {"note", ev.note.empty() ? nlohmann::json(nullptr) : nlohmann::json(ev.note)},
    };
    return j.dump() + "\n";
}

int run_trace(const TraceOptions &opts) {
    if (opts.count < 0)
        throw UsageError{"-n: COUNT must be 0 (no limit) or more"};
    std::vector<std::string> paths;
    for (const std::string &name : opts.devices)
        paths.push_back(fusd::device_path(name));

    ignore_sigpipe();
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: a blocked wait returns
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);

    fusd::admin::TraceSubscription subscription(paths);
    long printed = 0;
    while (!stop_requested && (opts.count == 0 || printed < opts.count)) {
        std::optional<fusd::admin::TraceEvent> ev = subscription.next(250);
        if (!ev)
            continue;
        std::string line = opts.json ? json_line(*ev) : text_line(*ev);
        if (!write_all(STDOUT_FILENO, line))
            return errno == EPIPE ? exit_ok : exit_failure; // reader gone (| head): done
        ++printed;
    }
    return exit_ok;
}

} // namespace

Command add_trace(CLI::App &app) {
    auto opts = std::make_shared<TraceOptions>();
    CLI::App *sub = app.add_subcommand("trace", "Stream the system calls made on devices (all when none named)");
    sub->add_option("DEVICE", opts->devices, "Devices to trace: /dev/NAME or NAME");
    sub->add_flag("-j,--json", opts->json, "Print one JSON object per line");
    sub->add_option("-n,--count", opts->count, "Stop after COUNT calls (default: until interrupted)");
    return Command{sub, [opts] { return run_trace(*opts); }};
}

} // namespace fusdctl
