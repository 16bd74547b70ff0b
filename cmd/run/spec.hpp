// SPDX-License-Identifier: MIT
//
// fusdctl run: the devices asked for (--serve, --tty, --replay), checked before anything is made.
#pragma once

#include <string>
#include <vector>

namespace fusdctl::run {

struct RunOptions {
    std::vector<std::string> serve;  // PATH=COMMAND
    std::vector<std::string> tty;    // PATH=COMMAND
    std::vector<std::string> replay; // PATH=FILE
    std::vector<std::string> program;
    bool drivers = false; // PROGRAM keeps CAP_SYS_ADMIN in the run's user namespace
};

struct DeviceSpec {
    enum class Kind { serve, tty, replay } kind;
    std::string path; // /dev/...
    std::string arg;  // COMMAND (run with sh -c) or FILE
    // The fusdctl command line that serves it, exactly as a user would type it.
    std::vector<std::string> server_argv() const;
};

// The entries of the host's /dev that the private /dev holds (private_dev.cpp), by name.
const std::vector<std::string> &host_dev_entries();

// Checks every option; throws UsageError naming the first bad one.
std::vector<DeviceSpec> check_options(const RunOptions &opts);

} // namespace fusdctl::run
