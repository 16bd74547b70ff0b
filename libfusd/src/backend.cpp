// SPDX-License-Identifier: MIT
//
// The table of backends (see backend.hpp) and everything that reads it: names, probing (what
// `auto` picks, what `fusdctl doctor` shows), the transport factory, forced removal and the
// stale cleanup.
#include "backend.hpp"

#include <cerrno>
#include <cstdlib>
#include <sys/stat.h>

namespace fusd {

namespace detail {

namespace {

constexpr std::string_view kAutomatic = "auto";

// Every backend, in the order `auto` tries them.
const BackendRow *const kTable[] = {&kernel_backend, &cuse_backend, &fuse_backend};

std::string built_without(const BackendRow &row)
{
    return "this libfusd was built without the " + std::string(row.name) + " transport (" +
           std::string(row.build_option) + "=OFF)";
}

BackendStatus probe(const BackendRow &row)
{
    if (!row.built())
        return {row.backend, false, built_without(row), std::string(row.differences)};
    BackendStatus s = row.probe();
    s.differences.insert(0, row.differences); // the probe adds what depends on this machine
    return s;
}

} // namespace

const BackendRow *find_backend(std::string_view name)
{
    for (const BackendRow *row : kTable)
        if (row->name == name)
            return row;
    return nullptr;
}

const BackendRow *find_backend(Backend backend)
{
    for (const BackendRow *row : kTable)
        if (row->backend == backend)
            return row;
    return nullptr;
}

bool node_goes_with_daemon(const std::string &) { return false; }

std::unique_ptr<Transport> make_transport(Backend backend, DeviceState &device)
{
    // Every backend makes the node itself; a path that exists (stale fusd leftovers were cleaned
    // by claim_name) is someone else's and is never replaced.
    struct stat st{};
    if (lstat(device.path.c_str(), &st) == 0)
        throw Error(EEXIST, device.path + ": already exists and is not a fusd device; not replacing it");
    const BackendRow *row = find_backend(backend);
    if (!row)
        throw Error(EINVAL, "make_transport: no backend chosen");
    if (!row->built())
        throw Error(ENODEV, device.path + ": " + built_without(*row));
    // A parent made here may be removed under us by another fusd daemon whose last node below it
    // just went (it is empty until our node appears): then make it again.
    for (int attempt = 1;; ++attempt) {
        make_parents(device.path);
        try {
            return row->open(device);
        } catch (const Error &e) {
            remove_made_parents(device.path);
            if (e.code().value() != ENOENT || attempt == 3)
                throw;
        } catch (...) {
            remove_made_parents(device.path);
            throw;
        }
    }
}

void force_remove_node(const std::string &path, const std::string &backend)
{
    // An entry naming no backend of ours was not written by this libfusd: guessing how its node
    // is removed could touch something that is not fusd's.
    const BackendRow *row = find_backend(backend);
    if (!row)
        throw Error(EINVAL, path + ": its registry entry names an unknown backend '" + backend + "'; not removing it");
    if (!row->built())
        throw Error(ENODEV, path + ": served through the " + backend + " backend; " + built_without(*row));
    row->force_remove(path);
    remove_made_parents(path);
}

bool clean_stale_node(const std::string &path, const std::string &backend)
{
    bool cleaned = false;
    if (backend.empty()) { // the entry was lost: whatever any backend's dead daemon may have left
        for (const BackendRow *row : kTable)
            if (row->built())
                cleaned |= row->clean_stale(path);
    } else {
        const BackendRow *row = find_backend(backend);
        cleaned = row && row->built() && row->clean_stale(path); // unknown: not ours to guess
    }
    // A dead daemon's node may have gone with it (kernel, CUSE): the directories fusd made for
    // it stay until now.
    remove_made_parents(path);
    return cleaned;
}

} // namespace detail

std::string_view to_string(Backend backend)
{
    if (backend == Backend::automatic)
        return detail::kAutomatic;
    const detail::BackendRow *row = detail::find_backend(backend);
    return row ? row->name : "?";
}

std::string backend_names()
{
    std::string names(detail::kAutomatic);
    for (const detail::BackendRow *row : detail::kTable)
        names += ", " + std::string(row->name);
    return names;
}

std::optional<Backend> parse_backend(std::string_view name)
{
    if (name == detail::kAutomatic)
        return Backend::automatic;
    if (const detail::BackendRow *row = detail::find_backend(name))
        return row->backend;
    return std::nullopt;
}

std::vector<BackendStatus> probe_backends()
{
    std::vector<BackendStatus> out;
    for (const detail::BackendRow *row : detail::kTable)
        out.push_back(detail::probe(*row));
    return out;
}

Backend choose_backend(Backend wanted)
{
    // $FUSD_BACKEND steers `auto` for every libfusd program (tests run one suite per backend).
    if (wanted == Backend::automatic)
        if (const char *env = std::getenv("FUSD_BACKEND"); env && *env) {
            auto forced = parse_backend(env);
            if (!forced)
                throw Error(EINVAL, std::string("FUSD_BACKEND: unknown backend '") + env + "' (" + backend_names() + ")");
            wanted = *forced;
        }
    std::string why;
    for (const BackendStatus &s : probe_backends()) {
        if (wanted != Backend::automatic && s.backend != wanted)
            continue;
        if (s.usable)
            return s.backend;
        why += (why.empty() ? "" : "; ") + std::string(to_string(s.backend)) + ": " + s.reason;
    }
    throw Error(ENODEV, "no usable fusd backend (" + why + ")");
}

} // namespace fusd
