// SPDX-License-Identifier: MIT
//
// The CUSE transport: a device is a real character device made by the kernel's CUSE (part of
// FUSE, fs/fuse/cuse.c), served through libfuse3's cuse_lowlevel API, one session (one open
// /dev/cuse) per device.
//
// How the node comes and goes:
//  - we open /dev/cuse ourselves and give the fd to the session with fuse_session_custom_io()
//    (cuse_lowlevel_setup() would set se->fd directly, but also installs signal handlers and
//    daemonizes: not for a library). The kernel queues CUSE_INIT at once; start() answers it
//    synchronously with DEVNAME=<path below /dev>, and the kernel's handling of that reply
//    (cuse_process_init_reply) does device_add(): devtmpfs creates /dev/NAME, root:root 0600.
//    start() then waits for the node, checks it is ours (its device number is the one in
//    /sys/class/cuse/NAME/dev) and chowns/chmods it to the DeviceOptions values, so the node is
//    ready, with the right permissions, when Loop::add returns.
//  - the kernel removes the node when the /dev/cuse fd is closed (cuse_channel_release), and
//    only then: shutdown() destroys the session (which closes the fd) and waits for it to go.
//
// What CUSE decides for us (user-visible, see probe_cuse()):
//  - reads and writes are always direct and the offset is always 0; the kernel's llseek for
//    CUSE nodes is noop_llseek: lseek() succeeds and returns 0, pread/pwrite succeed and
//    ignore the offset (no ESPIPE, unlike the FUSE and kernel backends). FOPEN_NONSEEKABLE and
//    FOPEN_STREAM are ignored by CUSE (it never calls fuse_finish_open); we set nonseekable and
//    direct_io anyway, as CUSE's own example does. A node is a char device, so there is no
//    f_pos lock: a read blocked in the driver never holds up a write on the same open file.
//  - ioctls are restricted (we never set CUSE_UNRESTRICTED_IOCTL): the kernel copies in and
//    out exactly the _IOC_SIZE of the command, as the FUSE backend does; a command that is not
//    _IOC-encoded (TCGETS...) arrives with no data and its argument as a value. The kernel
//    refuses FUSE_IOCTL_RETRY replies in restricted mode, so pointer-chasing ioctls are simply
//    not offered; 32-bit compat ioctls are refused with ENOSYS like on FUSE. FIONREAD reaches
//    the driver here (the VFS answers it only for regular files), FIONBIO/FIOASYNC do not.
//  - reads and writes larger than 128 KiB arrive in chunks (CUSE keeps FUSE's default
//    max_pages of 32; libfuse announces max_read 128 KiB).
//  - close() waits for the driver's answer to release (fuse_sync_release).
//
// One call: kernel FUSE_READ on /dev/cuse -> on_readable() -> fuse_session_process_buf() ->
// op_read() -> LoopImpl::deliver() -> driver -> reply() -> fuse_reply_buf().
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <poll.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <unordered_set>

#include <cuse_lowlevel.h>

#include "loop_impl.hpp"

namespace fusd::detail {

namespace {

constexpr const char *kCuseControl = "/dev/cuse";
constexpr const char *kCuseClass = "/sys/class/cuse";
constexpr int kInitTimeoutMs = 10'000;  // CUSE_INIT is queued by open(): it is there at once
constexpr int kNodeTimeoutMs = 5'000;   // devtmpfs makes the node while our INIT reply is written
constexpr int kGoneTimeoutMs = 2'000;   // ... and removes it while the fd is closed

// "/dev/a/b" -> "a/b": what CUSE calls the device (DEVNAME).
std::string devname_of(const std::string &path) { return path.rfind("/dev/", 0) == 0 ? path.substr(5) : path; }

// The device's directory in sysfs: a '/' of the name is spelled '!' there (kobject names).
std::string class_dir_of(const std::string &path)
{
    std::string name = devname_of(path);
    for (char &c : name)
        if (c == '/')
            c = '!';
    return std::string(kCuseClass) + "/" + name;
}

// The device number the kernel gave the CUSE device named after `path`, or 0 when there is none.
dev_t cuse_devt(const std::string &path)
{
    std::ifstream in(class_dir_of(path) + "/dev");
    unsigned major = 0, minor = 0;
    char colon = 0;
    if (!(in >> major >> colon >> minor) || colon != ':')
        return 0;
    return makedev(major, minor);
}

// Is `path` the character device `devt`? (lstat: never opens it; opening our own node from the
// loop thread would wait for ourselves.)
bool is_node(const std::string &path, dev_t devt)
{
    struct stat st{};
    return devt != 0 && lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == devt;
}

class CuseTransport final : public Transport {
public:
    explicit CuseTransport(DeviceState &dev) : dev_(dev), loop_(*dev.loop) {}
    ~CuseTransport() override
    {
        if (se_ || fd_ >= 0)
            shutdown();
    }

