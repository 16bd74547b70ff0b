// SPDX-License-Identifier: MIT
//
// The core: Loop, Device, File, Request. Knows no backend (see core.hpp for the transport side).
//
// One call: transport decodes a message -> LoopImpl::deliver() fills a pooled RequestSlot and calls
// the device's callback with a Request handle -> the driver answers through the handle (now, or
// later from any thread) -> LoopImpl::complete() lets the first answer through to
// Transport::reply() under the device's shared lock, counts it, traces it if someone listens,
// and recycles the slot when the last reference drops.
#include "loop_impl.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "control.hpp"
#include "registry.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

namespace fusd {
namespace detail {

std::int64_t monotonic_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void read_comm(pid_t pid, char (&comm)[16])
{
    comm[0] = '\0';
    char path[32];
    std::snprintf(path, sizeof path, "/proc/%d/comm", int(pid));
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = ::read(fd, comm, sizeof comm - 1);
    close(fd);
    comm[n > 0 ? n : 0] = '\0';
    if (n > 0 && comm[n - 1] == '\n')
        comm[n - 1] = '\0';
}

std::int64_t realtime_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// ---- slot pool ---------------------------------------------------------------------------------

void SlotPool::add_chunk()
{
    chunks_.push_back(std::make_unique<RequestSlot[]>(kChunk));
    RequestSlot *chunk = chunks_.back().get();
    for (std::size_t i = 0; i < kChunk; ++i) {
        chunk[i].next_free = free_;
        free_ = &chunk[i];
    }
}

std::vector<RequestSlot *> SlotPool::take_pending()
{
    std::vector<RequestSlot *> out;
    std::lock_guard lock(mutex_);
    for (auto &chunk : chunks_)
        for (std::size_t i = 0; i < kChunk; ++i) {
            RequestSlot &slot = chunk[i];
            int refs = slot.refs.load();
            // A reference only while one is held: a slot at 0 is free (or being recycled).
            while (refs > 0 && !slot.refs.compare_exchange_weak(refs, refs + 1))
                ;
            if (refs > 0)
                out.push_back(&slot);
        }
    return out;
}

// ---- loop --------------------------------------------------------------------------------------

LoopImpl::LoopImpl(Loop &owner, bool handle_signals) : owner_(owner), pool_(std::make_shared<SlotPool>())
{
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0)
        throw Error(errno, "fusd: epoll_create1 failed");
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0)
        throw Error(errno, "fusd: eventfd failed");
    watch(wake_fd_, EPOLLIN, [this](std::uint32_t) { drain_posted(); });
    if (handle_signals) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &mask, nullptr);
        signal_fd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (signal_fd_ < 0)
            throw Error(errno, "fusd: signalfd failed");
        watch(signal_fd_, EPOLLIN, [this](std::uint32_t) { on_signal(); });
    }
}

void LoopImpl::on_signal()
{
    signalfd_siginfo info{};
    if (::read(signal_fd_, &info, sizeof info) != sizeof info)
        return;
    stop_signal_ = int(info.ssi_signo);
    stop_.store(true);
    while (!devices_.empty()) // a signal ends the daemon: leave nothing behind
        remove(*devices_.back()->handle);
}

LoopImpl::~LoopImpl()
{
    while (!devices_.empty())
        remove(*devices_.back()->handle);
    control_.reset();
    watches_.clear();
    if (wake_fd_ >= 0)
        close(wake_fd_);
    if (signal_fd_ >= 0)
        close(signal_fd_); // the signal mask stays: a late SIGTERM must not kill a half-torn-down process
    if (epoll_fd_ >= 0)
        close(epoll_fd_);
}

void LoopImpl::watch(int fd, std::uint32_t events, Loop::FdHandler handler)
{
    auto w = std::make_unique<Watch>();
    w->fd = fd;
    w->handler = std::move(handler);
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = w.get();
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0)
        throw Error(errno, "fusd: cannot watch fd " + std::to_string(fd) + ": " + std::strerror(errno));
    watches_[fd] = std::move(w);
}

