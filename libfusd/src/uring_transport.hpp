// SPDX-License-Identifier: MIT
//
// The FUSE backend's transports and how one is chosen: libfuse's session (fuse_transport.cpp)
// unless FUSD_FUSE_TRANSPORT=uring asks for FUSE over io_uring (uring_transport.cpp), which needs
// the kernel's support and its enable_uring parameter on (see choose_fuse_transport() for why it
// is not the default).
#pragma once

#include <memory>
#include <string>

#include "core.hpp"

namespace fusd::detail {

struct FuseTransportChoice {
    bool uring = false;  // the transport FUSE devices use
    std::string why;     // for people: fusdctl doctor, error messages
    bool error = false;  // FUSD_FUSE_TRANSPORT asks for what cannot be had: `why` says so
};
// Reads FUSD_FUSE_TRANSPORT and the fuse module's enable_uring.
FuseTransportChoice choose_fuse_transport();

std::unique_ptr<Transport> make_libfuse_fuse_transport(DeviceState &device);
std::unique_ptr<Transport> make_uring_fuse_transport(DeviceState &device);

} // namespace fusd::detail
