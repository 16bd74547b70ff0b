// SPDX-License-Identifier: MIT
// fusd::admin: the machine-wide view (fusdctl ls, rm, trace) over the registry and control sockets.
#include "fusd/admin.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <map>
#include <set>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "cleaner.hpp"
#include "control.hpp"
#include "core.hpp"
#include "fd.hpp"
#include "loop_impl.hpp"
#include "name_lock.hpp"
#include "registry.hpp"

namespace fusd::admin {

using detail::realtime_ns;
namespace registry = detail::registry;

namespace {

constexpr const char *kPty = "pty";

// A pty entry's symlink, if it still leads where the entry says.
void remove_pty_link(const nlohmann::json &entry)
{
    std::string path = entry.value("device", ""), target = entry.value("target", "");
    char buf[256];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
    if (!target.empty() && n > 0 && std::string(buf, std::size_t(n)) == target)
        ::unlink(path.c_str());
}

// Removes what a dead daemon left for entry's name, under the name's lock and only if the entry
// is still that dead daemon's (a new daemon may have taken the name meanwhile: see name_lock.hpp).
void clean_dead(const nlohmann::json &listed)
{
    std::string path = listed.value("device", "");
    detail::NameLock lock(path);
    auto entry = registry::find_entry(path);
    if (!entry || entry->value("pid", 0) != listed.value("pid", 0) ||
        entry->value("start_time", std::uint64_t(0)) != listed.value("start_time", std::uint64_t(0)) ||
        registry::entry_alive(*entry))
        return;
    if (entry->value("backend", "") == kPty)
        remove_pty_link(*entry);
    else
        detail::clean_stale_node(path, entry->value("backend", ""));
    registry::remove_dead_entry(*entry);
}

} // namespace

PtyEntry::PtyEntry(const std::string &path, const std::string &target) : path_(path)
{
    nlohmann::json entry = {
        {"device", path},
        {"backend", kPty},
        {"pid", ::getpid()},
        {"start_time", registry::process_start_time(::getpid())},
        {"command", detail::own_command_line()},
        {"target", target},
        {"created_ns", realtime_ns()},
    };
    registry::write_entry(entry);
}

PtyEntry::~PtyEntry() { registry::remove_entry(path_, ::getpid()); }

std::string scratch_dir()
{
    std::string root = registry::dir(), dir = registry::scratch_dir_of(::getpid(), registry::process_start_time(::getpid()));
    for (const std::string &d : {root, root + "/scratch"})
        if (::mkdir(d.c_str(), 0755) < 0 && errno != EEXIST)
            throw Error(errno, "cannot create " + d + ": " + std::strerror(errno));
    if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST)
        throw Error(errno, "cannot create " + dir + ": " + std::strerror(errno));
    return dir;
}

std::vector<DeviceInfo> list_devices()
{
    registry::remove_dead_scratch_dirs();
    std::vector<DeviceInfo> out;
    std::map<std::string, nlohmann::json> status_by_socket;
    for (const auto &entry : registry::read_entries()) {
        DeviceInfo info;
        info.path = entry.value("device", "");
        info.backend = entry.value("backend", "");
        info.pid = entry.value("pid", 0);
        info.command = entry.value("command", "");
        if (!registry::entry_alive(entry)) {
            clean_dead(entry);
            info.state = "dead";
            out.push_back(std::move(info));
            continue;
        }
        if (info.backend == kPty) { // no control socket: alive is live
            info.state = "live";
            info.uptime_seconds = double(realtime_ns() - entry.value("created_ns", std::int64_t(0))) / 1e9;
            out.push_back(std::move(info));
            continue;
        }
        std::string socket = entry.value("socket", "");
        if (!status_by_socket.count(socket)) {
            try {
                status_by_socket[socket] = detail::control_call(socket, {{"cmd", "status"}}, 1000);
            } catch (const Error &) {
                status_by_socket[socket] = nullptr;
            }
        }
        const auto &status = status_by_socket[socket];
        info.state = "unresponsive";
        info.uptime_seconds = double(realtime_ns() - entry.value("created_ns", std::int64_t(0))) / 1e9;
        if (status.is_object() && status.contains("devices"))
            for (const auto &d : status["devices"])
                if (d.value("device", "") == info.path) {
                    info.state = "live";
                    info.open_files = d.value("open_files", std::uint64_t(0));
                    info.calls = d.value("calls", std::uint64_t(0));
                }
        out.push_back(std::move(info));
    }
    std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.path < b.path; });
    return out;
}

std::string cleaner_program(std::string &why) { return detail::cleaner_program(why); }