void LoopImpl::modify(int fd, std::uint32_t events)
{
    auto it = watches_.find(fd);
    if (it == watches_.end())
        return;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = it->second.get();
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
}

void LoopImpl::suspend(int fd)
{
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void LoopImpl::resume(int fd)
{
    auto it = watches_.find(fd);
    if (it == watches_.end())
        return; // unwatched meanwhile
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = it->second.get();
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
}

void LoopImpl::unwatch(int fd)
{
    auto it = watches_.find(fd);
    if (it == watches_.end())
        return;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    // The handler may be the one running now: retire it, free it after this dispatch round.
    it->second->fd = -1;
    retired_.push_back(std::move(it->second));
    watches_.erase(it);
}

void LoopImpl::post(std::function<void()> fn)
{
    {
        std::lock_guard lock(posted_mutex_);
        posted_.push_back(std::move(fn));
    }
    std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
}

void LoopImpl::drain_posted()
{
    std::uint64_t n;
    (void)!::read(wake_fd_, &n, sizeof n);
    std::vector<std::function<void()>> batch;
    {
        std::lock_guard lock(posted_mutex_);
        batch.swap(posted_);
    }
    for (auto &fn : batch)
        fn();
}

void LoopImpl::dispatch(int timeout_ms)
{
    epoll_event events[32];
    int n = epoll_wait(epoll_fd_, events, 32, timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return;
        throw Error(errno, std::string("fusd: epoll_wait: ") + std::strerror(errno));
    }
    for (int i = 0; i < n; ++i) {
        auto *w = static_cast<Watch *>(events[i].data.ptr);
        if (w->fd < 0)
            continue; // unwatched earlier in this round
        w->handler(events[i].events);
    }
    retired_.clear();
}

int LoopImpl::run()
{
    stop_.store(false);
    running_ = true;
    try {
        while (!stop_.load() && !devices_.empty())
            dispatch(-1);
    } catch (...) {
        running_ = false;
        throw;
    }
    running_ = false;
    return stop_signal_;
}

void LoopImpl::stop()
{
    stop_.store(true);
    std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
}

Device &LoopImpl::add(const DeviceOptions &options, Callbacks callbacks)
{
    auto dev = std::make_shared<DeviceState>();
    dev->loop = this;
    dev->path = checked_device_path(options.name);
    dev->options = options;
    dev->options.name = dev->path;
    if (!dev->options.owner)
        dev->options.owner = geteuid();
    if (!dev->options.group)
        dev->options.group = getegid();
    if (dev->options.mode & ~07777)
        throw Error(EINVAL, dev->path + ": invalid mode " + std::to_string(dev->options.mode));
    if (dev->options.command_line.empty())
        dev->options.command_line = own_command_line();
    dev->callbacks = std::move(callbacks);
    dev->created_ns = realtime_ns();
    dev->pool = pool_;
    for (const auto &d : devices_)
        if (d->path == dev->path)
            throw Error(EEXIST, dev->path + ": already registered by this process");

    claim_name(dev->path);
    Backend backend = choose_backend(options.backend);
    dev->transport = make_transport(backend, *dev);
    dev->handle.reset(new Device(dev.get()));
    DeviceState *raw = dev.get();
    watch(dev->transport->fd(), EPOLLIN, [this, raw](std::uint32_t) {
        if (!raw->transport->on_readable())
            transport_gone(*raw);
    });
    devices_.push_back(dev);
    try {
        control().publish(*dev);
    } catch (...) {
        remove(*dev->handle);
        throw;
    }
    return *dev->handle;
}

void LoopImpl::claim_name(const std::string &path)
{
    // A registry entry is a hint: a live owner means EEXIST; a dead one's leftovers are cleaned.
    if (auto entry = registry::find_entry(path)) {
        if (registry::entry_alive(*entry))
            throw Error(EEXIST, path + ": already served by pid " + std::to_string(entry->value("pid", 0)) + " (" +
                                    entry->value("command", std::string()) + ")");
        clean_stale_node(path, entry->value("backend", std::string()));
        registry::remove_entry(path, 0);
    } else {
        clean_stale_node(path, ""); // a dangling mount whose entry was lost
    }
}

void LoopImpl::transport_gone(DeviceState &dev)
{
    // Removed behind our back (fusdctl rm --force, an aborted connection): forget it.
    remove(*dev.handle);
}

void LoopImpl::remove(Device &device)
{
    DeviceState *dev = device.state_;
    auto it = std::find_if(devices_.begin(), devices_.end(), [dev](const auto &d) { return d.get() == dev; });
    if (it == devices_.end())
        return;
    std::shared_ptr<DeviceState> keep = *it;
    devices_.erase(it);
    // Callers still waiting get ENODEV now, through the backend, which also frees what the backend
    // keeps per request; a driver's later reply to them is harmless.
    for (RequestSlot *slot : pending_slots()) {
        if (!slot->answered.load() && slot->file && slot->file->device.get() == dev)
            complete(*slot, -ENODEV, {});
        unref(slot);
    }
    unwatch(dev->transport->fd());
    {
        std::unique_lock lock(dev->lock);
        dev->gone = true;
        dev->transport->shutdown();
    }
    if (control_) // last: an entry that is gone means the node is gone
        control_->unpublish(*dev);
    // Files still open when the device goes get no release: drop the driver's per-open state now.
    // It may hold that file's own pending Requests (a reference cycle through the file); dropping
    // them answers nothing (the device is gone) and frees everything.
    std::vector<std::shared_ptr<FileState>> files;
    {
        std::lock_guard lock(dev->files_mutex);
        for (auto &w : dev->files)
            if (auto f = w.lock())
                files.push_back(std::move(f));
        dev->files.clear();
    }
    for (auto &f : files)
        f->state.reset();
    if (devices_.empty() && control_)
        control_.reset(); // no device, no control socket
}

std::vector<Device *> LoopImpl::devices() const
{
    std::vector<Device *> out;
    for (const auto &d : devices_)
        out.push_back(d->handle.get());
    return out;
}

ControlServer &LoopImpl::control()
{
    if (!control_)
        control_ = std::make_unique<ControlServer>(*this);
    return *control_;
}

std::string LoopImpl::own_command_line()
{
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!raw.empty() && raw.back() == '\0')
        raw.pop_back();
    for (char &c : raw)
        if (c == '\0')
            c = ' ';
    return raw;
}

