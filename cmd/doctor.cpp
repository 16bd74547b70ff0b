// SPDX-License-Identifier: MIT
//
// fusdctl doctor [--json]: which backends this machine can use, why not, and what auto picks.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "fusd/admin.hpp"
#include "fusd/fusd.hpp"
#include "serve/tty.hpp"

namespace fusdctl {

namespace {

struct DoctorOptions {
    bool json = false;
};

int run_doctor(const DoctorOptions &opts) {
    std::vector<fusd::BackendStatus> backends = fusd::probe_backends();
    std::optional<fusd::Backend> chosen;
    std::string why_none;
    try {
        chosen = fusd::choose_backend(fusd::Backend::automatic);
    } catch (const fusd::Error &e) {
        why_none = e.what();
    }

    // What no backend changes (libfusd(3) says each in the same words).
    const std::vector<std::string> same_everywhere = {
        "nested names (/dev/input/event7): missing parent directories are made, and removed when fusd made them "
        "and they are empty",
        "the caller: its process id, its filesystem uid and gid (those its access was checked with) and its real "
        "uid and gid",
        "errors: a driver's errno 1..511 reaches the caller as given; 512 and above (no errno) become EIO",
    };
    std::string no_cleaner;
    std::string cleaner = fusd::admin::cleaner_program(no_cleaner);
    std::string fuse_why;
    std::string fuse_transport = fusd::admin::fuse_transport(fuse_why);

    if (opts.json) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto &b : backends) {
            list.push_back({
                {"backend", std::string(fusd::to_string(b.backend))},
                {"usable", b.usable},
                {"reason", b.reason},
                {"differences", b.differences},
                {"serve_tty", serve::tty_on(b.backend)},
            });
        }
        nlohmann::json out = {
            {"backends", list},
            {"auto", chosen ? nlohmann::json(std::string(fusd::to_string(*chosen))) : nlohmann::json(nullptr)},
            {"runtime_dir", fusd::admin::runtime_dir()},
            {"cleaner", cleaner.empty() ? nlohmann::json(nullptr) : nlohmann::json(cleaner)},
            {"fuse_transport", fuse_transport.empty() ? nlohmann::json(nullptr) : nlohmann::json(fuse_transport)},
            {"fuse_transport_why", fuse_why},
            {"same_on_every_backend", same_everywhere},
            {"root", ::geteuid() == 0},
        };
        if (cleaner.empty())
            out["cleaner_error"] = no_cleaner;
        if (!chosen)
            out["auto_error"] = why_none;
        fmt::print("{}\n", out.dump(2));
        return chosen ? exit_ok : exit_failure;
    }

    std::size_t w = 7;
    for (const auto &b : backends)
        w = std::max(w, fusd::to_string(b.backend).size());
    fmt::print("{:<{}}  {:<6}  {}\n", "BACKEND", w, "USABLE", "NOTES");
    for (const auto &b : backends) {
        std::string notes = b.usable ? b.differences : b.reason;
        fmt::print("{:<{}}  {:<6}  {}\n", fusd::to_string(b.backend), w, b.usable ? "yes" : "no", notes);
    }
    fmt::print("\nfusdctl serve --tty makes:\n");
    for (const auto &b : backends)
        fmt::print("  {:<{}}  {}\n", fusd::to_string(b.backend), w, serve::tty_on(b.backend));
    fmt::print("\nthe same on every backend:\n");
    for (const auto &line : same_everywhere)
        fmt::print("  {}\n", line);
    fmt::print("\n");
    if (chosen)
        fmt::print("auto picks: {}\n", fusd::to_string(*chosen));
    else
        fmt::print("auto picks: nothing: {}\n", why_none);
    if (fuse_transport.empty())
        fmt::print("fuse transport: none: {}\n", fuse_why);
    else
        fmt::print("fuse transport: {} ({})\n", fuse_transport, fuse_why);
    fmt::print("runtime directory: {}\n", fusd::admin::runtime_dir());
    if (cleaner.empty())
        fmt::print("cleaner: none ({}): what a killed daemon leaves goes at the next fusdctl ls or rm\n", no_cleaner);
    else
        fmt::print("cleaner: {} (what a killed daemon leaves goes at once)\n", cleaner);
    return chosen ? exit_ok : exit_failure;
}

} // namespace

Command add_doctor(CLI::App &app) {
    auto opts = std::make_shared<DoctorOptions>();
    CLI::App *sub = app.add_subcommand("doctor", "Show which backends this machine can use, and which auto picks");
    sub->add_flag("-j,--json", opts->json, "Print a JSON object instead of a table");
    return Command{sub, [opts] { return run_doctor(*opts); }};
}

} // namespace fusdctl
