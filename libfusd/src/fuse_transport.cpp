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
//    STREAM works. PARALLEL_DIRECT_WRITES does not help here: the kernel (6.x) still takes the
//    exclusive inode lock for a direct write past EOF, and a stream file's writes are all at
//    offset 0 of an empty file. Faking a large st_size would lift that but breaks tools that
//    trust st_size, so writes from different opens stay serialized on this backend (documented
//    in the backend's row, fuse_backend.cpp, and README).
//  - fuse_session_custom_io() means mounting ourselves: mount(2) with fd=..., as root.
//  - the receive buffer belongs to us (fuse_buf.mem), so a write request kept past its callback
//    simply takes the buffer and libfuse allocates a fresh one: no copy.
//
// One call: kernel FUSE_READ -> on_readable() -> fuse_session_process_buf() -> the read entry
// of kOps -> LibfuseTransport::handle_read() -> LoopImpl::deliver() -> driver -> reply() ->
// fuse_reply_buf().
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

#include "fd.hpp"
#include "fuse_mount.hpp"
#include "libfuse_transport.hpp"
#include "mount_right.hpp"
#include "uring_transport.hpp"

namespace fusd::detail {

namespace {

constexpr std::uint32_t kFopenStream = 1u << 4;                // <linux/fuse.h> FOPEN_STREAM
constexpr std::uint32_t kFopenParallelDirectWrites = 1u << 6;  // FOPEN_PARALLEL_DIRECT_WRITES
constexpr double kAttrTimeout = kFuseAttrTimeout;
constexpr const char *kFsType = kFuseFsType;

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

} // namespace

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

ino_t make_placeholder(const std::string &path)
{
    if (!may_mount_fuse())
        throw Error(EACCES, path + ": the FUSE backend needs root (it mounts over a file in /dev), or a "
                                   "namespace of one's own (fusdctl run --drivers)");
    Fd placeholder{open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600)};
    if (!placeholder) {
        int err = errno;
        throw Error(err, path + ": cannot create the node: " + std::strerror(err));
    }
    struct stat st{};
    fstat(placeholder.get(), &st);
    return st.st_ino;
}

void mount_fuse_over(const std::string &path, int fuse_fd, unsigned &major, unsigned &minor)
{
    std::string opts = "fd=" + std::to_string(fuse_fd) + ",rootmode=100000,user_id=" + std::to_string(geteuid()) +
                       ",group_id=" + std::to_string(getegid()) + ",allow_other,default_permissions";
    std::string source = "fusd:" + path.substr(5);
    if (mount(source.c_str(), path.c_str(), kFsType, MS_NOSUID | MS_NODEV | MS_NOATIME, opts.c_str()) < 0)
        throw Error(errno, path + ": cannot mount FUSE over the node: " + std::strerror(errno));
    auto ms = mounts_at(path);
    major = ms.empty() ? 0 : ms.back().major;
    minor = ms.empty() ? 0 : ms.back().minor;
}

void remove_own_mount(const std::string &path, unsigned major, unsigned minor, ino_t placeholder_ino)
{
    if (major || minor)
        for (const MountEntry &m : mounts_at(path))
            if (m.fs_type == kFsType && m.major == major && m.minor == minor)
                umount2(path.c_str(), MNT_DETACH);
    struct stat st{};
    if (placeholder_ino && lstat(path.c_str(), &st) == 0 && st.st_ino == placeholder_ino && S_ISREG(st.st_mode) &&
        mounts_at(path).empty())
        unlink(path.c_str());
}

// Abort a FUSE connection through fusectl: every caller waiting on it is released at once.
void abort_connection(unsigned minor)
{
    const std::string base = "/sys/fs/fuse/connections";
    std::string abort_file = base + "/" + std::to_string(minor) + "/abort";
    if (access(abort_file.c_str(), W_OK) != 0)
        mount("fusectl", base.c_str(), "fusectl", 0, nullptr); // not mounted yet: mount it
    if (Fd abort_fd{open(abort_file.c_str(), O_WRONLY | O_CLOEXEC)})
        (void)!::write(abort_fd.get(), "1", 1);
}

namespace {

// Abort the connection of every fusd FUSE mount at path and unmount it, then remove the
// placeholder if it is an empty regular file. Returns true when something was removed.
bool remove_fuse_node(const std::string &path)
{
    bool cleaned = false;
    auto mounts = mounts_at(path);
    bool ours = !mounts.empty();
    for (const MountEntry &m : mounts) {
        if (m.fs_type != kFsType)
            return cleaned; // something else is mounted there: not ours to touch
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

class FuseTransport final : public LibfuseTransport {
public:
    explicit FuseTransport(DeviceState &dev) : LibfuseTransport(dev) {}
    ~FuseTransport() override
    {
        if (se_ || mounted_)
            shutdown();
    }

    void start();

    Backend backend() const override { return Backend::fuse; }
    void shutdown() override;

private:
    int send_open_reply(fuse_req_t req, fuse_file_info *fi) override;
    struct stat attributes();
    static FuseTransport &fuse_self(fuse_req_t req) { return static_cast<FuseTransport &>(self(req)); }

    static void op_init(void *userdata, fuse_conn_info *conn);
    static void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi);
    static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, fuse_file_info *fi);
    static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata);

    static const fuse_lowlevel_ops kOps;
    static const fuse_custom_io kIo;