// ---- requests: in ------------------------------------------------------------------------------

std::shared_ptr<FileState> LoopImpl::new_file(DeviceState &dev, const Caller &opener, unsigned flags)
{
    auto file = std::make_shared<FileState>();
    file->device = dev.shared_from_this();
    file->id = next_file_id_.fetch_add(1) + 1;
    file->flags = flags;
    file->opener = opener;
    file->handle.reset(new File(file.get()));
    dev.open_files.fetch_add(1);
    std::lock_guard lock(dev.files_mutex);
    std::erase_if(dev.files, [](const auto &w) { return w.expired(); });
    dev.files.push_back(file);
    return file;
}

void LoopImpl::release_file(FileState &file)
{
    if (file.released.exchange(true))
        return;
    file.device->open_files.fetch_sub(1);
    std::shared_lock lock(file.device->lock);
    if (!file.device->gone)
        file.device->transport->forget_file(file);
}

void LoopImpl::deliver(std::shared_ptr<FileState> file, const Incoming &in)
{
    RequestSlot *slot = pool_->acquire();
    slot->refs.store(2, std::memory_order_relaxed); // the Request handle + this dispatch
    slot->answered.store(false, std::memory_order_relaxed);
    slot->interrupted.store(false, std::memory_order_relaxed);
    slot->handle.store(in.handle, std::memory_order_release);
    slot->id = next_request_id_++;
    slot->op = in.op;
    slot->caller = in.caller;
    slot->flags = in.flags;
    slot->size = in.size;
    slot->data = in.data;
    slot->data_size = in.data_size;
    slot->ioctl_command = in.ioctl_command;
    slot->ioctl_argument = in.ioctl_argument;
    slot->offset = in.offset;
    slot->start_ns = 0;
    if (tracing()) { // only while someone traces: the caller may be gone by the time we answer
        slot->start_ns = monotonic_ns();
        read_comm(in.caller.pid, slot->comm);
    }
    DeviceState &dev = *file->device;
    slot->file = std::move(file);

    const auto &cb = dev.callbacks;
    const std::function<void(Request)> *fn = nullptr;
    switch (in.op) {
    case Op::open: fn = &cb.open; break;
    case Op::release: fn = &cb.release; break;
    case Op::read: fn = &cb.read; break;
    case Op::write: fn = &cb.write; break;
    case Op::ioctl: fn = &cb.ioctl; break;
    default: break;
    }
    if (!dev.gone && dev.transport->arms_requests()) // loop thread: the only one that sets gone
        dev.transport->arm(*slot);
    Request req(slot);
    try {
        if (fn && *fn)
            (*fn)(std::move(req));
        else
            default_answer(std::move(req));
    } catch (const std::exception &e) {
        // A throwing callback must not take the daemon down: the caller gets EIO.
        log_error(dev.path + ": callback for " + std::string(to_string(in.op)) + " threw: " + e.what());
    }
    if (!slot->answered.load(std::memory_order_acquire) && slot->data && !slot->owned_buffer && !dev.gone)
        dev.transport->keep_buffer(*slot); // kept past its callback: its data must outlive the receive buffer
    unref(slot);
}

