// SPDX-License-Identifier: MIT
//
// The core's loop: the epoll loop (watches, posted work, signals), devices (add, remove, registry
// claims), the slot pool, and requests in. Knows no backend (see core.hpp for the transport side;
// loop_impl.hpp says where the rest of the core is).
//
// One call: transport decodes a message -> LoopImpl::deliver() fills a pooled RequestSlot and calls
// the device's callback with a Request -> the driver answers through the Request (now, or later
// from any thread) -> LoopImpl::complete() (loop_impl.hpp) lets the first answer through to
// Transport::reply() under the device's shared lock, counts it, traces it if someone listens,
// and recycles the slot when the last reference drops.
#include "loop_impl.hpp"
#include "name_lock.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "control.hpp"
#include "registry.hpp"

namespace fusd {
namespace detail {

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
    epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_fd_)
        throw Error(errno, "fusd: epoll_create1 failed");
    wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd_)
        throw Error(errno, "fusd: eventfd failed");
    watch(wake_fd_.get(), EPOLLIN, [this](std::uint32_t) { drain_posted(); });
    if (handle_signals) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &mask, nullptr);
        signal_fd_.reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!signal_fd_)
            throw Error(errno, "fusd: signalfd failed");
        watch(signal_fd_.get(), EPOLLIN, [this](std::uint32_t) { on_signal(); });
    }
}

void LoopImpl::on_signal()
{
    signalfd_siginfo info{};
    if (::read(signal_fd_.get(), &info, sizeof info) != sizeof info)
        return;
    stop_signal_ = int(info.ssi_signo);
    stop_.store(true);
    while (!devices_.empty()) // a signal ends the daemon: leave nothing behind
        remove(*devices_.back()->face);
}

LoopImpl::~LoopImpl()
{
    removal_error_ = EPIPE; // the daemon is going away: its callers see what a dead daemon's see
    while (!devices_.empty())
        remove(*devices_.back()->face);
    control_.reset();
    watches_.clear();
    // The descriptors close with their members. The signal mask stays: a late SIGTERM must not
    // kill a half-torn-down process.
}

void LoopImpl::watch(int fd, std::uint32_t events, Loop::FdHandler handler)
{
    auto w = std::make_unique<Watch>();
    w->fd = fd;
    w->handler = std::move(handler);
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = w.get();
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
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
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &ev);
}

void LoopImpl::suspend(int fd)
{
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void LoopImpl::resume(int fd)
{
    auto it = watches_.find(fd);
    if (it == watches_.end())
        return; // unwatched meanwhile
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = it->second.get();
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev);
}

void LoopImpl::unwatch(int fd)
{
    auto it = watches_.find(fd);
    if (it == watches_.end())
        return;
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
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
    (void)!::write(wake_fd_.get(), &one, sizeof one);
}

void LoopImpl::drain_posted()
{
    std::uint64_t n;
    (void)!::read(wake_fd_.get(), &n, sizeof n);
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
    int n = epoll_wait(epoll_fd_.get(), events, 32, timeout_ms);
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
    (void)!::write(wake_fd_.get(), &one, sizeof one);
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
    check_classic_label("class", dev->options.classic_class);
    check_classic_label("devname", dev->options.classic_devname);
    if (dev->options.command_line.empty())
        dev->options.command_line = own_command_line();
    dev->callbacks = std::move(callbacks);
    dev->created_ns = realtime_ns();
    dev->pool = pool_;
    for (const auto &d : devices_)
        if (d->path == dev->path)
            throw Error(EEXIST, dev->path + ": already registered by this process");

    // From the stale cleanup until the entry is written, the name is ours alone: a dead
    // predecessor's fusd-cleaner, still at work, finishes first, and one that comes later finds
    // our entry and leaves our node alone.
    NameLock name_lock(dev->path);
    claim_name(dev->path);
    Backend backend = choose_backend(options.backend);
    dev->transport = make_transport(backend, *dev);
    dev->face.reset(new Device(dev.get()));
    DeviceState *raw = dev.get();
    watch(dev->transport->fd(), EPOLLIN, [this, raw](std::uint32_t) {
        if (!raw->transport->on_readable())
            transport_gone(*raw);
    });
    devices_.push_back(dev);
    try {
        control().publish(*dev);
    } catch (...) {
        remove(*dev->face);
        throw;
    }
    return *dev->face;
}

