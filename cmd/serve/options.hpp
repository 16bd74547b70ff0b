// SPDX-License-Identifier: MIT
//
// fusdctl serve: its options as typed (ServeOptions) and as checked before any node is made or
// any process started (ServeConfig).
#pragma once

#include <string>
#include <vector>

#include "child.hpp"
#include "fd.hpp"
#include "fusd/fusd.hpp"

namespace fusdctl::serve {

// As typed: filled by CLI11 (add_serve, serve/serve.cpp), checked by nothing yet.
struct ServeOptions {
    std::string device;
    std::vector<std::string> command;
    bool shared = false;
    bool tty = false;
    bool restart = false;
    double restart_delay = 1.0;
    double grace = 1.0;
    std::string mode = "0660";
    std::string owner;
    std::string group;
    std::string backend = "auto";
    bool detach = false;
    std::string pidfile;
    std::string log;
    std::string protocol; // --protocol json
    std::string handler;  // --handler SCRIPT
};

// Everything checked before any node is made or any process forked.
struct ServeConfig {
    std::string path;
    CommandSpec command;
    fusd::DeviceOptions device;
    bool shared = false;
    // --tty: a terminal; pty: on FUSE, as a pseudo-terminal (serve_pty, tty.hpp)
    bool tty = false;
    bool pty = false;
    bool restart = false;
    double restart_delay = 1.0;
    double grace = 1.0;
    std::string pidfile;
    fusd::Fd log; // --log: the commands' stderr, and ours once the device is ready
    bool protocol = false; // --protocol json: one command answers every call (serve/protocol.hpp)
    bool handler = false;  // --handler: command is the script, run once per call (serve/handler.hpp)
};

// Checks the options and resolves the command. Throws UsageError (a bad command line),
// fusd::Error (a bad device name) or std::runtime_error (the command or the log cannot be used).
ServeConfig check_options(const ServeOptions &opts);

} // namespace fusdctl::serve
