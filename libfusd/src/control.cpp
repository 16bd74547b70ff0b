// SPDX-License-Identifier: MIT
#include "control.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control_request.hpp"
#include "registry.hpp"

namespace fusd::detail {

namespace {
std::atomic<int> g_socket_serial{0};


sockaddr_un socket_address(const std::string &path)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        throw Error(ENAMETOOLONG, "control socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}
} // namespace

ControlServer::ControlServer(LoopImpl &loop) : loop_(loop)
{
    start_time_ = registry::process_start_time(getpid());
    mkdir(registry::dir().c_str(), 0755);
    mkdir(registry::sockets_dir().c_str(), 0755);
    path_ = registry::sockets_dir() + "/" + std::to_string(getpid()) + "-" + std::to_string(++g_socket_serial) + ".sock";
    unlink(path_.c_str());
    listen_fd_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listen_fd_)
        throw Error(errno, "control socket: " + std::string(std::strerror(errno)));
    sockaddr_un addr = socket_address(path_);
    if (bind(listen_fd_.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0 ||
        listen(listen_fd_.get(), 16) < 0) {
        int err = errno;
        throw Error(err, "control socket " + path_ + ": " + std::strerror(err));
    }
    chmod(path_.c_str(), 0666); // status is public; trace and unregister check SO_PEERCRED
    loop_.watch(listen_fd_.get(), EPOLLIN, [this](std::uint32_t) { accept_clients(); });
    cleaner_ = std::make_unique<Cleaner>(start_time_, path_);
}

ControlServer::~ControlServer()
{
    while (!clients_.empty())
        drop(clients_.begin()->first);
    loop_.unwatch(listen_fd_.get());
    unlink(path_.c_str());
}

void ControlServer::publish(DeviceState &dev)
{
    nlohmann::json entry = {
        {"device", dev.path},
        {"backend", std::string(to_string(dev.transport->backend()))},
        {"pid", getpid()},
        {"start_time", start_time_},
        {"command", dev.options.command_line},
        {"socket", path_},
        {"created_ns", dev.created_ns},
    };
    registry::write_entry(entry);
}

void ControlServer::unpublish(DeviceState &dev) { registry::remove_entry(dev.path, getpid()); }

void ControlServer::accept_clients()
{
    for (;;) {
        int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        ucred cred{};
        socklen_t len = sizeof cred;
        Client client;
        client.fd.reset(fd);
        client.uid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.uid : uid_t(-1);
        clients_[fd] = std::move(client);
        loop_.watch(fd, EPOLLIN | EPOLLRDHUP, [this, fd](std::uint32_t ev) { on_client(fd, ev); });
    }
}

void ControlServer::on_client(int fd, std::uint32_t events)
{
    auto it = clients_.find(fd);
    if (it == clients_.end())
        return;
    Client &client = it->second;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
        drop(fd);
        return;
    }
    if (n > 0)
        client.in.append(buf, std::size_t(n));
    if (client.in.size() > 65536) { // nobody legitimate sends that much
        drop(fd);
        return;
    }
    std::size_t nl;
    while ((nl = client.in.find('\n')) != std::string::npos) {
        std::string line = client.in.substr(0, nl);
        client.in.erase(0, nl + 1);
        handle(client, line);
        if (!clients_.count(fd))
            return;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        drop(fd);
}

void ControlServer::handle(Client &client, const std::string &line)
{
    auto reply_error = [&](int err, const std::string &msg) {
        send_line(client.fd.get(), nlohmann::json{{"error", msg}, {"errno", err}}.dump());
    };
    ControlRequest req = parse_control_request(line);
    if (req.cmd == ControlRequest::Cmd::invalid)
        return reply_error(req.error, req.message);
    bool privileged = client.uid == 0 || client.uid == geteuid();
    if (req.cmd == ControlRequest::Cmd::status) {
        nlohmann::json devices = nlohmann::json::array();
        for (const auto &dev : loop_.device_states())
            devices.push_back({
                {"device", dev->path},
                {"backend", std::string(to_string(dev->transport->backend()))},
                {"open_files", dev->open_files.load()},
                {"calls", dev->calls.load()},
                {"created_ns", dev->created_ns},
                {"command", dev->options.command_line},
            });
        send_line(client.fd.get(), nlohmann::json{{"pid", getpid()}, {"devices", devices}}.dump());
    } else if (req.cmd == ControlRequest::Cmd::trace) {
        if (!privileged)
            return reply_error(EPERM, "tracing needs root or the daemon's user");
        if (!client.tracing)
            loop_.add_tracer(1);
        client.tracing = true;
        client.filter = std::move(req.devices);
        send_line(client.fd.get(), nlohmann::json{{"ok", true}}.dump());
    } else {
        if (!privileged)
            return reply_error(EPERM, "unregistering needs root or the daemon's user");
        std::string path = req.device;
        for (const auto &dev : loop_.device_states())
            if (dev->path == path) {
                send_line(client.fd.get(), nlohmann::json{{"ok", true}}.dump());
                // Removed on the next turn of the loop: removing the last device also ends
                // this server, which must not happen under its own handler.
                LoopImpl &loop = loop_;
                loop_.post([&loop, path] {
                    for (const auto &d : loop.device_states())
                        if (d->path == path) {
                            loop.remove(*d->face);
                            return;
                        }
                });
                return;
            }
        reply_error(ENOENT, path + ": not served by this process");
    }
}

void ControlServer::emit(const TraceRecord &rec)
{
    std::string line;
    std::vector<int> dead;
    for (auto &[fd, client] : clients_) {
        if (!client.tracing || (!client.filter.empty() && !client.filter.count(rec.device)))
            continue;
        if (line.empty())
            line = nlohmann::json{
                {"time_ns", rec.time_ns}, {"device", rec.device}, {"pid", rec.pid}, {"comm", rec.comm.empty() ? "?" : rec.comm},
                {"op", std::string(to_string(rec.op))}, {"size", rec.size}, {"offset", rec.offset},
                {"ioctl", rec.ioctl}, {"result", rec.result}, {"latency_us", rec.latency_us}, {"note", rec.note},
            }.dump();
        if (!send_line(fd, line) && errno != EAGAIN)
            dead.push_back(fd); // a slow subscriber loses events; a gone one is dropped
    }
    for (int fd : dead)
        drop(fd);
}

void ControlServer::drop(int fd)
{
    auto it = clients_.find(fd);
    if (it == clients_.end())
        return;
    if (it->second.tracing)
        loop_.add_tracer(-1);
    loop_.unwatch(fd);
    clients_.erase(it); // closes fd
}

bool ControlServer::send_line(int fd, const std::string &line)
{
    std::string out = line + "\n";
    ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n == ssize_t(out.size());
}

Fd control_connect(const std::string &socket_path)
{
    // Non-blocking, because a blocking connect() to a daemon that never accepts (stopped, or
    // hung) waits forever once its backlog is full: then connect() fails at once with EAGAIN and
    // the daemon counts as unresponsive. The exchange that follows has its own time limit.
    Fd fd{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (!fd)
        return fd;
    sockaddr_un addr = socket_address(socket_path);
    if (connect(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0 ||
        fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK) < 0) {
        int err = errno;
        fd.reset();
        errno = err;
    }
    return fd;
}

nlohmann::json control_exchange(int fd, const nlohmann::json &request, int timeout_ms, std::string &rest)
{
    std::string out = request.dump() + "\n";
    if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != ssize_t(out.size()))
        throw Error(errno, "cannot talk to the daemon: " + std::string(std::strerror(errno)));
    std::string in;
    char buf[4096];
    while (in.find('\n') == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0)
            throw Error(ETIMEDOUT, "the daemon did not answer");
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0)
            throw Error(ECONNRESET, "the daemon closed the connection");
        in.append(buf, std::size_t(n));
    }
    std::size_t nl = in.find('\n');
    rest = in.substr(nl + 1);
    auto reply = nlohmann::json::parse(in.substr(0, nl), nullptr, false);
    if (reply.is_discarded())
        throw Error(EPROTO, "the daemon sent a malformed answer");
    return reply;
}

nlohmann::json control_call(const std::string &socket_path, const nlohmann::json &request, int timeout_ms)
{
    Fd fd = control_connect(socket_path);
    if (!fd)
        throw Error(errno, "cannot reach daemon at " + socket_path + ": " + std::strerror(errno));
    std::string rest;
    try {
        return control_exchange(fd.get(), request, timeout_ms, rest);
    } catch (const Error &e) {
        throw Error(e.code().value(), "daemon at " + socket_path + ": " + e.what());
    }
}

} // namespace fusd::detail