    void start();

    Backend backend() const override { return Backend::cuse; }
    int fd() const override { return fd_; }
    bool on_readable() override;
    void reply(RequestSlot &slot, int result, std::span<const std::byte> bytes) override;
    void notify_ready(FileState &file, unsigned events) override;
    void keep_buffer(RequestSlot &slot) override;
    void arm(RequestSlot &slot) override;
    void forget_file(FileState &file) override;
    void shutdown() override;
    std::string cleanup_hint() const override { return "cuse:" + class_dir_of(dev_.path); }

private:
    static CuseTransport &self(fuse_req_t req) { return *static_cast<CuseTransport *>(fuse_req_userdata(req)); }
    static std::shared_ptr<FileState> &holder(fuse_file_info *fi)
    {
        return *reinterpret_cast<std::shared_ptr<FileState> *>(static_cast<std::uintptr_t>(fi->fh));
    }
    static Caller caller_of(fuse_req_t req)
    {
        const fuse_ctx *ctx = fuse_req_ctx(req);
        return {ctx->pid, ctx->uid, ctx->gid};
    }
    void deliver(std::shared_ptr<FileState> file, Incoming in);
    void handshake();
    void wait_for_node();

    static void op_init_done(void *userdata);
    static void op_open(fuse_req_t req, fuse_file_info *fi);
    static void op_read(fuse_req_t req, size_t size, off_t off, fuse_file_info *fi);
    static void op_write(fuse_req_t req, const char *buf, size_t size, off_t off, fuse_file_info *fi);
    static void op_release(fuse_req_t req, fuse_file_info *fi);
    static void op_ioctl(fuse_req_t req, int cmd, void *arg, fuse_file_info *fi, unsigned flags,
                         const void *in_buf, size_t in_bufsz, size_t out_bufsz);
    static void op_poll(fuse_req_t req, fuse_file_info *fi, fuse_pollhandle *ph);
    static void on_interrupt(fuse_req_t req, void *data);
    static ssize_t io_read(int fd, void *buf, size_t len, void *userdata);
    static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata);

    static const cuse_lowlevel_ops kOps;
    static const fuse_custom_io kIo;

