// SPDX-License-Identifier: MIT
//
// What the FUSE and CUSE transports share: each device is one libfuse low-level session, driven
// from the core's epoll loop (fuse_session_receive_buf + fuse_session_process_buf on a
// nonblocking fd given with fuse_session_custom_io), and the request handlers and replies are the
// same. The derived transports add how the session is made and how the node appears and goes.
//
// Open files: fi->fh is a heap std::shared_ptr<FileState> ("holder"), created by the open reply
// and deleted at release; holders_ lists them so that shutdown can drop those never released.
#pragma once

#include <mutex>
#include <unordered_set>

#include <fuse_lowlevel.h>

#include "loop_impl.hpp"

namespace fusd::detail {

class LibfuseTransport : public Transport {
public:
    explicit LibfuseTransport(DeviceState &dev) : dev_(dev), loop_(*dev.loop) { arms_requests_ = true; }

    int fd() const override { return fd_; }
    bool on_readable() override;
    void reply(RequestSlot &slot, int result, std::span<const std::byte> bytes) override;
    void retry(RequestSlot &slot, std::span<const MemoryRange> in, std::span<const MemoryRange> out) override;
    void notify_ready(FileState &file, unsigned events) override;
    void keep_buffer(RequestSlot &slot) override;
    void arm(RequestSlot &slot) override;
    void forget_file(FileState &file) override;

protected:
    // The request handlers both op tables use (FUSE's carry an inode number, dropped by its
    // trampolines). Loop thread.
    static void handle_open(fuse_req_t req, fuse_file_info *fi);
    static void handle_read(fuse_req_t req, size_t size, off_t off, fuse_file_info *fi);
    static void handle_write(fuse_req_t req, const char *buf, size_t size, off_t off, fuse_file_info *fi);
    static void handle_release(fuse_req_t req, fuse_file_info *fi);
    static void handle_ioctl(fuse_req_t req, unsigned cmd, void *arg, fuse_file_info *fi, unsigned flags,
                             const void *in_buf, size_t in_bufsz, size_t out_bufsz);
    static void handle_poll(fuse_req_t req, fuse_file_info *fi, fuse_pollhandle *ph);

    // Sends an open reply; FUSE patches its flags (see fuse_transport.cpp).
    virtual int send_open_reply(fuse_req_t req, fuse_file_info *fi) { return fuse_reply_open(req, fi); }
    // The channel's I/O for fuse_session_custom_io(), which wants both: read(2), and writev(2)
    // unless the transport gives its own (FUSE patches its open replies).
    using ChannelWritev = ssize_t (*)(int fd, struct iovec *iov, int count, void *userdata);
    static fuse_custom_io channel_io(ChannelWritev writev = plain_writev);
    static ssize_t plain_writev(int fd, struct iovec *iov, int count, void *userdata);
    // Answers the kernel's INIT (FUSE_INIT or CUSE_INIT) before Loop::add returns; `done` is set
    // by the session's init callback.
    void handshake(const bool &done, const char *what);
    // Drops the open files never released, destroys the session (closing fd_: the kernel releases
    // every blocked caller) and frees the receive buffer.
    void close_session();

    static LibfuseTransport &self(fuse_req_t req) { return *static_cast<LibfuseTransport *>(fuse_req_userdata(req)); }
    static std::shared_ptr<FileState> &holder(fuse_file_info *fi)
    {
        return *reinterpret_cast<std::shared_ptr<FileState> *>(static_cast<std::uintptr_t>(fi->fh));
    }
    // FUSE and CUSE give the calling thread's id and its filesystem ids: the process id and the
    // real ids come from /proc, read when first asked for (see fusd::Caller) or at once here.
    static Caller unresolved_caller_of(fuse_req_t req)
    {
        const fuse_ctx *ctx = fuse_req_ctx(req);
        return {ctx->pid, ctx->uid, ctx->gid, uid_t(-1), gid_t(-1)};
    }
    static Caller caller_of(fuse_req_t req)
    {
        Caller c = unresolved_caller_of(req);
        resolve_caller_ids(c);
        return c;
    }
    // A request's op, transport_id (the fuse_req_t) and caller (still unresolved); the handler
    // adds the rest.
    static Incoming incoming(fuse_req_t req, Op op)
    {
        Incoming in;
        in.op = op;
        in.transport_id = reinterpret_cast<std::uintptr_t>(req);
        in.caller = unresolved_caller_of(req);
        in.caller_unresolved = true;
        return in;
    }

    DeviceState &dev_;
    LoopImpl &loop_;
    bool unrestricted_ioctls_ = false; // CUSE_UNRESTRICTED_IOCTL: the driver may ask for retries
    fuse_session *se_ = nullptr;
    int fd_ = -1; // the session's channel (/dev/fuse or /dev/cuse): fuse_session_destroy() closes it

private:
    static void on_interrupt(fuse_req_t req, void *data);

    fuse_buf buf_{};
    std::mutex holders_mutex_;
    std::unordered_set<std::shared_ptr<FileState> *> holders_;
};

} // namespace fusd::detail
