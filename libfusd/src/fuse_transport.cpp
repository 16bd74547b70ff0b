// SPDX-License-Identifier: MIT
//
// The FUSE transport: a device is a one-file FUSE filesystem mounted directly over a placeholder
// regular file at the device's /dev path (libfuse3 low-level API, one session per device).
//
// Why a mount over a file: FUSE takes the root inode's type from the mount point, so the mount's
// root *is* the device file. open() goes straight to FUSE_OPEN on the root (no lookup), there is no
// second path to clean, and `umount` + unlink removes everything.
//
// Where Debian's libfuse 3.14 falls short, and what is done about it:
//  - no FOPEN_STREAM / FOPEN_PARALLEL_DIRECT_WRITES in fuse_file_info. Without STREAM a read
//    blocked in the driver freezes writes on the same open file; without PARALLEL_DIRECT_WRITES
//    writes from different opens are serialized (a writer blocked on one file blocks all).
//    We give the session a fuse_custom_io whose writev sets both flags in our open replies
//    (marked by a thread-local set around fuse_reply_open, which writes synchronously).
//  - fuse_session_custom_io() means mounting ourselves: mount(2) with fd=..., as root.
//  - the receive buffer belongs to us (fuse_buf.mem), so a write request kept past its callback
//    simply takes the buffer and libfuse allocates a fresh one: no copy.
//
// One call: kernel FUSE_READ -> on_readable() -> fuse_session_process_buf() -> op_read() ->
// LoopImpl::deliver() -> driver -> reply() -> fuse_reply_buf().
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <poll.h>
#include <sstream>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <unordered_set>

#include <fuse_lowlevel.h>

#include "loop_impl.hpp"
#include "registry.hpp"

namespace fusd::detail {

namespace {

constexpr std::uint32_t kFopenStream = 1u << 4;                // <linux/fuse.h> FOPEN_STREAM
constexpr std::uint32_t kFopenParallelDirectWrites = 1u << 6;  // FOPEN_PARALLEL_DIRECT_WRITES
constexpr double kAttrTimeout = 86400.0;                       // attributes change only through us
constexpr const char *kFsType = "fuse.fusd";

struct OutHeader {       // struct fuse_out_header
    std::uint32_t len;
    std::int32_t error;
    std::uint64_t unique;
};
struct OpenOut {         // struct fuse_open_out
    std::uint64_t fh;
    std::uint32_t open_flags;
    std::uint32_t padding;
};

thread_local bool t_patch_open_reply = false;

struct MountEntry {
    unsigned major = 0, minor = 0;
    std::string mount_point, fs_type;
};

std::vector<MountEntry> mounts_at(const std::string &path)
{
    std::vector<MountEntry> out;
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // id parent major:minor root mount_point options [optional...] - fstype source super
        std::istringstream s(line);
        std::string id, parent, devno, root, mp;
        s >> id >> parent >> devno >> root >> mp;
        if (mp != path)
            continue;
        auto dash = line.find(" - ");
        if (dash == std::string::npos)
            continue;
        std::istringstream tail(line.substr(dash + 3));
        MountEntry e;
        tail >> e.fs_type;
        e.mount_point = mp;
        std::sscanf(devno.c_str(), "%u:%u", &e.major, &e.minor);
        out.push_back(e);
    }
    return out;
}

// Abort a FUSE connection through fusectl: every caller waiting on it is released at once.
void abort_connection(unsigned minor)
{
    const std::string base = "/sys/fs/fuse/connections";
    std::string abort_file = base + "/" + std::to_string(minor) + "/abort";
    if (access(abort_file.c_str(), W_OK) != 0)
        mount("fusectl", base.c_str(), "fusectl", 0, nullptr); // not mounted yet: mount it
    int fd = open(abort_file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)!::write(fd, "1", 1);
        close(fd);
    }
}

