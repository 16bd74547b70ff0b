// SPDX-License-Identifier: MIT
//
// One request line of a daemon's control socket (the protocol: control.hpp), read into what
// ControlServer acts on. A pure function, so that tests/fuzz can give it any bytes.
#pragma once

#include <set>
#include <string>
#include <string_view>

namespace fusd::detail {

struct ControlRequest {
    enum class Cmd { status, trace, unregister, invalid } cmd = Cmd::invalid;
    std::set<std::string> devices; // trace: only these devices (empty: every device)
    std::string device;            // unregister: the device to remove
    int error = 0;                 // invalid: the errno to answer with, and why
    std::string message;
};

ControlRequest parse_control_request(std::string_view line);

} // namespace fusd::detail
