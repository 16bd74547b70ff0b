// SPDX-License-Identifier: MIT
//
// libfusd: answer the system calls made on a file in /dev from an ordinary program.
//
// The objects, and the flow of one call:
//
//   Loop      one per daemon thread of control: an epoll set holding every registered device's
//             backend connection, the daemon's control socket, and any fd the driver adds.
//   Device    one node in /dev (e.g. /dev/clock), served through one backend (kernel module,
//             CUSE or FUSE), with a table of Callbacks and device-wide state.
//   File      one open file description of a Device: created by open(), gone after release.
//             Holds the per-open state and the readiness (POLLIN/POLLOUT/...) that answers poll().
//   Request   one system call in flight (open, read, write, ioctl, mmap, release). A move-only handle:
//             the callback answers it now, or keeps it and answers later from any thread,
//             exactly once. A Request destroyed unanswered answers EIO itself. A Request kept
//             after its device was removed or its Loop destroyed was answered then (ENODEV):
//             answering or destroying it later is a harmless no-op (its other accessors must
//             not be used once its Loop is gone).
//
//   caller: read(fd, buf, 10) ─► backend ─► transport decodes ─► Loop::dispatch() builds a Request
//           ─► callbacks.read(Request) ─► req.reply_data(...) (now or later, any thread)
//           ─► transport encodes the reply ─► backend ─► caller's read() returns.
//
// poll() never reaches the driver: the driver publishes readiness with File::notify(), the library
// (or the kernel module) answers poll/select/epoll from it and wakes waiters when it changes. A
// busy or stopped driver therefore never blocks a poller.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/types.h>

namespace fusd {

namespace detail {
struct RequestHead;
struct FileState;
struct DeviceState;
class LoopImpl;
} // namespace detail

// Which kernel mechanism serves a device. `automatic` picks the first usable of kernel, cuse, fuse,
// unless $FUSD_BACKEND names one (kernel, cuse, fuse): then that one, or a clear error.
enum class Backend : std::uint8_t { automatic, kernel, cuse, fuse };
std::string_view to_string(Backend backend);
std::optional<Backend> parse_backend(std::string_view name); // "auto", "kernel", "cuse", "fuse"
// The names parse_backend() takes, comma-separated: "auto", then each backend in auto's order.
std::string backend_names();

// The system call a Request stands for.
enum class Op : std::uint8_t { open, release, read, write, ioctl, poll, interrupt, mmap };
std::string_view to_string(Op op);

// Who made the call, the same on every backend.
//  pid       the caller's process id (what its getpid() says, also from a thread other than its
//            main one), in the daemon's pid namespace; 0 when it is not visible there or the
//            caller was gone before its call was read.
//  uid, gid  the caller's filesystem ids: those the kernel checked its access to the node with
//            (its effective ids, unless it called setfsuid). Every backend's request carries them.
//  real_uid, real_gid
//            the caller's real ids (what its getuid() says); (uid_t)-1 when it was gone.
// The kernel backend's request carries them all. CUSE and FUSE carry only the calling thread's
// id and its filesystem ids: the library reads the process id and the real ids from
// /proc/TID/status when Request::caller() is first called for the request (at once for an open,
// so File::opener() is complete, and for every call while it is traced), so that a driver that
// never asks pays nothing.
struct Caller {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    uid_t real_uid = 0;
    gid_t real_gid = 0;
};

namespace detail {
// What a Request says about its call, laid out here so that Request's accessors are inline. Why:
// in the QEMU guest where fusd.ko is benchmarked, every context switch empties the emulator's
// jump cache, so each call and return on the request path costs far more than an accessor's own
// work (bench/ measures it). The library's
// RequestSlot extends this; nothing outside libfusd may rely on its layout.
struct RequestHead {
    std::uint64_t id = 0;
    Op op = Op::open;
    unsigned flags = 0;
    mutable Caller caller;
    std::size_t size = 0;
    const std::byte *data = nullptr;
    std::size_t data_size = 0;
    std::uint32_t ioctl_command = 0;
    std::uint64_t ioctl_argument = 0;
    std::uint64_t map_offset = 0;
    int map_prot = 0;
    int map_flags = 0;
    // CUSE and FUSE: caller.pid is still the calling thread's id and the real ids are not read
    // yet (see Caller). Filled in by the first Request::caller(), from the Request's one holder.
    mutable bool caller_unresolved = false;
};
[[noreturn]] void throw_request_used();
void resolve_caller(const RequestHead &head); // std::logic_error: used after it was answered or moved from
} // namespace detail

// Readiness bits for File::notify(), as poll(2) spells them.
namespace ready {
inline constexpr unsigned readable = POLLIN;
inline constexpr unsigned writable = POLLOUT;
inline constexpr unsigned error = POLLERR;
inline constexpr unsigned hangup = POLLHUP;
} // namespace ready

// Every libfusd failure: a system error code plus a sentence that names the device and the cause.
class Error : public std::system_error {
public:
    Error(int errnum, const std::string &what) : std::system_error(errnum, std::generic_category(), what) {}
};

class Device;
class File;
class Loop;

// A piece of the caller's memory, by its address in the caller and its length: what an ioctl's
// argument points to, for Request::reply_retry().
struct MemoryRange {
    std::uint64_t address = 0;
    std::size_t length = 0;
};
inline constexpr std::size_t kRetryRangesMax = 64;         // ranges (in and out) of one reply_retry()
inline constexpr std::size_t kRetryBytesMax = 128 * 1024;  // its in total, and its out total, each

class Request {
public:
    Request() = default;
    Request(Request &&other) noexcept : head_(std::exchange(other.head_, nullptr)) {}
    Request &operator=(Request &&other) noexcept
    {
        if (this != &other) {
            if (head_)
                abandon();
            head_ = std::exchange(other.head_, nullptr);
        }
        return *this;
    }
    Request(const Request &) = delete;
    Request &operator=(const Request &) = delete;
    ~Request()
    {
        if (head_)
            abandon(); // unanswered: answers EIO, so no caller is ever left hanging
    }