// Unmount every fusd FUSE mount at path (aborting its connection when asked), then remove the
// placeholder if it is an empty regular file. Returns true when something was removed.
bool remove_fuse_node(const std::string &path, bool abort_first)
{
    bool cleaned = false;
    auto mounts = mounts_at(path);
    bool ours = !mounts.empty();
    for (const MountEntry &m : mounts) {
        if (m.fs_type != kFsType)
            return cleaned; // something else is mounted there: not ours to touch
        if (abort_first)
            abort_connection(m.minor);
        if (umount2(path.c_str(), MNT_DETACH) == 0)
            cleaned = true;
    }
    // Whoever unmounted (we, or the daemon racing us), the empty placeholder goes.
    struct stat st{};
    if (ours && mounts_at(path).empty() && lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_size == 0 && unlink(path.c_str()) == 0)
        cleaned = true;
    return cleaned;
}

class FuseTransport final : public Transport {
public:
    explicit FuseTransport(DeviceState &dev) : dev_(dev), loop_(*dev.loop) {}
    ~FuseTransport() override
    {
        if (se_)
            shutdown();
    }

    void start();

    Backend backend() const override { return Backend::fuse; }
    int fd() const override { return fd_; }
    bool on_readable() override;
    void reply(RequestSlot &slot, int result, std::span<const std::byte> bytes) override;
    void notify_ready(FileState &file, unsigned events) override;
    void keep_buffer(RequestSlot &slot) override;
    void arm(RequestSlot &slot) override;
    void forget_file(FileState &file) override;
    void shutdown() override;
    std::string cleanup_hint() const override { return "fuse:" + std::to_string(conn_minor_); }

private:
    static FuseTransport &self(fuse_req_t req) { return *static_cast<FuseTransport *>(fuse_req_userdata(req)); }
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
    struct stat attributes();

    static void op_init(void *userdata, fuse_conn_info *conn);
    static void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi);
    static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, fuse_file_info *fi);
    static void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi);
    static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info *fi);
    static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, fuse_file_info *fi);
    static void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi);
    static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, fuse_file_info *fi,
                         unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz);
    static void op_poll(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi, fuse_pollhandle *ph);
    static void on_interrupt(fuse_req_t req, void *data);
    static ssize_t io_read(int fd, void *buf, size_t len, void *userdata);
    static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata);

    static const fuse_lowlevel_ops kOps;
    static const fuse_custom_io kIo;

    DeviceState &dev_;
    LoopImpl &loop_;
    fuse_session *se_ = nullptr;
    int fd_ = -1;
    fuse_buf buf_{};
    bool init_done_ = false;
    bool mounted_ = false;
    ino_t placeholder_ino_ = 0;
    unsigned conn_major_ = 0, conn_minor_ = 0;
    std::int64_t created_s_ = 0;
    std::mutex attr_mutex_;          // mode/owner can change by chmod/chown on the node
    std::mutex holders_mutex_;
    std::unordered_set<std::shared_ptr<FileState> *> holders_; // open files, for shutdown
};

const fuse_lowlevel_ops FuseTransport::kOps = [] {
    fuse_lowlevel_ops ops{};
    ops.init = op_init;
    ops.getattr = op_getattr;
    ops.setattr = op_setattr;
    ops.open = op_open;
    ops.read = op_read;
    ops.write = op_write;
    ops.release = op_release;
    ops.ioctl = op_ioctl;
    ops.poll = op_poll;
    return ops;
}();

const fuse_custom_io FuseTransport::kIo = [] {
    fuse_custom_io io{};
    io.read = io_read;
    io.writev = io_writev;
    return io;
}();

