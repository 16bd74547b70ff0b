// SPDX-License-Identifier: MIT
// Reading one control socket request line (see control_request.hpp).
#include "control_request.hpp"

#include <cerrno>

#include <nlohmann/json.hpp>

namespace fusd::detail {

ControlRequest parse_control_request(std::string_view line)
{
    ControlRequest out;
    auto req = nlohmann::json::parse(line, nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("cmd") || !req["cmd"].is_string()) {
        out.error = EINVAL;
        out.message = "malformed request";
        return out;
    }
    std::string cmd = req["cmd"];
    if (cmd == "status") {
        out.cmd = ControlRequest::Cmd::status;
    } else if (cmd == "trace") {
        out.cmd = ControlRequest::Cmd::trace;
        if (req.contains("devices") && req["devices"].is_array())
            for (const auto &d : req["devices"])
                if (d.is_string())
                    out.devices.insert(d.get<std::string>());
    } else if (cmd == "unregister") {
        // Anything but a string here once threw out of the daemon's loop and ended the daemon.
        if (req.contains("device") && !req["device"].is_string()) {
            out.error = EINVAL;
            out.message = "malformed request: \"device\" is not a string";
            return out;
        }
        out.cmd = ControlRequest::Cmd::unregister;
        out.device = req.value("device", "");
    } else {
        out.error = EINVAL;
        out.message = "unknown command '" + cmd + "'";
    }
    return out;
}

} // namespace fusd::detail