void LoopImpl::default_answer(Request req)
{
    switch (req.op()) {
    case Op::read: req.reply_data(std::span<const std::byte>{}); break;
    case Op::write: req.reply_written(req.size()); break;
    case Op::ioctl: req.reply_error(ENOTTY); break;
    default: req.reply_ok(); break;
    }
}

void LoopImpl::interrupt(RequestSlot &slot, std::uintptr_t handle)
{
    if (slot.handle.load(std::memory_order_acquire) != handle)
        return; // that request was answered and its slot reused
    slot.interrupted.store(true, std::memory_order_release);
    FileState *file = slot.file.get();
    if (!file)
        return;
    std::uint64_t id = slot.id;
    complete(slot, -EINTR, {});
    DeviceState &dev = *file->device;
    if (dev.callbacks.interrupt) {
        try {
            dev.callbacks.interrupt(*file->handle, id);
        } catch (const std::exception &e) {
            log_error(dev.path + ": interrupt callback threw: " + e.what());
        }
    }
}

// ---- requests: out -----------------------------------------------------------------------------

// Inlined into each Request::reply_*(): see RequestHead for why the request path avoids calls.
[[gnu::always_inline]] inline void LoopImpl::complete(RequestSlot &slot, int result,
                                                     std::span<const std::byte> bytes)
{
    if (slot.answered.exchange(true, std::memory_order_acq_rel))
        return; // already answered (EINTR, or teardown): a late reply is harmless
    FileState &file = *slot.file;
    DeviceState &dev = *file.device;
    {
        std::shared_lock lock(dev.lock);
        if (!dev.gone)
            dev.transport->reply(slot, result, bytes);
    }
    dev.calls.fetch_add(1, std::memory_order_relaxed);
    if (slot.start_ns)
        trace(slot, result);
    if (slot.op == Op::release || (slot.op == Op::open && result < 0))
        release_file(file);
}