void FuseTransport::start()
{
    const std::string &path = dev_.path;
    if (geteuid() != 0)
        throw Error(EACCES, path + ": the FUSE backend needs root (it mounts over a file in /dev)");
    int placeholder = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (placeholder < 0) {
        int err = errno;
        throw Error(err, path + ": cannot create the node: " + std::strerror(err));
    }
    struct stat st{};
    fstat(placeholder, &st);
    placeholder_ino_ = st.st_ino;
    close(placeholder);
    created_s_ = realtime_ns() / 1'000'000'000;

    try {
        fd_ = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (fd_ < 0)
            throw Error(errno, path + ": cannot open /dev/fuse: " + std::strerror(errno));
        const char *argv[] = {"fusd", nullptr};
        fuse_args args = FUSE_ARGS_INIT(1, const_cast<char **>(argv));
        se_ = fuse_session_new(&args, &kOps, sizeof kOps, this);
        fuse_opt_free_args(&args);
        if (!se_) {
            close(fd_);
            fd_ = -1;
            throw Error(ENOMEM, path + ": fuse_session_new failed");
        }
        if (fuse_session_custom_io(se_, &kIo, fd_) != 0) {
            close(fd_);
            fd_ = -1;
            throw Error(EIO, path + ": fuse_session_custom_io failed");
        }
        std::string opts = "fd=" + std::to_string(fd_) +
                           ",rootmode=100000,user_id=0,group_id=0,allow_other,default_permissions";
        std::string source = "fusd:" + path.substr(5);
        if (mount(source.c_str(), path.c_str(), kFsType, MS_NOSUID | MS_NODEV | MS_NOATIME, opts.c_str()) < 0)
            throw Error(errno, path + ": cannot mount FUSE over the node: " + std::strerror(errno));
        mounted_ = true;
        auto ms = mounts_at(path);
        if (!ms.empty()) {
            conn_major_ = ms.back().major;
            conn_minor_ = ms.back().minor;
        }
        // The kernel's first message is FUSE_INIT; answer it now so the node is ready on return.
        for (int waited_ms = 0; !init_done_;) {
            pollfd p{fd_, POLLIN, 0};
            int r = ::poll(&p, 1, 100);
            if (r == 0 && (waited_ms += 100) >= 10'000)
                throw Error(ETIMEDOUT, path + ": the kernel sent no FUSE_INIT");
            if (r > 0) {
                int res = fuse_session_receive_buf(se_, &buf_);
                if (res <= 0 && res != -EINTR && res != -EAGAIN)
                    throw Error(res ? -res : ENOTCONN, path + ": FUSE connection failed during INIT");
                if (res > 0)
                    fuse_session_process_buf(se_, &buf_);
            }
        }
        fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    } catch (...) {
        shutdown();
        throw;
    }
}

void FuseTransport::shutdown()
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
    } else if (fd_ >= 0) {
        close(fd_);
        fd_ = -1;
    }
    std::free(buf_.mem);
    buf_.mem = nullptr;
    const std::string &path = dev_.path;
    if (mounted_) {
        mounted_ = false;
        // Only our own mount: after a forced removal somebody else may serve this name now.
        for (const MountEntry &m : mounts_at(path))
            if (m.fs_type == kFsType && m.major == conn_major_ && m.minor == conn_minor_)
                umount2(path.c_str(), MNT_DETACH);
    }
    struct stat st{};
    if (placeholder_ino_ && lstat(path.c_str(), &st) == 0 && st.st_ino == placeholder_ino_ && S_ISREG(st.st_mode) &&
        mounts_at(path).empty())
        unlink(path.c_str());
    placeholder_ino_ = 0;
}

bool FuseTransport::on_readable()
{
    for (int i = 0; i < 16; ++i) {
        int res = fuse_session_receive_buf(se_, &buf_);
        if (res == -EAGAIN || res == -EINTR)
            return true;
        if (res <= 0 || fuse_session_exited(se_))
            return false; // unmounted or aborted (fusdctl rm --force)
        fuse_session_process_buf(se_, &buf_);
    }
    return true;
}

void FuseTransport::deliver(std::shared_ptr<FileState> file, Incoming in)
{
    loop_.deliver(std::move(file), in);
}

void FuseTransport::arm(RequestSlot &slot)
{
    // FUSE_INTERRUPT for this request now reaches the core. Requests are processed one at a time
    // on the loop thread and the kernel interrupts only requests we have read, so the callback is
    // never run from inside this call.
    fuse_req_interrupt_func(reinterpret_cast<fuse_req_t>(slot.handle.load(std::memory_order_relaxed)), on_interrupt,
                            &slot);
}

void FuseTransport::keep_buffer(RequestSlot &slot)
{
    // The slot's data points into buf_.mem: hand the whole buffer over; the next receive allocates.
    slot.owned_buffer = buf_.mem;
    buf_.mem = nullptr;
}