    DeviceState &dev_;
    LoopImpl &loop_;
    fuse_session *se_ = nullptr;
    int fd_ = -1;
    fuse_buf buf_{};
    bool init_done_ = false;
    dev_t devt_ = 0;                 // our node's device number, once the kernel made it
    std::mutex holders_mutex_;
    std::unordered_set<std::shared_ptr<FileState> *> holders_; // open files, for shutdown
};

const cuse_lowlevel_ops CuseTransport::kOps = [] {
    cuse_lowlevel_ops ops{};
    ops.init_done = op_init_done;
    ops.open = op_open;
    ops.read = op_read;
    ops.write = op_write;
    ops.release = op_release;
    ops.ioctl = op_ioctl;
    ops.poll = op_poll;
    return ops;
}();

const fuse_custom_io CuseTransport::kIo = [] {
    fuse_custom_io io{};
    io.read = io_read;
    io.writev = io_writev;
    return io;
}();

void CuseTransport::start()
{
    const std::string &path = dev_.path;
    // A CUSE device of that name whose daemon has not closed /dev/cuse yet (stopped after a
    // forced removal, or just exiting): the kernel would refuse the name and abort our connection.
    if (access(class_dir_of(path).c_str(), F_OK) == 0)
        throw Error(EEXIST, path + ": a CUSE device of that name still exists (" + class_dir_of(path) +
                                "): its daemon has not closed /dev/cuse yet (stopped?)");
    fd_ = open(kCuseControl, O_RDWR | O_CLOEXEC);
    if (fd_ < 0) {
        int err = errno;
        throw Error(err == ENOENT || err == ENXIO ? ENODEV : err,
                    path + ": cannot open " + kCuseControl + ": " + std::strerror(err) +
                        (err == ENOENT || err == ENODEV || err == ENXIO ? " (modprobe cuse)" : ""));
    }
    try {
        std::string devname = "DEVNAME=" + devname_of(path);
        const char *dev_info[] = {devname.c_str()};
        cuse_info ci{};
        ci.dev_info_argc = 1;
        ci.dev_info_argv = dev_info;
        ci.flags = 0; // restricted ioctls only (see the top of this file)
        const char *argv[] = {"fusd", nullptr};
        fuse_args args = FUSE_ARGS_INIT(1, const_cast<char **>(argv));
        se_ = cuse_lowlevel_new(&args, &ci, &kOps, this);
        if (!se_)
            throw Error(ENOMEM, path + ": cuse_lowlevel_new failed");
        if (int err = fuse_session_custom_io(se_, &kIo, fd_); err != 0) {
            close(fd_); // not the session's yet
            fd_ = -1;
            throw Error(err < 0 ? -err : EIO, path + ": fuse_session_custom_io failed");
        }
        // From here the session owns fd_ and closes it in fuse_session_destroy().
        handshake();
        wait_for_node();
        fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    } catch (...) {
        shutdown();
        throw;
    }
}

// The kernel's first message is CUSE_INIT: answer it now (libfuse's cuse_lowlevel_init replies
// with our DEVNAME, then calls init_done).
void CuseTransport::handshake()
{
    const std::string &path = dev_.path;
    for (int waited_ms = 0; !init_done_;) {
        pollfd p{fd_, POLLIN, 0};
        int r = ::poll(&p, 1, 100);
        if (r == 0 && (waited_ms += 100) >= kInitTimeoutMs)
            throw Error(ETIMEDOUT, path + ": the kernel sent no CUSE_INIT");
        if (r > 0) {
            int res = fuse_session_receive_buf(se_, &buf_);
            if (res <= 0 && res != -EINTR && res != -EAGAIN)
                throw Error(res ? -res : ENOTCONN, path + ": CUSE connection failed during INIT");
            if (res > 0)
                fuse_session_process_buf(se_, &buf_);
        }
    }
}

// The kernel made the device while it took our INIT reply; devtmpfs makes the node then (it
// waits for devtmpfs, so the node is normally there already). Poll for it with a time limit, and
// make sure it is ours before touching its owner and mode.
void CuseTransport::wait_for_node()
{
    const std::string &path = dev_.path;
    for (int waited_ms = 0;; waited_ms += 10) {
        // The kernel aborts the connection when it refuses the device (a CUSE device with that
        // name, no free device number): /dev/cuse then polls POLLERR.
        pollfd p{fd_, 0, 0};
        if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP)))
            throw Error(EEXIST, path + ": the kernel refused the CUSE device (is the name taken by another CUSE "
                                       "device? see dmesg)");
        if (!devt_)
            devt_ = cuse_devt(path);
        if (is_node(path, devt_))
            break;
        struct stat st{};
        if (devt_ && lstat(path.c_str(), &st) == 0 && !(S_ISCHR(st.st_mode) && st.st_rdev == devt_))
            throw Error(EEXIST, path + ": something else appeared at the node's path; not touching it");
        if (waited_ms >= kNodeTimeoutMs)
            throw Error(ETIMEDOUT, path + ": the CUSE device exists but devtmpfs made no node in " +
                                       std::to_string(kNodeTimeoutMs / 1000) + " s (is devtmpfs mounted on /dev?)");
        usleep(10'000);
    }
    // devtmpfs makes CUSE nodes root:root 0600; the device's options say otherwise.
    if (chown(path.c_str(), *dev_.options.owner, *dev_.options.group) < 0 ||
        chmod(path.c_str(), dev_.options.mode & 07777) < 0) {
        int err = errno;
        throw Error(err, path + ": cannot set the node's owner and mode: " + std::strerror(err));
    }
}

