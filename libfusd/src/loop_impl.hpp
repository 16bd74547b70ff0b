// SPDX-License-Identifier: MIT
//
// LoopImpl: the core's event loop and request bookkeeping, behind the public Loop, Device, File
// and Request. Where its parts are:
//  - loop.cpp: the epoll loop, devices (add, remove, registry claims), and the request path in:
//    deliver() fills a pooled RequestSlot and runs the driver's callback.
//  - this header: what the request path inlines across files: SlotPool, unref(), and complete(),
//    the way out (Request::reply_*() in public_faces.cpp inline it).
//  - loop_trace.cpp: trace records for fusdctl trace. clock.cpp, proc.cpp: time and /proc.
//  - public_faces.cpp: the public classes' methods, forwarding into this state.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core.hpp"
#include "fd.hpp"
#include "fusd/admin.hpp"

namespace fusd::detail {

using TraceRecord = admin::TraceEvent;

// This process's command line, arguments separated by spaces (/proc/self/cmdline).
std::string own_command_line();

// Pooled RequestSlots, recycled from any thread. Chunks are never freed before the pool.
// acquire() and recycle() are inline, as is LoopImpl::unref(): they run on every request (see
// RequestHead in fusd.hpp for why the request path avoids calls).
struct SlotPool {
    RequestSlot *acquire()
    {
        std::lock_guard lock(mutex_);
        if (!free_)
            add_chunk();
        RequestSlot *slot = free_;
        free_ = slot->next_free;
        slot->next_free = nullptr;
        return slot;
    }
    void recycle(RequestSlot *slot)
    {
        slot->file.reset();
        if (slot->owned_buffer) {
            std::free(slot->owned_buffer);
            slot->owned_buffer = nullptr;
        }
        slot->data = nullptr;
        slot->data_size = 0;
        slot->transport_id.store(0, std::memory_order_relaxed);
        std::lock_guard lock(mutex_);
        slot->next_free = free_;
        free_ = slot;
    }
    // Every slot still out, each with a reference taken (drop it with LoopImpl::unref).
    std::vector<RequestSlot *> take_pending();

private:
    void add_chunk(); // under mutex_
    static constexpr std::size_t kChunk = 64;
    SpinLock mutex_;
    RequestSlot *free_ = nullptr;
    std::vector<std::unique_ptr<RequestSlot[]>> chunks_;
};

class ControlServer; // control.cpp: the daemon's control socket and registry entries

class LoopImpl {
public:
    LoopImpl(Loop &owner, bool handle_signals);
    ~LoopImpl();

    Loop &owner() { return owner_; }
    int epoll_fd() const { return epoll_fd_.get(); }
    // The descriptor a transport may sleep on in place of epoll_wait() (readable when anything
    // else the loop watches is): the epoll set while run() owns this thread, else -1 (an
    // embedding program waits in its own loop, and dispatch() must never block).
    int wait_fd() const { return running_ && !stop_.load(std::memory_order_relaxed) ? epoll_fd_.get() : -1; }

    Device &add(const DeviceOptions &options, Callbacks callbacks);
    void remove(Device &device);
    std::vector<Device *> devices() const;
    const std::vector<std::shared_ptr<DeviceState>> &device_states() const { return devices_; }

    void watch(int fd, std::uint32_t events, Loop::FdHandler handler);
    void modify(int fd, std::uint32_t events);
    // Out of the epoll set, handler kept, until resume() adds it back for EPOLLIN: for a transport
    // that waits on its fd itself meanwhile (KernelTransport::on_readable).
    void suspend(int fd);
    void resume(int fd);
    void unwatch(int fd);
    void post(std::function<void()> fn);
    void dispatch(int timeout_ms);
    int run();
    int stop_signal() const { return stop_signal_; }
    void stop();