void FuseTransport::reply(RequestSlot &slot, int result, std::span<const std::byte> bytes)
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
        fi.direct_io = 1;
        fi.nonseekable = 1;
        auto *h = new std::shared_ptr<FileState>(slot.file);
        {
            std::lock_guard lock(holders_mutex_);
            holders_.insert(h);
        }
        fi.fh = reinterpret_cast<std::uintptr_t>(h);
        t_patch_open_reply = true;
        if (fuse_reply_open(req, &fi) != 0) { // the caller is gone: no release will follow
            std::lock_guard lock(holders_mutex_);
            holders_.erase(h);
            delete h;
        }
        t_patch_open_reply = false;
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

void FuseTransport::notify_ready(FileState &file, unsigned)
{
    std::lock_guard lock(file.poll_mutex);
    if (file.transport_data)
        fuse_lowlevel_notify_poll(reinterpret_cast<fuse_pollhandle *>(file.transport_data));
}

void FuseTransport::forget_file(FileState &file)
{
    std::lock_guard lock(file.poll_mutex);
    if (file.transport_data)
        fuse_pollhandle_destroy(reinterpret_cast<fuse_pollhandle *>(file.transport_data));
    file.transport_data = 0;
}

struct stat FuseTransport::attributes()
{
    struct stat st{};
    std::lock_guard lock(attr_mutex_);
    st.st_ino = FUSE_ROOT_ID;
    st.st_mode = S_IFREG | (dev_.options.mode & 07777);
    st.st_nlink = 1;
    st.st_uid = *dev_.options.owner;
    st.st_gid = *dev_.options.group;
    st.st_atime = st.st_mtime = st.st_ctime = created_s_;
    return st;
}

// ---- libfuse callbacks (loop thread) -----------------------------------------------------------

void FuseTransport::op_init(void *userdata, fuse_conn_info *conn)
{
    auto *t = static_cast<FuseTransport *>(userdata);
    conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    t->init_done_ = true;
}

void FuseTransport::op_getattr(fuse_req_t req, fuse_ino_t, fuse_file_info *)
{
    struct stat st = self(req).attributes();
    fuse_reply_attr(req, &st, kAttrTimeout);
}

void FuseTransport::op_setattr(fuse_req_t req, fuse_ino_t, struct stat *attr, int to_set, fuse_file_info *)
{
    // chmod/chown of the node change what later opens are allowed (the kernel checked the caller
    // may do it: default_permissions). Truncation (`echo > /dev/x`) and times are accepted and ignored.
    FuseTransport &t = self(req);
    {
        std::lock_guard lock(t.attr_mutex_);
        if (to_set & FUSE_SET_ATTR_MODE)
            t.dev_.options.mode = attr->st_mode & 07777;
        if (to_set & FUSE_SET_ATTR_UID)
            t.dev_.options.owner = attr->st_uid;
        if (to_set & FUSE_SET_ATTR_GID)
            t.dev_.options.group = attr->st_gid;
    }
    struct stat st = t.attributes();
    fuse_reply_attr(req, &st, kAttrTimeout);
}

void FuseTransport::op_open(fuse_req_t req, fuse_ino_t, fuse_file_info *fi)
{
    FuseTransport &t = self(req);
    Caller caller = caller_of(req);
    auto file = t.loop_.new_file(t.dev_, caller, unsigned(fi->flags));
    Incoming in;
    in.op = Op::open;
    in.handle = reinterpret_cast<std::uintptr_t>(req);
    in.caller = caller;
    in.flags = unsigned(fi->flags);
    t.deliver(std::move(file), in);
}

void FuseTransport::op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info *fi)
{
    Incoming in;
    in.op = Op::read;
    in.handle = reinterpret_cast<std::uintptr_t>(req);
    in.caller = caller_of(req);
    in.flags = unsigned(fi->flags);
    in.size = size;
    in.offset = std::uint64_t(off);
    self(req).deliver(holder(fi), in);
}