void CuseTransport::shutdown()
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
        fuse_session_destroy(se_); // closes fd_: the kernel removes the node, blocked callers are released
        se_ = nullptr;
        fd_ = -1;
    } else if (fd_ >= 0) {
        close(fd_);
        fd_ = -1;
    }
    std::free(buf_.mem);
    buf_.mem = nullptr;
    // The kernel removes the node while the fd is closed; give devtmpfs a moment if it lags.
    // (If a forked child still holds /dev/cuse, the node stays until that child closes it.)
    for (int waited_ms = 0; devt_ && is_node(dev_.path, devt_) && waited_ms < kGoneTimeoutMs; waited_ms += 10)
        usleep(10'000);
    devt_ = 0;
}

bool CuseTransport::on_readable()
{
    for (int i = 0; i < 16; ++i) {
        int res = fuse_session_receive_buf(se_, &buf_);
        if (res == -EAGAIN || res == -EINTR)
            return true;
        if (res <= 0 || fuse_session_exited(se_))
            return false; // aborted (fusdctl rm --force: /sys/class/cuse/NAME/abort)
        fuse_session_process_buf(se_, &buf_);
    }
    return true;
}

void CuseTransport::deliver(std::shared_ptr<FileState> file, Incoming in)
{
    loop_.deliver(std::move(file), in);
}

void CuseTransport::arm(RequestSlot &slot)
{
    // FUSE_INTERRUPT for this request now reaches the core. Requests are processed one at a time
    // on the loop thread and the kernel interrupts only requests we have read, so the callback is
    // never run from inside this call.
    fuse_req_interrupt_func(reinterpret_cast<fuse_req_t>(slot.handle.load(std::memory_order_relaxed)), on_interrupt,
                            &slot);
}

void CuseTransport::keep_buffer(RequestSlot &slot)
{
    // The slot's data points into buf_.mem: hand the whole buffer over; the next receive allocates.
    slot.owned_buffer = buf_.mem;
    buf_.mem = nullptr;
}

