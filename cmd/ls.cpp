// SPDX-License-Identifier: MIT
//
// fusdctl ls [--json] [-q]: every fusd device on the machine, from every backend.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "fusd/admin.hpp"

namespace fusdctl {

namespace {

struct LsOptions {
    bool json = false;
    bool quiet = false;
};

int run_ls(const LsOptions &opts) {
    std::vector<fusd::admin::DeviceInfo> devices = fusd::admin::list_devices();
    std::sort(devices.begin(), devices.end(),
              [](const auto &a, const auto &b) { return a.path < b.path; });

    if (opts.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto &d : devices) {
            out.push_back({
                {"device", d.path},
                {"backend", d.backend},
                {"pid", d.pid},
                {"state", d.state},
                {"command", d.command},
                {"open_files", d.open_files},
                {"calls", d.calls},
                {"uptime_seconds", d.uptime_seconds},
            });
        }
        fmt::print("{}\n", out.dump(2));
        return exit_ok;
    }
    if (opts.quiet) {
        for (const auto &d : devices)
            if (d.state == "live")
                fmt::print("{}\n", d.path);
        return exit_ok;
    }

    std::size_t wdev = 6, wback = 7, wpid = 3, wstate = 5, wopen = 5, wcalls = 5, wup = 6;
    std::vector<std::vector<std::string>> rows;
    for (const auto &d : devices) {
        rows.push_back({d.path, d.backend, fmt::format("{}", d.pid), d.state, fmt::format("{}", d.open_files),
                        fmt::format("{}", d.calls), d.state == "dead" ? "-" : format_uptime(d.uptime_seconds),
                        d.command});
        const auto &r = rows.back();
        wdev = std::max(wdev, r[0].size());
        wback = std::max(wback, r[1].size());
        wpid = std::max(wpid, r[2].size());
        wstate = std::max(wstate, r[3].size());
        wopen = std::max(wopen, r[4].size());
        wcalls = std::max(wcalls, r[5].size());
        wup = std::max(wup, r[6].size());
    }
    auto line = [&](const std::vector<std::string> &r) {
        std::string s = fmt::format("{:<{}}  {:<{}}  {:>{}}  {:<{}}  {:>{}}  {:>{}}  {:>{}}  {}", r[0], wdev, r[1],
                                    wback, r[2], wpid, r[3], wstate, r[4], wopen, r[5], wcalls, r[6], wup, r[7]);
        while (!s.empty() && s.back() == ' ')
            s.pop_back();
        fmt::print("{}\n", s);
    };
    line({"DEVICE", "BACKEND", "PID", "STATE", "OPENS", "CALLS", "UPTIME", "COMMAND"});
    for (const auto &r : rows)
        line(r);
    return exit_ok;
}

} // namespace

Command add_ls(CLI::App &app) {
    auto opts = std::make_shared<LsOptions>();
    CLI::App *sub = app.add_subcommand("ls", "List every fusd device on this machine, from every backend");
    sub->add_flag("-j,--json", opts->json, "Print a JSON array of objects instead of a table");
    sub->add_flag("-q,--quiet", opts->quiet, "Print only the paths of live devices, one per line");
    return Command{sub, [opts] { return run_ls(*opts); }};
}

} // namespace fusdctl