void LoopImpl::trace(const RequestSlot &slot, int result)
{
    TraceRecord rec;
    rec.time_ns = realtime_ns();
    rec.device = slot.file->device->path;
    rec.pid = slot.caller.pid;
    rec.comm = slot.comm;
    rec.op = slot.interrupted.load() ? Op::interrupt : slot.op;
    rec.size = slot.op == Op::write ? slot.data_size : slot.size;
    rec.offset = slot.offset;
    rec.ioctl = slot.ioctl_command;
    rec.result = result;
    rec.latency_us = std::uint64_t(monotonic_ns() - slot.start_ns) / 1000;
    {
        std::lock_guard lock(trace_mutex_);
        if (trace_queue_.size() < 65536)
            trace_queue_.push_back(std::move(rec));
    }
    post([this] { flush_trace(); });
}

void LoopImpl::trace_poll(DeviceState &dev, const Caller &caller, unsigned events)
{
    if (!tracing())
        return;
    TraceRecord rec;
    rec.time_ns = realtime_ns();
    rec.device = dev.path;
    rec.pid = caller.pid;
    char comm[16] = {};
    read_comm(caller.pid, comm);
    rec.comm = comm;
    rec.op = Op::poll;
    rec.result = int(events);
    {
        std::lock_guard lock(trace_mutex_);
        trace_queue_.push_back(std::move(rec));
    }
    post([this] { flush_trace(); });
}

void LoopImpl::flush_trace()
{
    std::vector<TraceRecord> batch;
    {
        std::lock_guard lock(trace_mutex_);
        batch.swap(trace_queue_);
    }
    if (control_)
        for (auto &rec : batch)
            control_->emit(rec);
}

void LoopImpl::log_error(const std::string &message)
{
    std::fprintf(stderr, "libfusd: %s\n", message.c_str());
}

} // namespace detail

// ---- public faces ------------------------------------------------------------------------------

using detail::LoopImpl;
using detail::RequestSlot;

namespace detail {
void throw_request_used()
{
    throw std::logic_error("fusd::Request: used after it was answered or moved from");
}
} // namespace detail

// The slot behind a Request's head; throws when the Request is empty.
static RequestSlot &slot_of(detail::RequestHead *head)
{
    if (!head)
        detail::throw_request_used();
    return static_cast<RequestSlot &>(*head);
}

// Inlined into each reply_*(): see RequestHead for why the request path avoids calls.
[[gnu::always_inline]] inline void Request::answer(int result, std::span<const std::byte> bytes)
{
    RequestSlot *slot = &slot_of(head_);
    head_ = nullptr;
    LoopImpl *loop = slot->file->device->loop;
    loop->complete(*slot, result, bytes);
    loop->unref(slot);
}

void Request::abandon() noexcept
{
    answer(-EIO, {}); // only called while head_ is set: never throws
}

Device &Request::device() const { return *slot_of(head_).file->device->handle; }
File &Request::file() const { return *slot_of(head_).file->handle; }
bool Request::interrupted() const { return slot_of(head_).interrupted.load(); }

void Request::reply_ok() { answer(0, {}); }

void Request::reply_error(int errnum)
{
    if (errnum <= 0 || errnum > 4095)
        throw std::invalid_argument("fusd::Request::reply_error: errno out of range: " + std::to_string(errnum));
    answer(-errnum, {});
}

void Request::reply_data(std::span<const std::byte> bytes)
{
    const detail::RequestHead &s = head();
    if (s.op != Op::read && s.op != Op::ioctl)
        throw std::logic_error("fusd::Request::reply_data: not a read or ioctl request");
    if (bytes.size() > s.size)
        throw std::length_error("fusd::Request::reply_data: " + std::to_string(bytes.size()) +
                                " bytes for a request of " + std::to_string(s.size));
    answer(s.op == Op::read ? int(bytes.size()) : 0, bytes);
}

void Request::reply_data(std::string_view text)
{
    reply_data(std::span<const std::byte>(reinterpret_cast<const std::byte *>(text.data()), text.size()));
}

