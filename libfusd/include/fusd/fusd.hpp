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
//   Request   one system call in flight (open, read, write, ioctl, release). A move-only handle:
//             the callback answers it now, or keeps it and answers later from any thread,
//             exactly once. A Request destroyed unanswered answers EIO itself.
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
enum class Op : std::uint8_t { open, release, read, write, ioctl, poll, interrupt };
std::string_view to_string(Op op);

// Who made the call: real values from the caller's credentials.
struct Caller {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
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
    Caller caller;
    std::size_t size = 0;
    const std::byte *data = nullptr;
    std::size_t data_size = 0;
    std::uint32_t ioctl_command = 0;
    std::uint64_t ioctl_argument = 0;
};
[[noreturn]] void throw_request_used(); // std::logic_error: used after it was answered or moved from
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
    const Caller &caller() const { return head().caller; }
    // The open file's flags as of this call (O_NONBLOCK, O_ACCMODE).
    unsigned flags() const { return head().flags; }
    // flags() & O_NONBLOCK: answer reply_again() instead of waiting.
    bool nonblocking() const { return head().flags & O_NONBLOCK; }
    Device &device() const;
    File &file() const;

    // read: bytes wanted; write: bytes given; ioctl: out size.
    std::size_t size() const { return head().size; }
    // write: the bytes; ioctl: the input (_IOW/_IOWR).
    std::span<const std::byte> data() const { return {head().data, head_->data_size}; }
    // data() as characters.
    std::string_view text() const { return {reinterpret_cast<const char *>(head().data), head_->data_size}; }
    std::uint32_t ioctl_command() const { return head().ioctl_command; }   // ioctl: the request number (_IOC encoded)
    std::uint64_t ioctl_argument() const { return head().ioctl_argument; } // ioctl: the argument of an _IO ioctl
    bool interrupted() const;                  // the caller was signalled; it has already been answered EINTR

    // Answers: exactly one, from any thread. Each one ends this handle (it becomes empty).
    void reply_ok();                                   // open, release, ioctl returning 0
    // any op: the call fails with errno = errnum (1..4095; 512 and above, where no errno is, give EIO)
    void reply_error(int errnum);
    void reply_again() { reply_error(EAGAIN); }        // a nonblocking call that would block
    void reply_data(std::span<const std::byte> bytes); // read: the bytes (at most size()); ioctl: out-data
    void reply_data(std::string_view text);
    void reply_written(std::size_t count);             // write: how many bytes were taken
    void reply_ioctl(int result, std::span<const std::byte> out = {}); // ioctl: result >= 0 and out-data

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
// read returns end of file, write takes everything, ioctl fails ENOTTY, interrupt does nothing.
struct Callbacks {
    std::function<void(Request)> open;
    std::function<void(Request)> release;
    std::function<void(Request)> read;
    std::function<void(Request)> write;
    std::function<void(Request)> ioctl;
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
