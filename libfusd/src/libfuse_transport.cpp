// SPDX-License-Identifier: MIT
// The libfuse session code shared by the FUSE and CUSE transports (see libfuse_transport.hpp).
#include "libfuse_transport.hpp"

#include <cerrno>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

#include <linux/ioctl.h>

namespace fusd::detail {

fuse_custom_io LibfuseTransport::channel_io(ChannelWritev writev)
{
    fuse_custom_io io{};
    io.read = [](int fd, void *buf, size_t len, void *) { return ::read(fd, buf, len); };
    io.writev = writev;
    return io;
}

ssize_t LibfuseTransport::plain_writev(int fd, struct iovec *iov, int count, void *) { return ::writev(fd, iov, count); }

void LibfuseTransport::handshake(const bool &done, const char *what)
{
    const std::string &path = dev_.path;
    for (int waited_ms = 0; !done;) {
        pollfd p{fd_, POLLIN, 0};
        int r = ::poll(&p, 1, 100);
        if (r == 0 && (waited_ms += 100) >= 10'000)
            throw Error(ETIMEDOUT, path + ": the kernel sent no " + what);
        if (r > 0) {
            int res = fuse_session_receive_buf(se_, &buf_);
            if (res <= 0 && res != -EINTR && res != -EAGAIN)
                throw Error(res ? -res : ENOTCONN, path + ": connection failed during " + what);
            if (res > 0)
                fuse_session_process_buf(se_, &buf_);
        }
    }
}

void LibfuseTransport::close_session()
{
    {
        std::lock_guard lock(holders_mutex_);
        for (auto *h : holders_) {
            forget_file(**h);
            delete h;
        }
        holders_.clear();
    }
    if (se_) {
        fuse_session_destroy(se_); // closes fd_: the connection ends, blocked callers are released
        se_ = nullptr;
        fd_ = -1;
    }
    std::free(buf_.mem);
    buf_.mem = nullptr;
}

bool LibfuseTransport::on_readable()
{
    // One message per wake-up: the epoll set is level-triggered, so more queued messages bring us
    // straight back, and a lone request (the common case) costs no extra read that says EAGAIN.
    int res = fuse_session_receive_buf(se_, &buf_);
    if (res == -EAGAIN || res == -EINTR)
        return true;
    if (res <= 0 || fuse_session_exited(se_))
        return false; // unmounted or aborted (fusdctl rm --force)
    fuse_session_process_buf(se_, &buf_);
    return true;
}

void LibfuseTransport::arm(RequestSlot &slot)
{
    // FUSE_INTERRUPT for this request now reaches the core. Requests are processed one at a time
    // on the loop thread and the kernel interrupts only requests we have read, so the callback is
    // never run from inside this call.
    fuse_req_interrupt_func(reinterpret_cast<fuse_req_t>(slot.transport_id.load(std::memory_order_relaxed)), on_interrupt,
                            &slot);
}

void LibfuseTransport::keep_buffer(RequestSlot &slot)
{
    // The slot's data points into buf_.mem: hand the whole buffer over; the next receive allocates.
    slot.owned_buffer = buf_.mem;
    buf_.mem = nullptr;
}

void LibfuseTransport::reply(RequestSlot &slot, int result, std::span<const std::byte> bytes)
{
    auto req = reinterpret_cast<fuse_req_t>(slot.transport_id.load(std::memory_order_acquire));
    if (slot.op == Op::release) {
        fuse_reply_err(req, 0); // a failed close is still a close
        return;
    }
    if (result < 0) {
        fuse_reply_err(req, -result);
        return;
    }
    switch (slot.op) {
    case Op::open: {
        fuse_file_info fi{};
        fi.direct_io = 1;
        fi.nonseekable = 1;
        // No FUSE_FLUSH on close: there is no cache to flush, and the kernel waits for a flush
        // without letting even SIGKILL end the wait, so a stopped daemon would hang every close
        // (and every exit of a process holding the descriptor) in uninterruptible sleep.
        fi.noflush = 1;
        auto *h = new std::shared_ptr<FileState>(slot.file);
        {
            std::lock_guard lock(holders_mutex_);
            holders_.insert(h);
        }
        fi.fh = reinterpret_cast<std::uintptr_t>(h);
        if (send_open_reply(req, &fi) != 0) { // the caller is gone: no release will follow
            std::lock_guard lock(holders_mutex_);
            holders_.erase(h);
            delete h;
        }
        break;
    }
    case Op::read:
        fuse_reply_buf(req, reinterpret_cast<const char *>(bytes.data()), bytes.size());
        break;
    case Op::write:
        fuse_reply_write(req, std::size_t(result));
        break;
    case Op::ioctl:
        fuse_reply_ioctl(req, result, bytes.data(), bytes.size());
        break;
    default:
        fuse_reply_err(req, EIO);
        break;
    }
}

// Only CUSE's unrestricted ioctls can ask the kernel for the caller's memory (FUSE_IOCTL_RETRY);
// the kernel refuses a retry of a restricted one (FUSE) with EIO, so FUSE answers EOPNOTSUPP.
void LibfuseTransport::retry(RequestSlot &slot, std::span<const MemoryRange> in, std::span<const MemoryRange> out)
{
    auto req = reinterpret_cast<fuse_req_t>(slot.transport_id.load(std::memory_order_acquire));
    if (!unrestricted_ioctls_) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    std::vector<iovec> iov;
    iov.reserve(in.size() + out.size());
    for (auto ranges : {in, out})
        for (const MemoryRange &r : ranges)
            iov.push_back({reinterpret_cast<void *>(std::uintptr_t(r.address)), r.length});
    fuse_reply_ioctl_retry(req, in.empty() ? nullptr : iov.data(), in.size(),
                           out.empty() ? nullptr : iov.data() + in.size(), out.size());
}

void LibfuseTransport::notify_ready(FileState &file, unsigned)
{
    std::lock_guard lock(file.poll_mutex);
    if (file.transport_data)
        fuse_lowlevel_notify_poll(reinterpret_cast<fuse_pollhandle *>(file.transport_data));
}

void LibfuseTransport::forget_file(FileState &file)
{
    std::lock_guard lock(file.poll_mutex);
    if (file.transport_data)
        fuse_pollhandle_destroy(reinterpret_cast<fuse_pollhandle *>(file.transport_data));
    file.transport_data = 0;
}

void LibfuseTransport::on_interrupt(fuse_req_t req, void *data)
{
    // libfuse read `data` before the driver's answer, on another thread, may have freed the
    // request and recycled the slot (libfuse holds only its own request meanwhile, not ours).
    // Like the kernel transport, take a reference first, and only on a slot still out (a slot at
    // zero is free or being recycled); LoopImpl::interrupt then checks it is still this request.
    auto *slot = static_cast<RequestSlot *>(data);
    int refs = slot->refs.load(std::memory_order_acquire);
    while (refs > 0 && !slot->refs.compare_exchange_weak(refs, refs + 1, std::memory_order_acq_rel))
        ;
    if (refs == 0)
        return; // answered and recycled: nothing to interrupt
    self(req).loop_.interrupt(*slot, reinterpret_cast<std::uintptr_t>(req));
    LoopImpl::unref(slot);
}

// ---- request handlers (loop thread) ------------------------------------------------------------

void LibfuseTransport::handle_open(fuse_req_t req, fuse_file_info *fi)
{
    LibfuseTransport &t = self(req);
    Incoming in = incoming(req, Op::open);
    resolve_caller_ids(in.caller); // File::opener() is complete from the start
    in.caller_unresolved = false;
    in.flags = unsigned(fi->flags);
    t.loop_.deliver(t.loop_.new_file(t.dev_, in.caller, in.flags), in);
}

void LibfuseTransport::handle_read(fuse_req_t req, size_t size, off_t off, fuse_file_info *fi)
{
    Incoming in = incoming(req, Op::read);
    in.flags = unsigned(fi->flags);
    in.size = size;
    in.offset = std::uint64_t(off);
    self(req).loop_.deliver(holder(fi), in);
}

void LibfuseTransport::handle_write(fuse_req_t req, const char *buf, size_t size, off_t off, fuse_file_info *fi)
{
    Incoming in = incoming(req, Op::write);
    in.flags = unsigned(fi->flags);
    in.size = size;
    in.data = reinterpret_cast<const std::byte *>(buf);
    in.data_size = size;
    in.offset = std::uint64_t(off);
    self(req).loop_.deliver(holder(fi), in);
}

void LibfuseTransport::handle_release(fuse_req_t req, fuse_file_info *fi)
{
    LibfuseTransport &t = self(req);
    auto *h = &holder(fi);
    std::shared_ptr<FileState> file = std::move(*h);
    {
        std::lock_guard lock(t.holders_mutex_);
        t.holders_.erase(h);
    }
    delete h;
    Incoming in = incoming(req, Op::release);
    if (in.caller.pid == 0) { // RELEASE comes from no process in particular: name the opener
        in.caller = file->opener;
        in.caller_unresolved = false;
    }
    in.flags = unsigned(fi->flags);
    t.loop_.deliver(std::move(file), in);
}

void LibfuseTransport::handle_ioctl(fuse_req_t req, unsigned cmd, void *arg, fuse_file_info *fi, unsigned flags,
                                    const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
    const IoctlPlan plan = plan_libfuse_ioctl(cmd, flags & FUSE_IOCTL_COMPAT, flags & FUSE_IOCTL_UNRESTRICTED,
                                              in_bufsz, out_bufsz);
    if (plan.action == IoctlPlan::Action::refuse) {
        fuse_reply_err(req, plan.error);
        return;
    }
    if (plan.action == IoctlPlan::Action::retry) {
        iovec at_arg{arg, plan.size};
        fuse_reply_ioctl_retry(req, plan.in ? &at_arg : nullptr, plan.in, plan.out ? &at_arg : nullptr, plan.out);
        return;
    }
    Incoming in = incoming(req, Op::ioctl);
    in.flags = holder(fi)->flags; // FUSE_IOCTL carries no flags: the ones given at open
    in.size = out_bufsz;
    in.data = static_cast<const std::byte *>(in_buf);
    in.data_size = in_bufsz;
    in.ioctl_command = cmd;
    in.ioctl_argument = reinterpret_cast<std::uintptr_t>(arg);
    self(req).loop_.deliver(holder(fi), in);
}

void LibfuseTransport::handle_poll(fuse_req_t req, fuse_file_info *fi, fuse_pollhandle *ph)
{
    // Answered here from the readiness the driver published: no round trip to the driver.
    LibfuseTransport &t = self(req);
    FileState &file = *holder(fi);
    if (ph) {
        std::lock_guard lock(file.poll_mutex);
        if (file.transport_data)
            fuse_pollhandle_destroy(reinterpret_cast<fuse_pollhandle *>(file.transport_data));
        file.transport_data = reinterpret_cast<std::uintptr_t>(ph);
    }
    unsigned events = file.readiness.load();
    if (t.loop_.tracing())
        t.loop_.trace_poll(t.dev_, caller_of(req), events);
    fuse_reply_poll(req, events);
}

} // namespace fusd::detail