void LoopImpl::claim_name(const std::string &path)
{
    // A registry entry is a hint: a live owner means EEXIST; a dead one's leftovers are cleaned.
    if (auto entry = registry::find_entry(path)) {
        if (registry::entry_alive(*entry))
            throw Error(EEXIST, path + ": already served by pid " + std::to_string(entry->value("pid", 0)) + " (" +
                                    entry->value("command", std::string()) + ")");
        clean_stale_node(path, entry->value("backend", std::string()));
        registry::remove_dead_entry(*entry);
    } else {
        clean_stale_node(path, ""); // a dangling mount whose entry was lost
    }
}

void LoopImpl::transport_gone(DeviceState &dev)
{
    // Removed behind our back (fusdctl rm --force, an aborted connection): forget it.
    remove(*dev.face);
}

void LoopImpl::remove(Device &device)
{
    DeviceState *dev = device.state_;
    auto it = std::find_if(devices_.begin(), devices_.end(), [dev](const auto &d) { return d.get() == dev; });
    if (it == devices_.end())
        return;
    std::shared_ptr<DeviceState> keep = *it;
    devices_.erase(it);
    // Callers still waiting get ENODEV now (EPIPE when the loop itself goes), through the backend,
    // which also frees what the backend keeps per request; a driver's later reply is harmless.
    for (RequestSlot *slot : pending_slots()) {
        if (!slot->answered.load() && slot->file && slot->file->device.get() == dev)
            complete(*slot, -removal_error_, {});
        unref(slot);
    }
    unwatch(dev->transport->fd());
    {
        std::unique_lock lock(dev->lock);
        dev->gone = true;
        dev->transport->shutdown();
    }
    remove_made_parents(dev->path);
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
        out.push_back(d->face.get());
    return out;
}

ControlServer &LoopImpl::control()
{
    if (!control_)
        control_ = std::make_unique<ControlServer>(*this);
    return *control_;
}

// ---- requests: in ------------------------------------------------------------------------------

std::shared_ptr<FileState> LoopImpl::new_file(DeviceState &dev, const Caller &opener, unsigned flags)
{
    auto file = std::make_shared<FileState>();
    file->device = dev.shared_from_this();
    file->id = next_file_id_.fetch_add(1) + 1;
    file->flags = flags;
    file->opener = opener;
    file->face.reset(new File(file.get()));
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
    slot->refs.store(2, std::memory_order_relaxed); // the Request + this delivery
    slot->answered.store(false, std::memory_order_relaxed);
    slot->interrupted.store(false, std::memory_order_relaxed);
    slot->transport_id.store(in.transport_id, std::memory_order_release);
    slot->id = next_request_id_++;
    slot->op = in.op;
    slot->caller = in.caller;
    slot->caller_unresolved = in.caller_unresolved;
    slot->flags = in.flags;
    slot->size = in.size;
    slot->data = in.data;
    slot->data_size = in.data_size;
    slot->ioctl_command = in.ioctl_command;
    slot->ioctl_argument = in.ioctl_argument;
    slot->offset = in.offset;
    slot->map_offset = in.map_offset;
    slot->map_prot = in.map_prot;
    slot->map_flags = in.map_flags;
    slot->start_ns = 0;
    if (tracing()) { // only while someone traces: the caller may be gone by the time we answer
        slot->start_ns = monotonic_ns();
        slot->trace_note.clear();
        read_comm(in.caller.pid, slot->comm);
        if (slot->caller_unresolved) // the trace names the process, read while it is there
            resolve_caller(*slot);
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
    case Op::mmap: fn = &cb.mmap; break;
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
    case Op::mmap: req.reply_error(ENODEV); break;
    default: req.reply_ok(); break;
    }
}

// As complete(): the first answer wins. The call itself goes on: it comes back as a new request.
void LoopImpl::complete_retry(RequestSlot &slot, std::span<const MemoryRange> in, std::span<const MemoryRange> out)
{
    if (slot.answered.exchange(true, std::memory_order_acq_rel))
        return;
    DeviceState &dev = *slot.file->device;
    {
        std::shared_lock lock(dev.lock);
        if (!dev.gone)
            dev.transport->retry(slot, in, out);
    }
    dev.calls.fetch_add(1, std::memory_order_relaxed);
    if (slot.start_ns)
        dev.loop->trace(slot, 0);
}

void LoopImpl::interrupt(RequestSlot &slot, std::uintptr_t transport_id)
{
    if (slot.transport_id.load(std::memory_order_acquire) != transport_id)
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
            dev.callbacks.interrupt(*file->face, id);
        } catch (const std::exception &e) {
            log_error(dev.path + ": interrupt callback threw: " + e.what());
        }
    }
}

void LoopImpl::log_error(const std::string &message)
{
    std::fprintf(stderr, "libfusd: %s\n", message.c_str());
}

} // namespace detail
} // namespace fusd