    // For transports (loop thread).
    std::shared_ptr<FileState> new_file(DeviceState &dev, const Caller &opener, unsigned flags);
    void deliver(std::shared_ptr<FileState> file, const Incoming &in);
    void interrupt(RequestSlot &slot, std::uintptr_t transport_id);
    void trace_poll(DeviceState &dev, const Caller &caller, unsigned events);
    // From any thread: the first answer of `slot` goes to the transport (defined below). Static:
    // a slot still unanswered has its Loop alive (removing a device answers its requests), and
    // an answered one touches nothing else.
    static void complete(RequestSlot &slot, int result, std::span<const std::byte> bytes);
    // From any thread: an ioctl's answer that asks for more of the caller's memory. Static, as
    // complete() is.
    static void complete_retry(RequestSlot &slot, std::span<const MemoryRange> in, std::span<const MemoryRange> out);
    // Every request still out, each with a reference taken (drop it with unref).
    std::vector<RequestSlot *> pending_slots() { return pool_->take_pending(); }
    // Drops a reference; the last one recycles the slot into its device's pool, which it keeps
    // alive meanwhile: after the Loop is gone, the slot's file may hold the pool's last owner.
    // Static: a Request answered or destroyed after its Loop never touches the LoopImpl.
    static void unref(RequestSlot *slot)
    {
        if (slot->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::shared_ptr<SlotPool> pool = slot->file->device->pool;
            pool->recycle(slot);
        }
    }

    // Tracing: counted by the control server; when zero, requests take no timestamps at all.
    bool tracing() const { return tracers_.load(std::memory_order_relaxed) > 0; }
    void add_tracer(int delta) { tracers_.fetch_add(delta); }

    static void log_error(const std::string &message);

private:
    struct Watch {
        int fd = -1;
        Loop::FdHandler handler;
    };
    void drain_posted();
    void on_signal();
    void default_answer(Request req);
    void release_file(FileState &file);
    void transport_gone(DeviceState &dev);
    static void claim_name(const std::string &path);
    void trace(const RequestSlot &slot, int result);
    void flush_trace();
    ControlServer &control();

    Loop &owner_;
    std::shared_ptr<SlotPool> pool_;
    Fd epoll_fd_;
    bool running_ = false;             // inside run() (loop thread only)
    Fd wake_fd_;                       // eventfd: post() and stop() wake the loop
    Fd signal_fd_;                     // signalfd for SIGINT and SIGTERM, when the loop handles them
    std::map<int, std::unique_ptr<Watch>> watches_;
    std::vector<std::unique_ptr<Watch>> retired_;
    std::mutex posted_mutex_;
    std::vector<std::function<void()>> posted_;
    std::atomic<bool> stop_{false};
    int stop_signal_ = 0;
    int removal_error_ = ENODEV;       // what remove() answers callers still waiting
    std::vector<std::shared_ptr<DeviceState>> devices_;
    std::atomic<std::uint64_t> next_file_id_{0};
    std::uint64_t next_request_id_ = 1;
    std::atomic<int> tracers_{0};
    std::mutex trace_mutex_;
    std::vector<TraceRecord> trace_queue_;
    std::unique_ptr<ControlServer> control_;

    friend class ControlServer;
};

// Inlined into each Request::reply_*(): see RequestHead (fusd.hpp) for why the request path avoids
// calls. Counts the answer, traces it if someone listens, and releases a file whose last request
// this was.
[[gnu::always_inline]] inline void LoopImpl::complete(RequestSlot &slot, int result,
                                                     std::span<const std::byte> bytes)
{
    if (slot.answered.exchange(true, std::memory_order_acq_rel))
        return; // already answered (EINTR, or teardown): a late reply is harmless
    FileState &file = *slot.file;
    DeviceState &dev = *file.device;
    LoopImpl &loop = *dev.loop;
    {
        std::shared_lock lock(dev.lock);
        if (!dev.gone)
            dev.transport->reply(slot, result, bytes);
    }
    dev.calls.fetch_add(1, std::memory_order_relaxed);
    if (slot.start_ns)
        loop.trace(slot, result);
    if (slot.op == Op::release || (slot.op == Op::open && result < 0))
        loop.release_file(file);
}

} // namespace fusd::detail
