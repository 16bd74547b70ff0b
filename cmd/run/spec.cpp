// SPDX-License-Identifier: MIT
//
// fusdctl run: parsing and checking PATH=COMMAND and PATH=FILE.
#include "run/spec.hpp"

#include <set>

#include "common.hpp"

namespace fusdctl::run {

const std::vector<std::string> &host_dev_entries() {
    // Character devices and directories bound from the host, then the links made here; ".fusd"
    // is the run's runtime directory.
    static const std::vector<std::string> names = {"null", "zero", "full", "random", "urandom", "tty", "ptmx",
                                                   "fuse", "pts",  "shm",  "fd",     "stdin",   "stdout",
                                                   "stderr", ".fusd"};
    return names;
}

std::vector<std::string> DeviceSpec::server_argv() const {
    // --backend fuse always: the kernel and CUSE backends make their node in the host's /dev,
    // which the namespace does not see and which would outlive it.
    switch (kind) {
    case Kind::serve:
        return {"fusdctl", "serve", "--shared", "--backend", "fuse", path, "--", "sh", "-c", arg};
    case Kind::tty:
        return {"fusdctl", "serve", "--tty", "--shared", "--backend", "fuse", path, "--", "sh", "-c", arg};
    case Kind::replay:
        return {"fusdctl", "replay", "--backend", "fuse", "--as", path, arg};
    }
    return {};
}

namespace {

DeviceSpec parse_one(DeviceSpec::Kind kind, const std::string &option, const std::string &value) {
    const char *what = kind == DeviceSpec::Kind::replay ? "FILE" : "COMMAND";
    auto eq = value.find('=');
    if (eq == std::string::npos)
        throw UsageError{fmt::format("run: {} '{}': expected PATH={}", option, value, what)};
    DeviceSpec spec{kind, value.substr(0, eq), value.substr(eq + 1)};
    const std::string &p = spec.path;
    if (p.empty() || p[0] != '/')
        throw UsageError{fmt::format("run: {} '{}': PATH must be absolute (/dev/NAME)", option, value)};
    if (!p.starts_with("/dev/") || p.size() == 5 || p.ends_with("/"))
        throw UsageError{fmt::format("run: {} '{}': PATH must be a file under /dev (/dev/NAME)", option, value)};
    std::string rest = p.substr(5);
    for (std::size_t start = 0; start <= rest.size();) {
        std::size_t end = rest.find('/', start);
        if (end == std::string::npos)
            end = rest.size();
        std::string part = rest.substr(start, end - start);
        if (part.empty() || part == "." || part == "..")
            throw UsageError{fmt::format("run: {} '{}': PATH has an empty, '.' or '..' component", option, value)};
        if (start == 0)
            for (const std::string &name : host_dev_entries())
                if (part == name)
                    throw UsageError{fmt::format("run: {} '{}': /dev/{} is the host's, kept in the private /dev",
                                                 option, value, name)};
        start = end + 1;
    }
    if (spec.arg.empty())
        throw UsageError{fmt::format("run: {} '{}': the {} after '=' is empty", option, value, what)};
    return spec;
}

} // namespace

std::vector<DeviceSpec> check_options(const RunOptions &opts) {
    std::vector<DeviceSpec> specs;
    for (const std::string &v : opts.serve)
        specs.push_back(parse_one(DeviceSpec::Kind::serve, "--serve", v));
    for (const std::string &v : opts.tty)
        specs.push_back(parse_one(DeviceSpec::Kind::tty, "--tty", v));
    for (const std::string &v : opts.replay)
        specs.push_back(parse_one(DeviceSpec::Kind::replay, "--replay", v));
    std::set<std::string> seen;
    for (const DeviceSpec &s : specs)
        if (!seen.insert(s.path).second)
            throw UsageError{fmt::format("run: {} is named twice", s.path)};
    // One device's path inside another's would need a node to be a directory too.
    for (const DeviceSpec &s : specs)
        for (const DeviceSpec &t : specs)
            if (t.path.starts_with(s.path + "/"))
                throw UsageError{fmt::format("run: {} lies under the device {}", t.path, s.path)};
    if (opts.program.empty())
        throw UsageError{"run: PROGRAM is missing: fusdctl run [OPTIONS] -- PROGRAM [ARG...]"};
    return specs;
}

} // namespace fusdctl::run
