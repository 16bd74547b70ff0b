// SPDX-License-Identifier: MIT
//
// fusdctl doctor [--json]: which backends this machine can use, why not, and what auto picks.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "run/usable.hpp"
#include "fusd/admin.hpp"
#include "fusd/fusd.hpp"
#include "module_advice.hpp"
#include "serve/tty.hpp"

namespace fusdctl {

namespace {

struct DoctorOptions {
    bool json = false;
};

// What auto's order uses when the module is missing: cuse if usable, else why not and what then.
std::string without_module(const std::vector<fusd::BackendStatus> &backends, std::optional<fusd::Backend> &instead) {
    std::string why_not;
    for (const auto &b : backends) {
        if (b.backend == fusd::Backend::kernel)
            continue;
        if (b.usable) {
            instead = b.backend;
            return fmt::format("auto uses {} instead{}", fusd::to_string(b.backend), why_not);
        }
        why_not += fmt::format("; {} cannot be used: {}", fusd::to_string(b.backend), b.reason);
    }
    return "no other backend is usable" + why_not;
}

ModuleFacts this_machine_module() {
    struct utsname u{};
    ::uname(&u);
    return probe_module("", u.release, FUSDCTL_VERSION);
}

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
    ModuleFacts module = this_machine_module();
    std::optional<fusd::Backend> instead;
    std::string without =
        module.state == ModuleState::loaded ? std::string() : without_module(backends, instead);
    run::Usability run_check = run::check_usable();
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
            {"run", {{"usable", run_check.usable}, {"reason", run_check.reason}}},
        };
        if (cleaner.empty())
            out["cleaner_error"] = no_cleaner;
        out["kernel_module"] = {
            {"state", std::string(to_string(module.state))},
            {"advice", module_advice(module)},
            {"instead", instead ? nlohmann::json(std::string(fusd::to_string(*instead))) : nlohmann::json(nullptr)},
        };
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
    fmt::print("kernel module: {}\n", module_advice(module));
    if (!without.empty())
        fmt::print("  without it: {}\n", without);
    if (fuse_transport.empty())
        fmt::print("fuse transport: none: {}\n", fuse_why);
    else
        fmt::print("fuse transport: {} ({})\n", fuse_transport, fuse_why);
    fmt::print("runtime directory: {}\n", fusd::admin::runtime_dir());
    if (cleaner.empty())
        fmt::print("cleaner: none ({}): what a killed daemon leaves goes at the next fusdctl ls or rm\n", no_cleaner);
    else
        fmt::print("cleaner: {} (what a killed daemon leaves goes at once)\n", cleaner);
    if (run_check.usable)
        fmt::print("fusdctl run: usable by uid {} (FUSE in namespaces of its own)\n", ::geteuid());
    else
        fmt::print("fusdctl run: not usable by uid {}: {}\n", ::geteuid(), run_check.reason);
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