void remove_device(const std::string &name, bool force)
{
    std::string path = device_path(name);
    auto entry = registry::find_entry(path);
    if (!entry) {
        detail::NameLock lock(path); // not while a registration of the name is under way
        if (!registry::find_entry(path) && detail::clean_stale_node(path, ""))
            return; // leftovers of a daemon whose entry was lost
        throw Error(ENOENT, path + ": no such fusd device");
    }
    std::string backend = entry->value("backend", "");
    pid_t pid = entry->value("pid", 0);
    if (!registry::entry_alive(*entry)) {
        clean_dead(*entry);
        return;
    }
    if (backend == kPty) {
        // Its process serves nothing we could ask: a signal stops it, and it removes the link.
        if (::kill(pid, force ? SIGKILL : SIGTERM) != 0 && errno != ESRCH)
            throw Error(errno, path + ": cannot signal its process " + std::to_string(pid) + ": " + std::strerror(errno));
        if (force) {
            remove_pty_link(*entry);
            registry::remove_entry(path, pid);
            return;
        }
    } else if (force) {
        // The daemon may be stopped or hung: do not ask it. The backend releases the callers.
        detail::force_remove_node(path, backend);
        registry::remove_entry(path, pid);
        return;
    }
    if (backend != kPty) {
        auto reply = detail::control_call(entry->value("socket", ""), {{"cmd", "unregister"}, {"device", path}}, 5000);
        if (reply.contains("error"))
            throw Error(reply.value("errno", EIO), path + ": " + reply.value("error", std::string("unregister failed")));
    }
    // The daemon removes the node on its next loop turn: wait for it, briefly.
    for (int i = 0; i < 500; ++i) {
        auto now = registry::find_entry(path);
        if (!now || now->value("pid", 0) != pid)
            return;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw Error(ETIMEDOUT, path + ": the daemon (pid " + std::to_string(pid) + ") did not unregister in 5 s; try --force");
}

// ---- trace -------------------------------------------------------------------------------------

struct TraceSubscription::Impl {
    std::vector<std::string> devices;
    struct Peer {
        Fd fd;
        std::string in;
    };
    std::map<std::string, Peer> peers; // by control socket path
    std::set<std::string> refused;     // control sockets whose daemon refused us: not asked again
    std::int64_t last_scan_ns = 0;

    void scan()
    {
        last_scan_ns = detail::monotonic_ns();
        for (const auto &entry : registry::read_entries()) {
            std::string dev = entry.value("device", "");
            if (!devices.empty() && std::find(devices.begin(), devices.end(), dev) == devices.end())
                continue;
            std::string socket = entry.value("socket", "");
            if (peers.count(socket) || refused.count(socket) || !registry::entry_alive(entry))
                continue;
            Fd fd = detail::control_connect(socket);
            if (!fd)
                continue;
            // The daemon's {"ok":true} means every call from then on is traced: the subscription
            // is in force when the constructor returns.
            std::string rest;
            nlohmann::json reply;
            try {
                reply = detail::control_exchange(fd.get(), {{"cmd", "trace"}, {"devices", devices}}, 2000, rest);
            } catch (const Error &) {
                continue; // gone meanwhile, or hung: a later scan tries again
            }
            if (reply.contains("error") && !devices.empty())
                // A device asked for by name whose traffic the caller may not see: say so
                // rather than print nothing as if it were idle.
                throw Error(reply.value("errno", EPERM), dev + ": " + reply.value("error", std::string("refused")) +
                                                             " (served by pid " + std::to_string(entry.value("pid", 0)) + ")");
            if (!reply.value("ok", false)) {
                refused.insert(socket); // tracing everything: only what the caller may see
                continue;
            }
            peers[socket].in = std::move(rest);
            peers[socket].fd = std::move(fd);
        }
    }

    static std::optional<TraceEvent> parse(const std::string &line)
    {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("op"))
            return std::nullopt; // the {"ok":true} greeting, or an error line
        TraceEvent e;
        e.time_ns = j.value("time_ns", std::int64_t(0));
        e.device = j.value("device", "");
        e.pid = j.value("pid", 0);
        e.comm = j.value("comm", "");
        std::string op = j.value("op", "");
        for (Op o : {Op::open, Op::release, Op::read, Op::write, Op::ioctl, Op::poll, Op::interrupt, Op::mmap})
            if (op == to_string(o))
                e.op = o;
        e.size = j.value("size", std::uint64_t(0));
        e.offset = j.value("offset", std::uint64_t(0));
        e.ioctl = j.value("ioctl", std::uint32_t(0));
        e.note = j.value("note", "");
        e.result = j.value("result", 0);
        e.latency_us = j.value("latency_us", std::uint64_t(0));
        return e;
    }
};

TraceSubscription::TraceSubscription(std::vector<std::string> devices) : impl_(std::make_unique<Impl>())
{
    for (auto &d : devices)
        impl_->devices.push_back(device_path(d));
    impl_->scan();
}

TraceSubscription::~TraceSubscription() = default;

std::optional<TraceEvent> TraceSubscription::next(int timeout_ms)
{
    const std::int64_t deadline = timeout_ms < 0 ? INT64_MAX : detail::monotonic_ns() + std::int64_t(timeout_ms) * 1'000'000;
    for (;;) {
        for (auto &[socket, peer] : impl_->peers) {
            std::size_t nl;
            while ((nl = peer.in.find('\n')) != std::string::npos) {
                std::string line = peer.in.substr(0, nl);
                peer.in.erase(0, nl + 1);
                if (auto e = Impl::parse(line))
                    return e;
            }
        }
        std::int64_t now = detail::monotonic_ns();
        if (now >= deadline)
            return std::nullopt;
        if (now - impl_->last_scan_ns > 500'000'000)
            impl_->scan(); // daemons that started after we subscribed
        std::vector<pollfd> fds;
        std::vector<std::string> keys;
        for (auto &[socket, peer] : impl_->peers) {
            fds.push_back({peer.fd.get(), POLLIN, 0});
            keys.push_back(socket);
        }
        int wait_ms = int(std::min<std::int64_t>(500, (deadline - now) / 1'000'000 + 1));
        int r = ::poll(fds.data(), fds.size(), wait_ms);
        if (r <= 0)
            continue;
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (!fds[i].revents)
                continue;
            auto &peer = impl_->peers[keys[i]];
            char buf[8192];
            ssize_t n = ::read(peer.fd.get(), buf, sizeof buf);
            if (n <= 0) {
                impl_->peers.erase(keys[i]); // gone (its socket closes); a later scan may find a new one
                continue;
            }
            peer.in.append(buf, std::size_t(n));
        }
    }
}

} // namespace fusd::admin
