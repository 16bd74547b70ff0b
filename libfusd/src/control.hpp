// SPDX-License-Identifier: MIT
//
// The daemon's control socket ($FUSD_RUNTIME_DIR/ctl/<pid>-<n>.sock), one per Loop that has
// devices. Protocol: newline-delimited JSON, one request per line:
//   {"cmd":"status"}                      -> {"pid":P,"devices":[{"device","backend","open_files","calls",...}]}
//   {"cmd":"trace","devices":[...]}       -> one JSON trace event per line until the client leaves
//   {"cmd":"unregister","device":"/dev/x"} -> {"ok":true} or {"error":"...","errno":N}
// Anyone may ask for status; trace and unregister need the daemon's uid or root (SO_PEERCRED).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "cleaner.hpp"
#include "fd.hpp"
#include "loop_impl.hpp"

namespace fusd::detail {

class ControlServer {
public:
    explicit ControlServer(LoopImpl &loop);
    ~ControlServer();
    void publish(DeviceState &dev);
    void unpublish(DeviceState &dev);
    void emit(const TraceRecord &rec);

private:
    struct Client {
        Fd fd;
        uid_t uid = 0;
        std::string in;
        bool tracing = false;
        std::set<std::string> filter; // empty: every device
    };
    void accept_clients();
    void on_client(int fd, std::uint32_t events);
    void handle(Client &client, const std::string &line);
    void drop(int fd);
    static bool send_line(int fd, const std::string &line);

    LoopImpl &loop_;
    Fd listen_fd_;
    std::string path_;
    std::uint64_t start_time_ = 0;
    std::map<int, Client> clients_;
    std::unique_ptr<Cleaner> cleaner_; // told "nothing to do" once the destructor removed the socket
};

// Client side, for fusd::admin: one request, one answer line, within timeout_ms.
// Throws fusd::Error on connection failure or timeout.
nlohmann::json control_call(const std::string &socket, const nlohmann::json &request, int timeout_ms);
// The same on a connected socket that stays open: bytes after the answer line (a trace stream's
// first events) are left in `rest`.
nlohmann::json control_exchange(int fd, const nlohmann::json &request, int timeout_ms, std::string &rest);
Fd control_connect(const std::string &socket); // none, with errno set, when it fails

} // namespace fusd::detail