    explicit operator bool() const { return head_ != nullptr; } // holds an unanswered request

    std::uint64_t id() const { return head().id; } // unique within the Loop; what Callbacks::interrupt names
    Op op() const { return head().op; }
    const Caller &caller() const
    {
        const detail::RequestHead &h = head();
        if (h.caller_unresolved) [[unlikely]]
            detail::resolve_caller(h);
        return h.caller;
    }
    // The open file's flags as of this call (O_NONBLOCK, O_ACCMODE).
    unsigned flags() const { return head().flags; }
    // flags() & O_NONBLOCK: answer reply_again() instead of waiting.
    bool nonblocking() const { return head().flags & O_NONBLOCK; }
    Device &device() const;
    File &file() const;

    // read: bytes wanted; write: bytes given; ioctl: out size (see "ioctls" below); mmap: the length to map.
    std::size_t size() const { return head().size; }
    // write: the bytes; ioctl: the input (see "ioctls" below).
    std::span<const std::byte> data() const { return {head().data, head_->data_size}; }
    // data() as characters.
    std::string_view text() const { return {reinterpret_cast<const char *>(head().data), head_->data_size}; }
    std::uint32_t ioctl_command() const { return head().ioctl_command; }   // ioctl: the request number (_IOC encoded)
    std::uint64_t ioctl_argument() const { return head().ioctl_argument; } // ioctl: the argument of an _IO ioctl
    bool interrupted() const;                  // the caller was signalled; it has already been answered EINTR
    // While the device is traced (fusdctl trace): a short text its trace line shows (the settings
    // a terminal ioctl set, say). Set it before answering; a no-op while nobody traces.
    bool traced() const;
    void trace_note(std::string note);
    // mmap (kernel backend only; see reply_map): where in the device, with what access, how shared.
    std::uint64_t map_offset() const { return head().map_offset; } // a multiple of the page size
    int map_prot() const { return head().map_prot; }                // PROT_READ | PROT_WRITE | PROT_EXEC
    int map_flags() const { return head().map_flags; }              // MAP_SHARED or MAP_PRIVATE

    // Answers: exactly one, from any thread. Each one ends this handle (it becomes empty).
    void reply_ok();                                   // open, release, ioctl returning 0
    // any op: the call fails with errno = errnum (1..4095; 512 and above, where no errno is, give EIO)
    void reply_error(int errnum);
    void reply_again() { reply_error(EAGAIN); }        // a nonblocking call that would block
    void reply_data(std::span<const std::byte> bytes); // read: the bytes (at most size()); ioctl: out-data
    void reply_data(std::string_view text);
    void reply_written(std::size_t count);             // write: how many bytes were taken
    void reply_ioctl(int result, std::span<const std::byte> out = {}); // ioctl: result >= 0 and out-data
    // mmap: map size() bytes of `fd` (a memfd, or another file on tmpfs/shmem) from `offset` (a
    // multiple of the page size) into the caller; MAP_SHARED writes are seen by both sides. fd is
    // read during this call only: the driver keeps it and may close it afterwards (the mapping keeps
    // the memory). A descriptor the module refuses (not shmem: ENODEV; not open for what the caller
    // asked: EACCES; shorter than offset + size(): ENXIO; not open: EBADF) answers the caller that
    // error, and the daemon logs it. The mapping works while the device exists: after its removal
    // (the daemon's exit, `fusdctl rm --force`) an access gets SIGBUS.
    void reply_map(int fd, std::uint64_t offset);
    // mmap: the same for a pointer, as the classic API's mmap member answers: `base` is the start of
    // the device's memory (`size` bytes), of which the caller maps [map_offset(), + size()). That
    // memory must be a MAP_SHARED mapping in this process of a memfd, a tmpfs file, or
    // MAP_SHARED | MAP_ANONYMOUS memory: its file is opened through /proc/self/map_files (which
    // takes CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE). Otherwise the caller gets ENXIO (range past
    // `size`), EFAULT (not one mapping), ENODEV (private memory) or EACCES, and the daemon logs why.
    void reply_map_memory(const void *base, std::size_t size);

