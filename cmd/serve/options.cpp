// SPDX-License-Identifier: MIT
//
// fusdctl serve: checking the options (mode, owner, group, backend, times, pidfile, log).
#include "serve/options.hpp"

#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "common.hpp"

namespace fusdctl::serve {

namespace {

mode_t parse_mode(const std::string &text) {
    std::string_view s = text;
    if (s.starts_with("0o"))
        s.remove_prefix(2);
    if (s.empty() || s.size() > 5 || s.find_first_not_of("01234567") != std::string_view::npos)
        throw UsageError{fmt::format("--mode: '{}' is not an octal mode such as 0660", text)};
    unsigned long m = std::stoul(std::string(s), nullptr, 8);
    if (m > 07777)
        throw UsageError{fmt::format("--mode: '{}' is not an octal mode such as 0660", text)};
    return static_cast<mode_t>(m);
}

// A user or group given by name or number: its id (a number is taken as it is), or UsageError.
template <typename Entry, typename Id>
Id parse_id(const std::string &name, Entry *(*lookup)(const char *), Id Entry::*id, std::string_view option,
            std::string_view kind) {
    if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos)
        return static_cast<Id>(std::stoul(name));
    if (const Entry *entry = lookup(name.c_str()))
        return entry->*id;
    throw UsageError{fmt::format("{}: no such {} '{}'", option, kind, name)};
}

// --protocol and --handler: each is its own way of answering, with no room for the others.
void check_driver_options(const ServeOptions &opts) {
    if (opts.tty && (!opts.protocol.empty() || !opts.handler.empty()))
        throw UsageError{"--tty is a terminal over the command's pipes; not with --protocol or --handler"};
    if (!opts.protocol.empty()) {
        if (opts.protocol != "json")
            throw UsageError{fmt::format("--protocol: '{}' is not a protocol (the one protocol is json)", opts.protocol)};
        if (opts.shared)
            throw UsageError{"--protocol json: its one command serves every open file already; drop --shared"};
        if (!opts.handler.empty())
            throw UsageError{"--protocol and --handler: choose one"};
    }
    if (!opts.handler.empty()) {
        if (!opts.command.empty())
            throw UsageError{fmt::format("--handler {}: no COMMAND after it: the script is run once per call",
                                         opts.handler)};
        if (opts.shared || opts.restart)
            throw UsageError{"--handler: one process per call; --shared and --restart do not apply"};
    }
}

} // namespace

ServeConfig check_options(const ServeOptions &opts) {
    ServeConfig config;
    config.path = fusd::device_path(opts.device);
    check_driver_options(opts);
    if (opts.command.empty() && opts.handler.empty())
        throw UsageError{fmt::format("serve {}: no COMMAND: write 'fusdctl serve {} -- COMMAND [ARG...]'",
                                     opts.device, opts.device)};
    if (opts.restart && !opts.shared && opts.protocol.empty())
        throw UsageError{"--restart needs --shared or --protocol"};
    if (!(opts.grace >= 0) || opts.grace > 3600)
        throw UsageError{"--grace: expected seconds between 0 and 3600"};
    if (!(opts.restart_delay >= 0) || opts.restart_delay > 3600)
        throw UsageError{"--restart-delay: expected seconds between 0 and 3600"};

    config.device.name = config.path;
    config.device.mode = parse_mode(opts.mode);
    if (!opts.owner.empty())
        config.device.owner = parse_id(opts.owner, ::getpwnam, &passwd::pw_uid, "--owner", "user");
    if (!opts.group.empty())
        config.device.group = parse_id(opts.group, ::getgrnam, &group::gr_gid, "--group", "group");
    auto backend = fusd::parse_backend(opts.backend);
    if (!backend)
        throw UsageError{fmt::format("--backend: '{}' is not one of {}", opts.backend, fusd::backend_names())};
    config.device.backend = *backend;
    config.shared = opts.shared;
    config.tty = opts.tty;
    if (opts.tty) {
        // Which backend serves decides how: a FUSE file can never be a terminal.
        try {
            config.pty = fusd::choose_backend(config.device.backend) == fusd::Backend::fuse;
        } catch (const fusd::Error &) {
            config.pty = false; // no backend at all: registering says why
        }
        if (config.pty && !opts.shared)
            throw UsageError{fmt::format("{}: --tty on the fuse backend is a pseudo-terminal, whose callers share "
                                         "one command: add --shared",
                                         config.path)};
    }
    config.protocol = !opts.protocol.empty();
    config.handler = !opts.handler.empty();
    config.restart = opts.restart;
    config.restart_delay = opts.restart_delay;
    config.grace = opts.grace;
    if (!opts.pidfile.empty()) {
        config.pidfile = opts.pidfile;
        if (config.pidfile[0] != '/') {
            char cwd[PATH_MAX];
            if (::getcwd(cwd, sizeof cwd))
                config.pidfile = std::string(cwd) + "/" + config.pidfile;
        }
    }

    try {
        config.command = resolve_command(config.handler ? std::vector<std::string>{opts.handler} : opts.command);
    } catch (const std::system_error &e) {
        throw std::runtime_error(fmt::format("{}: {}", config.path, e.what()));
    }

    if (!opts.log.empty()) {
        config.log.reset(::open(opts.log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
        if (!config.log)
            throw std::runtime_error(fmt::format("{}: --log {}: {}", config.path, opts.log, std::strerror(errno)));
    }
    return config;
}

} // namespace fusdctl::serve
