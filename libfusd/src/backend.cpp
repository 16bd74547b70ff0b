// SPDX-License-Identifier: MIT
// Backend names, probing (what `auto` picks, what `fusdctl doctor` shows) and the transport factory.
#include <cerrno>
#include <cstdlib>
#include <sys/stat.h>

#include "core.hpp"

namespace fusd {

std::string_view to_string(Backend backend)
{
    switch (backend) {
    case Backend::automatic: return "auto";
    case Backend::kernel: return "kernel";
    case Backend::cuse: return "cuse";
    case Backend::fuse: return "fuse";
    }
    return "?";
}

std::optional<Backend> parse_backend(std::string_view name)
{
    for (Backend b : {Backend::automatic, Backend::kernel, Backend::cuse, Backend::fuse})
        if (name == to_string(b))
            return b;
    return std::nullopt;
}

std::vector<BackendStatus> probe_backends()
{
    return {detail::probe_kernel(), detail::probe_cuse(), detail::probe_fuse()};
}

Backend choose_backend(Backend wanted)
{
    // $FUSD_BACKEND steers `auto` for every libfusd program (tests run one suite per backend).
    if (wanted == Backend::automatic)
        if (const char *env = std::getenv("FUSD_BACKEND"); env && *env) {
            auto forced = parse_backend(env);
            if (!forced)
                throw Error(EINVAL, std::string("FUSD_BACKEND: unknown backend '") + env + "' (auto, kernel, cuse, fuse)");
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

namespace detail {

std::unique_ptr<Transport> make_transport(Backend backend, DeviceState &device)
{
    // Every backend makes the node itself; a path that exists (stale fusd leftovers were cleaned
    // by claim_name) is someone else's and is never replaced.
    struct stat st{};
    if (lstat(device.path.c_str(), &st) == 0)
        throw Error(EEXIST, device.path + ": already exists and is not a fusd device; not replacing it");
    switch (backend) {
    case Backend::kernel: return make_kernel_transport(device);
    case Backend::cuse: return make_cuse_transport(device);
    case Backend::fuse: return make_fuse_transport(device);
    case Backend::automatic: break;
    }
    throw Error(EINVAL, "make_transport: no backend chosen");
}

void force_remove_node(const std::string &path, const std::string &backend)
{
    if (backend == "kernel")
        force_remove_kernel(path);
    else if (backend == "cuse")
        force_remove_cuse(path);
    else
        force_remove_fuse(path);
}

#ifndef FUSD_WITH_KERNEL
BackendStatus probe_kernel()
{
    return {Backend::kernel, false, "this libfusd was built without the kernel transport", ""};
}
std::unique_ptr<Transport> make_kernel_transport(DeviceState &device)
{
    throw Error(ENODEV, device.path + ": this libfusd was built without the kernel transport");
}
void force_remove_kernel(const std::string &) {}
#endif

#ifndef FUSD_WITH_CUSE
BackendStatus probe_cuse()
{
    return {Backend::cuse, false, "this libfusd was built without the CUSE transport", ""};
}
std::unique_ptr<Transport> make_cuse_transport(DeviceState &device)
{
    throw Error(ENODEV, device.path + ": this libfusd was built without the CUSE transport");
}
void force_remove_cuse(const std::string &) {}
#endif

} // namespace detail
} // namespace fusd