    // ioctls. What an ioctl's argument points to comes as data() and goes back as the out-data
    // of reply_ioctl()/reply_data(), up to size() bytes, as its command says: an _IOR/_IOW/_IOWR
    // number says its size and direction; a legacy number (TCGETS, TIOCMGET, I2C_FUNCS...) has
    // them in <linux/fusd_ioctl.h>'s table; any other command's argument is a value
    // (ioctl_argument()). On FUSE, legacy commands with an argument are answered ENOTTY (see
    // the backend's row).
    //
    // An argument that holds pointers (I2C_RDWR, SPI_IOC_MESSAGE...): ask for more of the
    // caller's memory. The call then comes back to the ioctl callback as a new Request, same
    // command and argument, whose data() is the bytes of the `in` ranges, in order, and whose
    // size() is the total of the `out` ranges; that Request's out-data is copied over `out`, in
    // order. A driver tells the rounds apart by data().size(). Ranges are not empty, at most
    // kRetryRangesMax of them, in and out totals at most kRetryBytesMax each (std::length_error,
    // std::invalid_argument); an address the caller cannot access fails its call with EFAULT.
    // Kernel backend and CUSE; on FUSE the caller gets EOPNOTSUPP. The kernel backend allows 8
    // retries per call (then EIO).
    void reply_retry(std::span<const MemoryRange> in, std::span<const MemoryRange> out = {});

private:
    friend class detail::LoopImpl;
    explicit Request(detail::RequestHead *head) : head_(head) {}
    const detail::RequestHead &head() const
    {
        if (!head_)
            detail::throw_request_used();
        return *head_;
    }
    void answer(int result, std::span<const std::byte> bytes);
    void abandon() noexcept;
    detail::RequestHead *head_ = nullptr;
};

// The callback table. Every member may be left empty: defaults are open/release succeed,
// read returns end of file, write takes everything, ioctl fails ENOTTY, mmap fails ENODEV,
// interrupt does nothing. mmap reaches the driver on the kernel backend only: CUSE and FUSE cannot
// map a daemon's memory into the caller, and mmap(2) there fails with ENODEV without asking.
struct Callbacks {
    std::function<void(Request)> open;
    std::function<void(Request)> release;
    std::function<void(Request)> read;
    std::function<void(Request)> write;
    std::function<void(Request)> ioctl;
    std::function<void(Request)> mmap;
    // The caller of request `id` on `file` was interrupted by a signal (or killed). It has already
    // been answered EINTR; a later reply to that request is harmless. Drop whatever waits for it.
    std::function<void(File &file, std::uint64_t id)> interrupt;
};

struct DeviceOptions {
    std::string name;               // "/dev/clock" or "clock" (relative names go under /dev)
    mode_t mode = 0660;
    std::optional<uid_t> owner;     // default: the daemon's uid
    std::optional<gid_t> group;     // default: the daemon's gid
    Backend backend = Backend::automatic;
    std::string command_line;       // what `fusdctl ls` shows; default: this process's argv
    // The classic fusd_register()'s class and device name: labels, checked on every backend (at
    // most 47 of A-Z a-z 0-9 . _ - + : @ , !), shown by the kernel backend only, in
    // /sys/class/fusd/NAME/clazz and devname. Empty for none.
    std::string classic_class;
    std::string classic_devname;
};

class File {
public:
    Device &device() const;
    std::uint64_t id() const;
    unsigned flags() const;             // flags given at open(2)
    const Caller &opener() const;
    // Per-open state for the driver: any object, owned by the File, destroyed after release.
    std::shared_ptr<void> &state();
    // Publish readiness (ready::readable | ready::writable | ...): wakes poll/select/epoll waiters
    // when it changes. Thread-safe. Default readiness is readable|writable, like a regular file.
    void notify(unsigned events);
    unsigned readiness() const;
    bool released() const;              // closed by its last user; notify() is then a no-op
    // A File& is valid while a Request of it is held or inside a callback. To use the File later
    // (another thread publishing readiness, say), keep this: it keeps the object, not the open.
    std::shared_ptr<File> keep();

private:
    friend class detail::LoopImpl;
    friend class Request;
    explicit File(detail::FileState *state) : state_(state) {}
    detail::FileState *state_;
};

class Device {
public:
    const std::string &path() const;   // absolute: "/dev/clock"
    Backend backend() const;           // the backend actually serving it
    Loop &loop() const;
    std::shared_ptr<void> &state();    // device-wide state for the driver
    std::uint64_t calls() const;       // system calls served so far
    std::size_t open_files() const;
    // Readiness of every open file at once (a device-wide event, e.g. new data for all readers).
    void notify_all(unsigned events);

private:
    friend class detail::LoopImpl;
    explicit Device(detail::DeviceState *state) : state_(state) {}
    detail::DeviceState *state_;
};

// One event loop. Not thread-safe except where marked: run it on one thread; Requests may be
// answered and File::notify() called from any thread.
//
// Signals: with handle_signals (the default), the constructor blocks SIGINT and SIGTERM in the
// calling thread (threads started afterwards inherit that) and takes them through a signalfd in
// the loop: on either, every device is unregistered and run() returns the signal number. So a
// daemon killed politely leaves nothing behind, even when the signal comes before run().
// Construct the Loop before starting threads of your own.
class Loop {
public:
    explicit Loop(bool handle_signals = true);
    ~Loop();                           // unregisters every device still registered; waiting callers get EPIPE
    Loop(const Loop &) = delete;
    Loop &operator=(const Loop &) = delete;

