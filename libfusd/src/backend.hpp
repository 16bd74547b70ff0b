// SPDX-License-Identifier: MIT
//
// The table of backends: one BackendRow per backend, each defined in that backend's own row file
// (kernel_backend.cpp, cuse_backend.cpp, fuse_backend.cpp), listed once in backend.cpp in the
// order `auto` tries them.
//
// Everything that differs between backends and is not a request (naming, probing, making a node,
// removing one behind a stopped daemon, cleaning one a dead daemon left) is reached through a
// row: choose_backend() and FUSD_BACKEND, make_transport(), `fusdctl doctor` (probe_backends()),
// `fusdctl rm --force` (force_remove_node()) and the stale cleanup of `fusdctl ls` and of the
// next registration (clean_stale_node()). No backend name is compared anywhere else.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core.hpp"

namespace fusd::detail {

struct BackendRow {
    Backend backend;
    std::string_view name;         // as in --backend, FUSD_BACKEND, the registry and doctor
    std::string_view differences;  // what a user sees that differs from a real character device
    std::string_view build_option; // the CMake option that leaves it out ("" when always built)

    // The backend's functions, all null when this libfusd was built without it.
    BackendStatus (*probe)() = nullptr;                                // usable here, or why not
    std::unique_ptr<Transport> (*open)(DeviceState &device) = nullptr; // makes the node; throws fusd::Error
    // Removes a node whose daemon may be alive but stopped or hung, releasing its blocked callers.
    void (*force_remove)(const std::string &path) = nullptr;
    // Removes what a dead daemon left at path. Returns true when something was removed.
    bool (*clean_stale)(const std::string &path) = nullptr;

    bool built() const { return probe != nullptr; }
};

extern const BackendRow kernel_backend;
extern const BackendRow cuse_backend;
extern const BackendRow fuse_backend;

// The row named `name` ("auto" is no row), or null.
const BackendRow *find_backend(std::string_view name);
// The row of `backend` (Backend::automatic is no row), or null.
const BackendRow *find_backend(Backend backend);

// clean_stale for the backends whose node goes when the daemon's descriptor closes (the kernel
// module, CUSE): a dead daemon leaves nothing to clean.
bool node_goes_with_daemon(const std::string &path);

} // namespace fusd::detail
