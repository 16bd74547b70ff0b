// SPDX-License-Identifier: MIT
//
// fusdctl: serve, list, trace, remove, record and replay fusd devices, and run a program with fake
// ones. One source file per subcommand.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "fusd/fusd.hpp"

#ifndef FUSDCTL_VERSION
#define FUSDCTL_VERSION "0.0.0"
#endif

using namespace fusdctl;

namespace {

// The subcommand a parse error belongs to, for the hint line ("fusdctl serve --help").
std::string hint_for(const CLI::App &app) {
    for (const CLI::App *sub : app.get_subcommands())
        return fmt::format("fusdctl {} --help", sub->get_name());
    return "fusdctl --help";
}

} // namespace

// Also entered again by `fusdctl run` in its forked servers (run/servers.cpp).
int fusdctl::fusdctl_main(int argc, char **argv) {
    CLI::App app{"fusdctl - serve, list, trace and remove fusd devices (files in /dev answered by programs)",
                 "fusdctl"};
    app.set_version_flag("--version", std::string("fusdctl " FUSDCTL_VERSION));
    app.require_subcommand(1);
    app.footer("Run 'fusdctl COMMAND --help' for the options of one command; see fusdctl(1).");

    std::vector<Command> commands = {add_serve(app), add_ls(app), add_trace(app), add_rm(app), add_doctor(app),
                                     add_record(app), add_replay(app), add_run(app)};

    // A first word that is neither an option nor a command: say so plainly (CLI11 would only
    // call it an unexpected argument).
    if (argc > 1 && argv[1][0] != '-') {
        bool known = false;
        for (const Command &c : commands)
            known = known || c.app->get_name() == argv[1];
        if (!known) {
            error("'{}' is not a fusdctl command (commands: serve, ls, trace, rm, doctor, record, replay, run)", argv[1]);
            print_error("try 'fusdctl --help'");
            return exit_usage;
        }
    }
    if (argc == 1) {
        error("a command is required (serve, ls, trace, rm, doctor, record, replay, run)");
        print_error("try 'fusdctl --help'");
        return exit_usage;
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))
            return app.exit(e); // --help, --version: printed on stdout, status 0
        error("{}", e.what());
        error("try '{}'", hint_for(app));
        return exit_usage;
    }

    try {
        for (const Command &c : commands)
            if (c.app->parsed())
                return c.run();
    } catch (const UsageError &e) {
        error("{}", e.message);
        error("try '{}'", hint_for(app));
        return exit_usage;
    } catch (const fusd::Error &e) {
        error("{}", e.what());
        return exit_failure;
    } catch (const std::exception &e) {
        error("{}", e.what());
        return exit_failure;
    }
    return exit_usage;
}

int main(int argc, char **argv) { return fusdctl::fusdctl_main(argc, argv); }
