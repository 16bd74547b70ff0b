// SPDX-License-Identifier: MIT
//
// The public faces: the methods of Request, File, Device and Loop (fusd/fusd.hpp), each forwarding
// into the core's state (loop_impl.hpp, core.hpp). A Request's answers inline the core's way out,
// LoopImpl::complete(), down to the transport's reply(): see RequestHead for why.
#include <stdexcept>

#include <unistd.h>

#include "loop_impl.hpp"

namespace fusd {

using detail::LoopImpl;
using detail::RequestSlot;

namespace {
constexpr int kFirstKernelInternalErrno = 512; // ERESTARTSYS, <linux/errno.h>
}

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
    LoopImpl::complete(*slot, result, bytes);
    LoopImpl::unref(slot);
}

void Request::abandon() noexcept
{
    answer(-EIO, {}); // only called while head_ is set: never throws
}

Device &Request::device() const { return *slot_of(head_).file->device->face; }
File &Request::file() const { return *slot_of(head_).file->face; }
bool Request::interrupted() const { return slot_of(head_).interrupted.load(); }
bool Request::traced() const { return head_ && slot_of(head_).start_ns != 0; }
void Request::trace_note(std::string note)
{
    if (traced())
        slot_of(head_).trace_note = std::move(note);
}

void Request::reply_ok() { answer(0, {}); }

void Request::reply_error(int errnum)
{
    if (errnum <= 0 || errnum > 4095)
        throw std::invalid_argument("fusd::Request::reply_error: errno out of range: " + std::to_string(errnum));
    // Every errno a caller can see is below 512 (the largest, EHWPOISON, is 133). From 512 on are
    // the kernel's own codes (ERESTARTSYS...), which must never reach a caller, and no errno at
    // all: the FUSE kernel refuses such a reply (the caller would wait on and the connection
    // fail), the fusd module turns 512..529 into EIO. EIO for all of them, on every backend.
    if (errnum >= kFirstKernelInternalErrno)
        errnum = EIO;
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

void Request::reply_retry(std::span<const MemoryRange> in, std::span<const MemoryRange> out)
{
    const detail::RequestHead &s = head();
    if (s.op != Op::ioctl)
        throw std::logic_error("fusd::Request::reply_retry: not an ioctl request");
    if (in.empty() && out.empty())
        throw std::invalid_argument("fusd::Request::reply_retry: no ranges");
    if (in.size() + out.size() > kRetryRangesMax)
        throw std::length_error("fusd::Request::reply_retry: more than " + std::to_string(kRetryRangesMax) + " ranges");
    for (auto ranges : {in, out}) {
        std::size_t total = 0;
        for (const MemoryRange &r : ranges) {
            if (r.length == 0 || r.address + r.length < r.address)
                throw std::invalid_argument("fusd::Request::reply_retry: an empty or wrapping range");
            if (r.length > kRetryBytesMax || (total += r.length) > kRetryBytesMax)
                throw std::length_error("fusd::Request::reply_retry: more than " + std::to_string(kRetryBytesMax) +
                                        " bytes in or out");
        }
    }
    RequestSlot *slot = &slot_of(head_);
    head_ = nullptr;
    LoopImpl::complete_retry(*slot, in, out);
    LoopImpl::unref(slot);
}

void Request::reply_map(int fd, std::uint64_t offset)
{
    const detail::RequestHead &s = head();
    if (s.op != Op::mmap)
        throw std::logic_error("fusd::Request::reply_map: not an mmap request");
    if (fd < 0)
        throw std::invalid_argument("fusd::Request::reply_map: negative descriptor");
    if (offset % std::uint64_t(::sysconf(_SC_PAGESIZE)))
        throw std::invalid_argument("fusd::Request::reply_map: offset " + std::to_string(offset) +
                                    " is not a multiple of the page size");
    const detail::MapReply map{fd, offset};
    answer(0, std::as_bytes(std::span(&map, 1)));
}

Device &File::device() const { return *state_->device->face; }
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
        f->face->notify(events);
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
    case Op::mmap: return "mmap";
    }
    return "?";
}

} // namespace fusd
