// SPDX-License-Identifier: MIT
//
// libfusd internals shared by the core (loop.cpp) and the transports (one per backend).
//
// A transport is one device's connection to its backend. It decodes the backend's messages into
// RequestSlots and hands them to LoopImpl::deliver(); it encodes the answers the core passes to
// Transport::reply(). It is the only code that knows FUSE, CUSE or the fusd UAPI; the core knows
// no backend. Adding a backend touches: a value in fusd::Backend (fusd.hpp), its transport file
// (NAME_transport.cpp, defining the functions declared at the end of this file), its row file
// (NAME_backend.cpp, see backend.hpp), its line in the table (backend.cpp), the libfusd
// CMakeLists.txt, and the lists of names for people: README, libfusd(3), the shell completions.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <sched.h>
#include <shared_mutex> // std::shared_lock, for SharedSpinLock
#include <string>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <vector>

#include "fusd/fusd.hpp"

namespace fusd::detail {

struct DeviceState;
class LoopImpl;

// Locks for the request path, held for a few instructions: uncontended they are one atomic
// instruction and never a call into libc. Why: in the TCG guest, where every page a request
// touches costs a TLB refill after each context switch, the pthread lock and unlock calls of the
// hot path stood out in a kernel-backend daemon's profile (perf, 1-byte reads). Waiters yield.
class SpinLock {
public:
    void lock() noexcept
    {
        while (locked_.exchange(true, std::memory_order_acquire))
            while (locked_.load(std::memory_order_relaxed))
                sched_yield();
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
    std::atomic<bool> locked_{false};
};

// Readers (replies and notifies, from any thread) share it; the writer (device shutdown, rare)
// waits for them to leave. A waiting writer keeps new readers out, so it cannot starve.
class SharedSpinLock {
public:
    void lock_shared() noexcept
    {
        for (;;) {
            int s = state_.load(std::memory_order_relaxed);
            if (!(s & kWriter) && state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire))
                return;
            sched_yield();
        }
    }
    void unlock_shared() noexcept { state_.fetch_sub(1, std::memory_order_release); }
    void lock() noexcept
    {
        while (state_.fetch_or(kWriter, std::memory_order_acquire) & kWriter)
            sched_yield(); // another writer
        while (state_.load(std::memory_order_acquire) != kWriter)
            sched_yield(); // readers leaving
    }
    void unlock() noexcept { state_.fetch_and(~kWriter, std::memory_order_release); }

private:
    static constexpr int kWriter = 1 << 30;
    std::atomic<int> state_{0}; // readers inside, plus kWriter
};

// One system call in flight: what Request reads (RequestHead, in fusd.hpp) and the bookkeeping.
// Pooled: the hot path allocates nothing.
struct RequestSlot : RequestHead {
    std::atomic<int> refs{0};          // the Request, plus deliver() while the callback runs
    std::atomic<bool> answered{false}; // the first answer wins: driver reply, EINTR, or teardown
    std::atomic<bool> interrupted{false};
    std::atomic<std::uintptr_t> transport_id{0}; // the transport's own id of the request