void CuseTransport::reply(RequestSlot &slot, int result, std::span<const std::byte> bytes)
{
    auto req = reinterpret_cast<fuse_req_t>(slot.handle.load(std::memory_order_acquire));
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
        fi.direct_io = 1;   // CUSE is always direct anyway
        fi.nonseekable = 1; // ignored by CUSE (see the top of this file)
        auto *h = new std::shared_ptr<FileState>(slot.file);
        {
            std::lock_guard lock(holders_mutex_);
            holders_.insert(h);
        }
        fi.fh = reinterpret_cast<std::uintptr_t>(h);
        if (fuse_reply_open(req, &fi) != 0) { // the caller is gone: no release will follow
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

void CuseTransport::notify_ready(FileState &file, unsigned)
{
    std::lock_guard lock(file.poll_mutex);
    if (file.transport_data)
        fuse_lowlevel_notify_poll(reinterpret_cast<fuse_pollhandle *>(file.transport_data));
}

void CuseTransport::forget_file(FileState &file)
{
    std::lock_guard lock(file.poll_mutex);
    if (file.transport_data)
        fuse_pollhandle_destroy(reinterpret_cast<fuse_pollhandle *>(file.transport_data));
    file.transport_data = 0;
}

// ---- libfuse callbacks (loop thread) -----------------------------------------------------------

void CuseTransport::op_init_done(void *userdata)
{
    static_cast<CuseTransport *>(userdata)->init_done_ = true;
}

void CuseTransport::op_open(fuse_req_t req, fuse_file_info *fi)
{
    CuseTransport &t = self(req);
    Caller caller = caller_of(req);
    auto file = t.loop_.new_file(t.dev_, caller, unsigned(fi->flags));
    Incoming in;
    in.op = Op::open;
    in.handle = reinterpret_cast<std::uintptr_t>(req);
    in.caller = caller;
    in.flags = unsigned(fi->flags);
    t.deliver(std::move(file), in);
}

void CuseTransport::op_read(fuse_req_t req, size_t size, off_t, fuse_file_info *fi)
{
    Incoming in;
    in.op = Op::read;
    in.handle = reinterpret_cast<std::uintptr_t>(req);
    in.caller = caller_of(req);
    in.flags = unsigned(fi->flags);
    in.size = size;
    in.offset = 0; // CUSE always passes 0
    self(req).deliver(holder(fi), in);
}

void CuseTransport::op_write(fuse_req_t req, const char *buf, size_t size, off_t, fuse_file_info *fi)
{
    Incoming in;
    in.op = Op::write;
    in.handle = reinterpret_cast<std::uintptr_t>(req);
    in.caller = caller_of(req);
    in.flags = unsigned(fi->flags);
    in.size = size;
    in.data = reinterpret_cast<const std::byte *>(buf);
    in.data_size = size;
    in.offset = 0;
    self(req).deliver(holder(fi), in);
}

void CuseTransport::op_release(fuse_req_t req, fuse_file_info *fi)
{
    CuseTransport &t = self(req);
    auto *h = reinterpret_cast<std::shared_ptr<FileState> *>(static_cast<std::uintptr_t>(fi->fh));
    std::shared_ptr<FileState> file = std::move(*h);
    {
        std::lock_guard lock(t.holders_mutex_);
        t.holders_.erase(h);
    }
    delete h;
    Incoming in;
    in.op = Op::release;
    in.handle = reinterpret_cast<std::uintptr_t>(req);
    in.caller = caller_of(req);
    in.flags = unsigned(fi->flags);
    t.deliver(std::move(file), in);
}

void CuseTransport::op_ioctl(fuse_req_t req, int cmd, void *arg, fuse_file_info *fi, unsigned flags,
                             const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
    // Restricted mode: the sizes are the command's _IOC_SIZE, copied by the kernel. Never
    // FUSE_IOCTL_UNRESTRICTED (we do not ask for it), so no fuse_reply_ioctl_retry.
    if (flags & (FUSE_IOCTL_COMPAT | FUSE_IOCTL_UNRESTRICTED)) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    Incoming in;
    in.op = Op::ioctl;
    in.handle = reinterpret_cast<std::uintptr_t>(req);
    in.caller = caller_of(req);
    in.flags = holder(fi)->flags; // FUSE_IOCTL carries no flags: the ones given at open
    in.size = out_bufsz;
    in.data = static_cast<const std::byte *>(in_buf);
    in.data_size = in_bufsz;
    in.ioctl_command = std::uint32_t(cmd);
    in.ioctl_argument = reinterpret_cast<std::uintptr_t>(arg);
    self(req).deliver(holder(fi), in);
}

void CuseTransport::op_poll(fuse_req_t req, fuse_file_info *fi, fuse_pollhandle *ph)
{
    // Answered here from the readiness the driver published: no round trip to the driver.
    CuseTransport &t = self(req);
    FileState &file = *holder(fi);
    if (ph) {
        std::lock_guard lock(file.poll_mutex);
        if (file.transport_data)
            fuse_pollhandle_destroy(reinterpret_cast<fuse_pollhandle *>(file.transport_data));
        file.transport_data = reinterpret_cast<std::uintptr_t>(ph);
    }
    unsigned events = file.readiness.load();
    t.loop_.trace_poll(t.dev_, caller_of(req), events);
    fuse_reply_poll(req, events);
}

void CuseTransport::on_interrupt(fuse_req_t req, void *data)
{
    auto *slot = static_cast<RequestSlot *>(data);
    slot->file->device->loop->interrupt(*slot, reinterpret_cast<std::uintptr_t>(req));
}

ssize_t CuseTransport::io_read(int fd, void *buf, size_t len, void *) { return ::read(fd, buf, len); }

ssize_t CuseTransport::io_writev(int fd, struct iovec *iov, int count, void *) { return ::writev(fd, iov, count); }

} // namespace

std::unique_ptr<Transport> make_cuse_transport(DeviceState &device)
{
    struct stat st{};
    if (lstat(device.path.c_str(), &st) == 0)
        throw Error(EEXIST, device.path + ": already exists and is not a fusd device; not replacing it");
    auto t = std::make_unique<CuseTransport>(device);
    t->start();
    return t;
}

BackendStatus probe_cuse()
{
    BackendStatus s{Backend::cuse, false, "",
                    "a real character device node (test -c, a dynamic major) made by CUSE; the offset is always "
                    "0: lseek() succeeds and returns 0 and pread/pwrite ignore the offset (no ESPIPE); no mmap; "
                    "ioctls only with _IOC-encoded sizes, and FIONREAD reaches the driver; reads and writes "
                    "arrive in chunks of at most 128 KiB; close() waits for the driver's release; after "
                    "`rm --force` of a stopped daemon the name stays taken (/sys/class/cuse) until that "
                    "daemon exits"};
    struct stat st{};
    if (stat(kCuseControl, &st) != 0)
        s.reason = "no /dev/cuse: kernel built without CONFIG_CUSE or cuse module not loaded (modprobe cuse)";
    else if (geteuid() != 0)
        s.reason = "not root: /dev/cuse is root's only (mode 0600)";
    else {
        // Opening /dev/cuse starts a connection (the kernel queues CUSE_INIT); closing it
        // unanswered makes nothing.
        int fd = open(kCuseControl, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            s.reason = std::string("cannot open /dev/cuse: ") + std::strerror(err) +
                       (err == ENODEV || err == ENXIO ? " (cuse module not loaded: modprobe cuse)" : "");
        } else {
            close(fd);
            s.usable = true;
        }
    }
    return s;
}

// Removes a CUSE device whose daemon may be stopped or hung. Writing to
// /sys/class/cuse/NAME/abort aborts the connection at once: every caller blocked on the device
// (also in a request the daemon has read) is released with ECONNABORTED, later calls on open
// files get ENOTCONN and new opens fail. But the kernel deletes the device and its node only
// when the daemon's /dev/cuse fd is closed (cuse_channel_release): while the daemon is
// SIGSTOPped, /dev/NAME and /sys/class/cuse/NAME stay until the daemon dies, or is continued,
// reads ENODEV from the aborted connection, and shuts down. So we also unlink the node (only if
// it is still that device's node): the name is gone from /dev at once, but it stays reserved in
// /sys/class/cuse (a new CUSE daemon for it gets EEXIST) until the old daemon's fd closes.
void force_remove_cuse(const std::string &path)
{
    const std::string dir = class_dir_of(path);
    dev_t devt = cuse_devt(path);
    int fd = open((dir + "/abort").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return; // no such CUSE device (any more)
        throw Error(err, path + ": cannot abort the CUSE device (" + dir + "/abort): " + std::strerror(err));
    }
    bool aborted = ::write(fd, "1", 1) == 1;
    int err = errno;
    close(fd);
    if (!aborted)
        throw Error(err, path + ": cannot abort the CUSE device: " + std::strerror(err));
    if (is_node(path, devt))
        unlink(path.c_str());
}

} // namespace fusd::detail