void Request::reply_written(std::size_t count)
{
    const detail::RequestHead &s = head();
    if (s.op != Op::write)
        throw std::logic_error("fusd::Request::reply_written: not a write request");
    if (count > s.data_size)
        throw std::length_error("fusd::Request::reply_written: more than was written");
    answer(int(count), {});
}

void Request::reply_ioctl(int result, std::span<const std::byte> out)
{
    const detail::RequestHead &s = head();
    if (s.op != Op::ioctl)
        throw std::logic_error("fusd::Request::reply_ioctl: not an ioctl request");
    if (result < 0)
        throw std::invalid_argument("fusd::Request::reply_ioctl: negative result; use reply_error");
    if (out.size() > s.size)
        throw std::length_error("fusd::Request::reply_ioctl: out-data larger than the ioctl's size");
    answer(result, out);
}

Device &File::device() const { return *state_->device->handle; }
std::uint64_t File::id() const { return state_->id; }
unsigned File::flags() const { return state_->flags; }
const Caller &File::opener() const { return state_->opener; }
std::shared_ptr<void> &File::state() { return state_->state; }
unsigned File::readiness() const { return state_->readiness.load(); }
bool File::released() const { return state_->released.load(); }
std::shared_ptr<File> File::keep() { return std::shared_ptr<File>(state_->shared_from_this(), this); }

void File::notify(unsigned events)
{
    unsigned old = state_->readiness.exchange(events);
    if (old == events)
        return;
    detail::DeviceState &dev = *state_->device;
    std::shared_lock lock(dev.lock);
    if (!dev.gone && !state_->released)
        dev.transport->notify_ready(*state_, events);
}

const std::string &Device::path() const { return state_->path; }
Backend Device::backend() const { return state_->transport->backend(); }
Loop &Device::loop() const { return state_->loop->owner(); }
std::shared_ptr<void> &Device::state() { return state_->state; }
std::uint64_t Device::calls() const { return state_->calls.load(); }
std::size_t Device::open_files() const { return state_->open_files.load(); }

void Device::notify_all(unsigned events)
{
    std::vector<std::shared_ptr<detail::FileState>> files;
    {
        std::lock_guard lock(state_->files_mutex);
        for (auto &w : state_->files)
            if (auto f = w.lock())
                files.push_back(std::move(f));
    }
    for (auto &f : files)
        f->handle->notify(events);
}

Loop::Loop(bool handle_signals) : impl_(std::make_unique<LoopImpl>(*this, handle_signals)) {}
Loop::~Loop() = default;
Device &Loop::add(const DeviceOptions &options, Callbacks callbacks) { return impl_->add(options, std::move(callbacks)); }
void Loop::remove(Device &device) { impl_->remove(device); }
std::vector<Device *> Loop::devices() const { return impl_->devices(); }
int Loop::fd() const { return impl_->epoll_fd(); }
void Loop::dispatch() { impl_->dispatch(0); }
int Loop::run() { return impl_->run(); }
int Loop::stop_signal() const { return impl_->stop_signal(); }
void Loop::stop() { impl_->stop(); }
void Loop::watch(int fd, std::uint32_t events, FdHandler handler) { impl_->watch(fd, events, std::move(handler)); }
void Loop::modify(int fd, std::uint32_t events) { impl_->modify(fd, events); }
void Loop::unwatch(int fd) { impl_->unwatch(fd); }
void Loop::post(std::function<void()> fn) { impl_->post(std::move(fn)); }

std::string_view to_string(Op op)
{
    switch (op) {
    case Op::open: return "open";
    case Op::release: return "close";
    case Op::read: return "read";
    case Op::write: return "write";
    case Op::ioctl: return "ioctl";
    case Op::poll: return "poll";
    case Op::interrupt: return "interrupt";
    }
    return "?";
}

} // namespace fusd