void FuseTransport::op_write(fuse_req_t req, fuse_ino_t, const char *buf, size_t size, off_t off, fuse_file_info *fi)
{
    Incoming in;
    in.op = Op::write;
    in.handle = reinterpret_cast<std::uintptr_t>(req);
    in.caller = caller_of(req);
    in.flags = unsigned(fi->flags);
    in.size = size;
    in.data = reinterpret_cast<const std::byte *>(buf);
    in.data_size = size;
    in.offset = std::uint64_t(off);
    self(req).deliver(holder(fi), in);
}

void FuseTransport::op_release(fuse_req_t req, fuse_ino_t, fuse_file_info *fi)
{
    FuseTransport &t = self(req);
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
    if (in.caller.pid == 0) // FUSE_RELEASE comes from no process in particular: name the opener
        in.caller = file->opener;
    in.flags = unsigned(fi->flags);
    t.deliver(std::move(file), in);
}

void FuseTransport::op_ioctl(fuse_req_t req, fuse_ino_t, unsigned int cmd, void *arg, fuse_file_info *fi,
                             unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
    if (flags & FUSE_IOCTL_COMPAT) {
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
    in.ioctl_command = cmd;
    in.ioctl_argument = reinterpret_cast<std::uintptr_t>(arg);
    self(req).deliver(holder(fi), in);
}

void FuseTransport::op_poll(fuse_req_t req, fuse_ino_t, fuse_file_info *fi, fuse_pollhandle *ph)
{
    // Answered here from the readiness the driver published: no round trip to the driver.
    FuseTransport &t = self(req);
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

void FuseTransport::on_interrupt(fuse_req_t req, void *data)
{
    auto *slot = static_cast<RequestSlot *>(data);
    slot->file->device->loop->interrupt(*slot, reinterpret_cast<std::uintptr_t>(req));
}

ssize_t FuseTransport::io_read(int fd, void *buf, size_t len, void *) { return ::read(fd, buf, len); }

ssize_t FuseTransport::io_writev(int fd, struct iovec *iov, int count, void *)
{
    if (t_patch_open_reply && count >= 2 && iov[0].iov_len == sizeof(OutHeader) &&
        iov[1].iov_len == sizeof(OpenOut)) {
        auto *hdr = static_cast<OutHeader *>(iov[0].iov_base);
        if (hdr->error == 0)
            static_cast<OpenOut *>(iov[1].iov_base)->open_flags |= kFopenStream | kFopenParallelDirectWrites;
    }
    return ::writev(fd, iov, count);
}

} // namespace

std::unique_ptr<Transport> make_fuse_transport(DeviceState &device)
{
    struct stat st{};
    if (lstat(device.path.c_str(), &st) == 0)
        throw Error(EEXIST, device.path + ": already exists and is not a fusd device; not replacing it");
    auto t = std::make_unique<FuseTransport>(device);
    t->start();
    return t;
}

BackendStatus probe_fuse()
{
    BackendStatus s{Backend::fuse, false, "",
                    "the node is a regular file with a FUSE mount over it: stat(2) shows a regular file "
                    "(test -c fails, isatty() is 0); ioctls only with _IOC-encoded sizes; FIONREAD and "
                    "FIONBIO are answered by the kernel; lseek/pread fail with ESPIPE"};
    if (access("/dev/fuse", F_OK) != 0)
        s.reason = "no /dev/fuse: the kernel has no FUSE support or it is not loaded (modprobe fuse)";
    else if (geteuid() != 0)
        s.reason = "not root: the FUSE backend mounts over a file in /dev";
    else {
        int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (fd < 0)
            s.reason = std::string("cannot open /dev/fuse: ") + std::strerror(errno);
        else {
            close(fd);
            s.usable = true;
        }
    }
    return s;
}

bool clean_stale_node(const std::string &path, const std::string &backend)
{
    if (backend == "fuse" || backend.empty())
        return remove_fuse_node(path, /*abort_first=*/true);
    return false; // the kernel module and CUSE remove their nodes when the daemon's fd closes
}

void force_remove_fuse(const std::string &path) { remove_fuse_node(path, /*abort_first=*/true); }

} // namespace fusd::detail