    // Makes the node and returns once it is ready to open. Throws fusd::Error (EEXIST, EINVAL,
    // ENAMETOOLONG, EACCES, ENODEV for no usable backend, ...) with nothing left behind.
    Device &add(const DeviceOptions &options, Callbacks callbacks);
    // Removes the node; callers still waiting get ENODEV; pending Requests become harmless.
    void remove(Device &device);
    std::vector<Device *> devices() const;

    // Embedding: fd() is readable when dispatch() has work; dispatch() does it and never blocks.
    int fd() const;
    void dispatch();
    // Simple drivers: dispatch until stop(), until SIGINT/SIGTERM (see above), or until the last
    // device is gone (removed by `fusdctl rm`, or its backend aborted).
    // Returns 0, or the number of the signal that ended it.
    int run();
    int stop_signal() const;          // the SIGINT/SIGTERM that ended the loop, or 0
    void stop();                                          // thread-safe

    // The driver's own descriptors in the same loop (child pipes, timers, sockets).
    using FdHandler = std::function<void(std::uint32_t epoll_events)>;
    void watch(int fd, std::uint32_t epoll_events, FdHandler handler);
    void modify(int fd, std::uint32_t epoll_events);
    void unwatch(int fd);
    // Run fn on the loop's thread at its next dispatch. Thread-safe.
    void post(std::function<void()> fn);

    detail::LoopImpl &impl() { return *impl_; }

private:
    std::unique_ptr<detail::LoopImpl> impl_;
};

// Device names: "clock" and "/dev/clock" both mean /dev/clock; a name may be nested
// ("input/event7" is /dev/input/event7, on every backend). Throws fusd::Error(EINVAL or
// ENAMETOOLONG) for empty, "." or ".." components, a component starting with '.' or '-',
// non-printable characters or spaces, paths outside /dev, more than 200 characters.
// Loop::add makes a nested name's missing parent directories (0755) and removes them again when
// the node goes and they are empty; an existing parent is used as it is. It refuses a parent that
// is not a directory (ENOTDIR), a symbolic link (EINVAL) or another filesystem (EXDEV).
std::string device_path(std::string_view name);

// How an ioctl command's argument travels, as every backend carries it (see "ioctls" above):
// dir _IOC_WRITE (size bytes at the argument go to the driver), _IOC_READ (size bytes come back)
// or both; dir 0: the argument is a value. From the command's _IOC encoding, or, for legacy
// numbers (TCGETS, I2C_FUNCS...), from the fusd module's table in <linux/fusd_ioctl.h>, which
// `legacy` marks. A number in neither is a value.
struct IoctlShape {
    unsigned dir = 0;
    std::uint32_t size = 0;
    bool legacy = false;
};
IoctlShape ioctl_shape(std::uint32_t command);

// What a backend can do on this machine, for `fusdctl doctor` and for Backend::automatic.
struct BackendStatus {
    Backend backend;
    bool usable;
    std::string reason;       // why not, when not usable ("no /dev/cuse: kernel built without CONFIG_CUSE")
    std::string differences;  // what a user can see that differs from a real character device
};
std::vector<BackendStatus> probe_backends();
Backend choose_backend(Backend wanted); // throws fusd::Error(ENODEV) naming why each failed

} // namespace fusd