    std::shared_ptr<FileState> file;   // keeps the file, its device and the loop's pool alive
    std::uint64_t offset = 0;
    std::int64_t start_ns = 0;         // CLOCK_MONOTONIC at arrival, set only while traced
    char comm[16] = {};                // the caller's command name, read at arrival while traced
    std::string trace_note;            // Request::trace_note(), while traced
    void *owned_buffer = nullptr;      // receive buffer kept by a deferred request (malloc'ed)
    RequestSlot *next_free = nullptr;
};

// A backend connection for one device.
class Transport {
public:
    virtual ~Transport() = default;
    virtual Backend backend() const = 0;
    virtual int fd() const = 0; // watched for EPOLLIN in the loop's epoll set
    // fd() is readable: read and deliver what is there; never block. Returns false when the
    // backend connection is gone for good (unmounted, aborted, forced unregister).
    virtual bool on_readable() = 0;
    // Send the answer of `slot` (result >= 0 or -errno). Called once per slot, from any thread,
    // under the device's shared lock. An mmap answer of 0 carries one MapReply in `bytes`.
    virtual void reply(RequestSlot &slot, int result, std::span<const std::byte> bytes) = 0;
    // Ask for more of the caller's memory (Request::reply_retry, ranges already checked): the
    // answer of `slot`. Backends that cannot answer EOPNOTSUPP. As reply().
    virtual void retry(RequestSlot &slot, std::span<const MemoryRange> in, std::span<const MemoryRange> out)
    {
        (void)in, (void)out;
        reply(slot, -EOPNOTSUPP, {});
    }
    // The readiness of `file` changed. From any thread, under the device's shared lock.
    virtual void notify_ready(FileState &file, unsigned events) = 0;
    // A request is being kept past its callback: move its receive buffer into slot.owned_buffer
    // so its data() stays valid. Loop thread only.
    virtual void keep_buffer(RequestSlot &slot) = 0;
    // Called before the driver sees `slot`, when arms_requests(): hook the backend's interrupt
    // notice to it. (A flag rather than an empty virtual call on every request: see RequestHead.)
    bool arms_requests() const { return arms_requests_; }
    virtual void arm(RequestSlot &) {}
    // A file was released (its FileState is going away): drop backend resources tied to it.
    virtual void forget_file(FileState &) {}
    // Remove the node and close the connection. Called once, under the device's exclusive lock.
    virtual void shutdown() = 0;

protected:
    bool arms_requests_ = false;
};

// What Request::reply_map() passes to the transport, as the bytes of its answer.
struct MapReply {
    int fd;
    std::uint64_t offset;
};

struct FileState : std::enable_shared_from_this<FileState> {
    std::shared_ptr<DeviceState> device;
    std::uint64_t id = 0;
    unsigned flags = 0;
    Caller opener;
    std::shared_ptr<void> state;
    std::atomic<unsigned> readiness{POLLIN | POLLOUT};
    std::uintptr_t transport_data = 0; // transport-owned (e.g. a FUSE poll handle), under poll_mutex
    std::mutex poll_mutex;
    std::atomic<bool> released{false};
    std::unique_ptr<File> face;        // the public face
};

struct SlotPool;

struct DeviceState : std::enable_shared_from_this<DeviceState> {
    LoopImpl *loop = nullptr;
    std::shared_ptr<SlotPool> pool;    // outlives the loop while requests are out
    std::string path;
    DeviceOptions options;
    Callbacks callbacks;
    std::unique_ptr<Transport> transport;
    SharedSpinLock lock;               // shared: replies and notifies; exclusive: shutdown
    bool gone = false;                 // transport shut down (under lock)
    std::atomic<std::uint64_t> calls{0};
    std::atomic<std::size_t> open_files{0};
    std::int64_t created_ns = 0;       // CLOCK_REALTIME
    std::shared_ptr<void> state;
    std::mutex files_mutex;
    std::vector<std::weak_ptr<FileState>> files;
    std::unique_ptr<Device> face;      // the public face
};

// The request parameters a transport decodes; deliver() copies them into a pooled slot.
struct Incoming {
    Op op = Op::open;
    std::uintptr_t transport_id = 0;   // the fusd request id, the fuse_req_t, ...
    Caller caller;
    bool caller_unresolved = false;    // caller.pid is a thread id: see RequestHead
    unsigned flags = 0;
    std::size_t size = 0;
    const std::byte *data = nullptr;
    std::size_t data_size = 0;
    std::uint32_t ioctl_command = 0;
    std::uint64_t ioctl_argument = 0;
    std::uint64_t offset = 0;
    std::uint64_t map_offset = 0;      // mmap
    int map_prot = 0;
    int map_flags = 0;
};


// What the FUSE and CUSE transports do with an ioctl as the kernel hands it over (libfuse's
// flags FUSE_IOCTL_COMPAT and FUSE_IOCTL_UNRESTRICTED, the bytes it brought and the room for an
// answer): refuse it with `error`, ask the kernel to retry with `size` bytes at the argument
// copied in and/or out, or deliver it to the driver.
struct IoctlPlan {
    enum class Action { refuse, retry, deliver } action = Action::deliver;
    int error = 0;
    bool in = false, out = false;
    std::uint32_t size = 0;
};
IoctlPlan plan_libfuse_ioctl(std::uint32_t command, bool compat, bool unrestricted, std::size_t in_bufsz,
                             std::size_t out_bufsz);

// Validated absolute /dev path (see fusd::device_path).
std::string checked_device_path(std::string_view name);
// Throws fusd::Error unless `label` (DeviceOptions::classic_class or classic_devname, called
// `what`) is empty or at most kLabelMax of the characters a label may have.
void check_classic_label(const char *what, std::string_view label);

// Parent directories of nested names (parents.cpp). make_parents() checks those that exist (real
// directories of /dev's filesystem) and makes, and records as fusd's, those missing; it throws
// fusd::Error leaving nothing made. remove_made_parents() removes, deepest first, the empty ones
// fusd made; it is called whenever a node goes (by its daemon, a forced removal, stale cleanup).
void make_parents(const std::string &path);
void remove_made_parents(const std::string &path);

// Backend factory: connect `device` through `backend` (never automatic): makes the node's parent
// directories, then the node. Throws fusd::Error, with nothing left behind.
std::unique_ptr<Transport> make_transport(Backend backend, DeviceState &device);
// What each backend's maker does: a T for `device`, started (its node made) before it is returned.
template <class T> std::unique_ptr<Transport> start_transport(DeviceState &device)
{
    auto t = std::make_unique<T>(device);
    t->start();
    return t;
}

// Removes what a dead daemon left at `path` for the backend named `backend` (a dangling FUSE
// mount and its placeholder file, ...); `backend` "" (its entry was lost) tries every backend, a
// name of no backend cleans nothing. Returns true when something was cleaned. Never touches a
// live node.
bool clean_stale_node(const std::string &path, const std::string &backend);
// Removes a node whose daemon may be alive but stopped or hung, releasing its blocked callers.
// Throws fusd::Error for a backend name this libfusd does not know or was built without.
void force_remove_node(const std::string &path, const std::string &backend);

// What each transport file defines for its backend's row (NAME_backend.cpp; see backend.hpp).
std::unique_ptr<Transport> make_fuse_transport(DeviceState &device);
BackendStatus probe_fuse();
void force_remove_fuse(const std::string &path);
bool clean_stale_fuse(const std::string &path);
std::unique_ptr<Transport> make_cuse_transport(DeviceState &device);
BackendStatus probe_cuse();
void force_remove_cuse(const std::string &path);
std::unique_ptr<Transport> make_kernel_transport(DeviceState &device);
BackendStatus probe_kernel();
void force_remove_kernel(const std::string &path);

std::int64_t monotonic_ns();
void read_comm(pid_t pid, char (&comm)[16]);
// A caller known by its thread id (CUSE, FUSE): its process id and real ids from
// /proc/TID/status; pid 0 and real ids (uid_t)-1 when the thread is gone.
void resolve_caller_ids(Caller &caller);
std::int64_t realtime_ns();

} // namespace fusd::detail
