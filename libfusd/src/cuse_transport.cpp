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
// What CUSE decides for us (user-visible, see the backend's row, cuse_backend.cpp):
//  - reads and writes are always direct and the offset is always 0; the kernel's llseek for
//    CUSE nodes is noop_llseek: lseek() succeeds and returns 0, pread/pwrite succeed and
//    ignore the offset (no ESPIPE, unlike the FUSE and kernel backends). FOPEN_NONSEEKABLE and
//    FOPEN_STREAM are ignored by CUSE (it never calls fuse_finish_open); we set nonseekable and
//    direct_io anyway, as CUSE's own example does. A node is a char device, so there is no
//    f_pos lock: a read blocked in the driver never holds up a write on the same open file.
//  - ioctls are unrestricted (CUSE_UNRESTRICTED_IOCTL): every ioctl first arrives with no data,
//    and the transport answers FUSE_IOCTL_RETRY for the bytes the command's shape names (its
//    _IOC encoding, or <linux/fusd_ioctl.h>'s table for TCGETS and the other legacy numbers;
//    ioctl_shape()), so the driver sees what the fusd module would send. The driver's own
//    retries (Request::reply_retry) are FUSE_IOCTL_RETRY replies too: the kernel then copies
//    the ranges in and out in the caller (fs/fuse/ioctl.c: at most 256 ranges, in and out
//    totals of at most 128 KiB each). 32-bit compat ioctls are refused with ENOSYS like on
//    FUSE. FIONREAD reaches the driver here (the VFS answers it only for regular files),
//    FIONBIO/FIOASYNC do not.
//  - reads and writes larger than 128 KiB arrive in chunks (CUSE keeps FUSE's default
//    max_pages of 32; libfuse announces max_read 128 KiB).
//  - close() waits for the driver's answer to release (fuse_sync_release).
//
// One call: kernel FUSE_READ on /dev/cuse -> on_readable() -> fuse_session_process_buf() ->
// LibfuseTransport::handle_read() (kOps.read) -> LoopImpl::deliver() -> driver -> reply() ->
// fuse_reply_buf().
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

#include "fd.hpp"
#include "libfuse_transport.hpp"

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

class CuseTransport final : public LibfuseTransport {
public:
    explicit CuseTransport(DeviceState &dev) : LibfuseTransport(dev) {}
    ~CuseTransport() override
    {
        if (se_)
            shutdown();
    }

    void start();

    Backend backend() const override { return Backend::cuse; }
    void shutdown() override;

private:
    void wait_for_node();

    static void op_init_done(void *userdata);

    static const cuse_lowlevel_ops kOps;
    static const fuse_custom_io kIo;

    bool init_done_ = false;
    dev_t devt_ = 0; // our node's device number, once the kernel made it
};

const cuse_lowlevel_ops CuseTransport::kOps = [] {
    cuse_lowlevel_ops ops{};
    ops.init_done = op_init_done;
    ops.open = handle_open;
    ops.read = handle_read;   // CUSE always passes offset 0
    ops.write = handle_write;
    ops.release = handle_release;
    ops.ioctl = [](fuse_req_t req, int cmd, void *arg, fuse_file_info *fi, unsigned flags, const void *in_buf,
                   size_t in_bufsz, size_t out_bufsz) {
        handle_ioctl(req, unsigned(cmd), arg, fi, flags, in_buf, in_bufsz, out_bufsz);
    };
    ops.poll = handle_poll;
    return ops;
}();

const fuse_custom_io CuseTransport::kIo = channel_io();

void CuseTransport::start()
{
    const std::string &path = dev_.path;
    // A CUSE device of that name whose daemon has not closed /dev/cuse yet (stopped after a
    // forced removal, or just exiting): the kernel would refuse the name and abort our connection.
    if (access(class_dir_of(path).c_str(), F_OK) == 0)
        throw Error(EEXIST, path + ": a CUSE device of that name still exists (" + class_dir_of(path) +
                                "): its daemon has not closed /dev/cuse yet (stopped?)");
    Fd channel{open(kCuseControl, O_RDWR | O_CLOEXEC)};
    if (!channel) {
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
        ci.flags = CUSE_UNRESTRICTED_IOCTL; // see the top of this file
        unrestricted_ioctls_ = true;
        const char *argv[] = {"fusd", nullptr};
        fuse_args args = FUSE_ARGS_INIT(1, const_cast<char **>(argv));
        se_ = cuse_lowlevel_new(&args, &ci, &kOps, static_cast<LibfuseTransport *>(this));
        if (!se_)
            throw Error(ENOMEM, path + ": cuse_lowlevel_new failed");
        if (int err = fuse_session_custom_io(se_, &kIo, channel.get()); err != 0)
            throw Error(err < 0 ? -err : EIO, path + ": fuse_session_custom_io failed");
        fd_ = channel.release(); // the session's from here: fuse_session_destroy() closes it
        handshake(init_done_, "CUSE_INIT"); // libfuse replies with our DEVNAME, then calls init_done
        wait_for_node();
        fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    } catch (...) {
        shutdown();
        throw;
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
    close_session(); // the kernel removes the node when /dev/cuse is closed
    // The kernel removes the node while the fd is closed; give devtmpfs a moment if it lags.
    // (If a forked child still holds /dev/cuse, the node stays until that child closes it.)
    for (int waited_ms = 0; devt_ && is_node(dev_.path, devt_) && waited_ms < kGoneTimeoutMs; waited_ms += 10)
        usleep(10'000);
    devt_ = 0;
}

// ---- libfuse callbacks (loop thread) -----------------------------------------------------------

void CuseTransport::op_init_done(void *userdata)
{
    static_cast<CuseTransport *>(static_cast<LibfuseTransport *>(userdata))->init_done_ = true;
}

} // namespace

std::unique_ptr<Transport> make_cuse_transport(DeviceState &device) { return start_transport<CuseTransport>(device); }

BackendStatus probe_cuse()
{
    BackendStatus s{Backend::cuse, false, "", ""};
    struct stat st{};
    if (stat(kCuseControl, &st) != 0)
        s.reason = "no /dev/cuse: kernel built without CONFIG_CUSE or cuse module not loaded (modprobe cuse)";
    else if (geteuid() != 0)
        s.reason = "not root: /dev/cuse is root's only (mode 0600)";
    else if (Fd cuse{open(kCuseControl, O_RDWR | O_CLOEXEC)}; !cuse) {
        // (Opening /dev/cuse starts a connection, the kernel queues CUSE_INIT; closing it
        // unanswered makes nothing.)
        int err = errno;
        s.reason = std::string("cannot open /dev/cuse: ") + std::strerror(err) +
                   (err == ENODEV || err == ENXIO ? " (cuse module not loaded: modprobe cuse)" : "");
    } else
        s.usable = true;
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
    Fd abort_fd{open((dir + "/abort").c_str(), O_WRONLY | O_CLOEXEC)};
    if (!abort_fd) {
        int err = errno;
        if (err == ENOENT)
            return; // no such CUSE device (any more)
        throw Error(err, path + ": cannot abort the CUSE device (" + dir + "/abort): " + std::strerror(err));
    }
    bool aborted = ::write(abort_fd.get(), "1", 1) == 1;
    int err = errno;
    if (!aborted)
        throw Error(err, path + ": cannot abort the CUSE device: " + std::strerror(err));
    if (is_node(path, devt))
        unlink(path.c_str());
}

} // namespace fusd::detail
