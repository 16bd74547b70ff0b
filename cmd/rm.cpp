// SPDX-License-Identifier: MIT
//
// fusdctl rm [--force] DEVICE...: unregister devices.
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "fusd/admin.hpp"
#include "fusd/fusd.hpp"

namespace fusdctl {

namespace {

struct RmOptions {
    bool force = false;
    std::vector<std::string> devices;
};

// fusd::Error texts usually name the device already; make sure they do.
std::string naming(const std::string &path, const std::string &what) {
    if (what.find(path) != std::string::npos)
        return what;
    return fmt::format("{}: {}", path, what);
}

int run_rm(const RmOptions &opts) {
    int status = exit_ok;
    for (const std::string &name : opts.devices) {
        std::string path;
        try {
            path = fusd::device_path(name);
        } catch (const fusd::Error &e) {
            error("rm: {}", e.what());
            status = exit_failure;
            continue;
        }
        try {
            fusd::admin::remove_device(path, opts.force);
        } catch (const fusd::Error &e) {
            if (e.code().value() == ENOENT)
                error("rm: {}: no such fusd device (see 'fusdctl ls')", path);
            else
                error("rm: {}", naming(path, e.what()));
            status = exit_failure;
        } catch (const std::exception &e) {
            error("rm: {}", naming(path, e.what()));
            status = exit_failure;
        }
    }
    return status;
}

} // namespace

Command add_rm(CLI::App &app) {
    auto opts = std::make_shared<RmOptions>();
    CLI::App *sub = app.add_subcommand("rm", "Unregister devices");
    sub->add_flag("-f,--force", opts->force,
                  "Remove the node even when its server is hung or stopped; blocked callers get an error");
    sub->add_option("DEVICE", opts->devices, "Devices to remove: /dev/NAME or NAME")->required();
    return Command{sub, [opts] { return run_rm(*opts); }};
}

} // namespace fusdctl