    bool init_done_ = false;
    bool mounted_ = false;
    ino_t placeholder_ino_ = 0;
    unsigned conn_major_ = 0, conn_minor_ = 0;
    std::int64_t created_s_ = 0;
    std::mutex attr_mutex_; // mode/owner can change by chmod/chown on the node
};

const fuse_lowlevel_ops FuseTransport::kOps = [] {
    fuse_lowlevel_ops ops{};
    ops.init = op_init;
    ops.getattr = op_getattr;
    ops.setattr = op_setattr;
    // FUSE's handlers carry the inode number (always the root here): drop it.
    ops.open = [](fuse_req_t req, fuse_ino_t, fuse_file_info *fi) { handle_open(req, fi); };
    ops.read = [](fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info *fi) {
        handle_read(req, size, off, fi);
    };
    ops.write = [](fuse_req_t req, fuse_ino_t, const char *buf, size_t size, off_t off, fuse_file_info *fi) {
        handle_write(req, buf, size, off, fi);
    };
    ops.release = [](fuse_req_t req, fuse_ino_t, fuse_file_info *fi) { handle_release(req, fi); };
    ops.ioctl = [](fuse_req_t req, fuse_ino_t, unsigned int cmd, void *arg, fuse_file_info *fi, unsigned flags,
                   const void *in_buf, size_t in_bufsz, size_t out_bufsz) {
        handle_ioctl(req, cmd, arg, fi, flags, in_buf, in_bufsz, out_bufsz);
    };
    ops.poll = [](fuse_req_t req, fuse_ino_t, fuse_file_info *fi, fuse_pollhandle *ph) { handle_poll(req, fi, ph); };
    return ops;
}();

const fuse_custom_io FuseTransport::kIo = channel_io(io_writev);

void FuseTransport::start()
{
    const std::string &path = dev_.path;
    placeholder_ino_ = make_placeholder(path);
    created_s_ = realtime_ns() / 1'000'000'000;

    try {
        Fd channel{open("/dev/fuse", O_RDWR | O_CLOEXEC)};
        if (!channel)
            throw Error(errno, path + ": cannot open /dev/fuse: " + std::strerror(errno));
        const char *argv[] = {"fusd", nullptr};
        fuse_args args = FUSE_ARGS_INIT(1, const_cast<char **>(argv));
        se_ = fuse_session_new(&args, &kOps, sizeof kOps, static_cast<LibfuseTransport *>(this));
        fuse_opt_free_args(&args);
        if (!se_)
            throw Error(ENOMEM, path + ": fuse_session_new failed");
        if (fuse_session_custom_io(se_, &kIo, channel.get()) != 0)
            throw Error(EIO, path + ": fuse_session_custom_io failed");
        fd_ = channel.release(); // the session's from here: fuse_session_destroy() closes it
        mount_fuse_over(path, fd_, conn_major_, conn_minor_);
        mounted_ = true;
        // The kernel's first message is FUSE_INIT; answer it now so the node is ready on return.
        handshake(init_done_, "FUSE_INIT");
        fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    } catch (...) {
        shutdown();
        throw;
    }
}

void FuseTransport::shutdown()
{
    close_session();
    remove_own_mount(dev_.path, mounted_ ? conn_major_ : 0, mounted_ ? conn_minor_ : 0, placeholder_ino_);
    mounted_ = false;
    placeholder_ino_ = 0;
}

int FuseTransport::send_open_reply(fuse_req_t req, fuse_file_info *fi)
{
    t_patch_open_reply = true; // io_writev adds FOPEN_STREAM | FOPEN_PARALLEL_DIRECT_WRITES
    int res = fuse_reply_open(req, fi);
    t_patch_open_reply = false;
    return res;
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
    auto *t = static_cast<FuseTransport *>(static_cast<LibfuseTransport *>(userdata));
    conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    t->init_done_ = true;
}

void FuseTransport::op_getattr(fuse_req_t req, fuse_ino_t, fuse_file_info *)
{
    struct stat st = fuse_self(req).attributes();
    fuse_reply_attr(req, &st, kAttrTimeout);
}

void FuseTransport::op_setattr(fuse_req_t req, fuse_ino_t, struct stat *attr, int to_set, fuse_file_info *)
{
    // chmod/chown of the node change what later opens are allowed (the kernel checked the caller
    // may do it: default_permissions). Truncation (`echo > /dev/x`) and times are accepted and ignored.
    FuseTransport &t = fuse_self(req);
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

std::unique_ptr<Transport> make_libfuse_fuse_transport(DeviceState &device)
{
    return start_transport<FuseTransport>(device);
}

BackendStatus probe_fuse()
{
    BackendStatus s{Backend::fuse, false, "", ""};
    if (access("/dev/fuse", F_OK) != 0)
        s.reason = "no /dev/fuse: the kernel has no FUSE support or it is not loaded (modprobe fuse)";
    else if (!may_mount_fuse())
        s.reason = "not root: the FUSE backend mounts over a file in /dev (without root: under fusdctl run --drivers)";
    else if (Fd fuse{open("/dev/fuse", O_RDWR | O_CLOEXEC)}; !fuse)
        s.reason = std::string("cannot open /dev/fuse: ") + std::strerror(errno);
    else
        s.usable = true;
    return s;
}

// A dead daemon's /dev/fuse is closed, but its mount stays (every call on it fails ENOTCONN).
bool clean_stale_fuse(const std::string &path) { return remove_fuse_node(path); }

void force_remove_fuse(const std::string &path) { remove_fuse_node(path); }

} // namespace fusd::detail
