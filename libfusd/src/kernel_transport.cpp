// SPDX-License-Identifier: MIT
//
// The kernel transport: a device is a node of the fusd kernel module (kernel/, fusd(4)), served
// through one channel (one open /dev/fusd) per device, speaking <linux/fusd.h> directly.
//
// The channel:
//  - start(): open /dev/fusd, FUSD_IOC_HELLO (protocol version), FUSD_IOC_REGISTER (the module
//    checks the name, refuses an existing /dev path with EEXIST and makes the node through
//    devtmpfs with our mode and owner before the call returns), then non-blocking.
//  - on_readable(): each read() returns exactly one request: struct fusd_req_header and its
//    payload (WRITE data, IOCTL in-data), into one receive buffer of FUSD_MIN_READ_BUFFER bytes.
//    The core gets pointers into that buffer; a request kept past its callback takes the buffer
//    (keep_buffer) and the next read gets a fresh one, so nothing is copied.
//  - reply(): one write() of struct fusd_reply plus payload per answer, from any thread. The
//    module's channel has .write only (a writev would be split into one message per iovec), so
//    header and payload are put together in one buffer first.
//  - the hot path: an answer made on the loop thread inside the callback is not written at once;
//    FUSD_IOC_EXCHANGE (protocol 1.1) writes it and reads the next request in one system call.
//    Inside Loop::run() the exchange also waits, in the module, for the next request or for the
//    loop's epoll set to become readable (any other fd of the loop), so a busy device costs one
//    system call per request, where read()+write()+epoll_wait() cost three. Meanwhile the
//    channel is out of the epoll set. At most kBatch requests are taken per wake-up, so the other
//    fds of the loop get their turn. The path from the exchange to the driver's callback and
//    back to deferred_ makes few function calls (see RequestHead in fusd.hpp for why).
//  - readiness: poll/select/epoll on the node are answered by the module from a mask we keep up
//    to date: a FUSD_MSG_READY write per change, and the open reply carries the initial mask
//    (FUSD_REPLY_POLL). On FUSE and CUSE a poll is answered by the loop thread, so it sees what
//    the callback running before it published, whatever the order of reply and notify inside
//    the callback. For the same guarantee here, a reply made on the loop thread inside a
//    callback is written when the callback returns (dispatch()), after the READY messages of
//    any notify() it made; an open reply's mask is taken at that moment. (A driver that answers
//    from another thread and notifies afterwards races on every backend: notify first.)
//  - interrupts: a caller that is signalled after we read its request makes the module queue a
//    FUSD_OP_INTERRUPT with the same id; we find the slot by id among those still out and tell
//    the core.
//    The caller has already left: a reply to that id would fail with ENOENT, so none is sent.
//  - RELEASE takes no reply and the caller of close() does not wait for it; it may name a file
//    whose open the core already failed (the opener was interrupted): such ids are ignored.
//  - shutdown(): FUSD_IOC_UNREGISTER (waiting callers get ENODEV, the node goes at once), close.
//    A forced removal (FUSD_IOC_FORCE_UNREGISTER from fusdctl rm --force) arrives as
//    FUSD_OP_GONE: on_readable() reports the connection gone and the core removes the device.
//
// One call: read(2) on /dev/NAME -> module queues FUSD_OP_READ -> on_readable() -> handle() ->
// LoopImpl::deliver() -> driver -> reply() -> deferred_ -> FUSD_IOC_EXCHANGE (the reply + data
// out, the next request in).
#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <sys/ioctl.h>
#include <unistd.h>
#include <unordered_map>

#include <linux/fusd.h>
#include <sys/epoll.h>

#include "loop_impl.hpp"

namespace fusd::detail {

namespace {

constexpr const char *kControl = FUSD_CONTROL_DEVICE;
constexpr std::size_t kReceiveSize = FUSD_MIN_READ_BUFFER;
constexpr std::size_t kStackReply = 4096;   // replies up to this payload are built on the stack

static_assert(POLLIN == FUSD_POLLIN && POLLPRI == FUSD_POLLPRI && POLLOUT == FUSD_POLLOUT &&
                  POLLERR == FUSD_POLLERR && POLLHUP == FUSD_POLLHUP,
              "fusd readiness bits are poll(2)'s");

std::string devname_of(const std::string &path) { return path.rfind("/dev/", 0) == 0 ? path.substr(5) : path; }

// A channel that said HELLO, or -errno; `why` says what went wrong, for a person. `minor` gets
// the module's protocol minor version.
int open_channel(std::string &why, unsigned *minor = nullptr)
{
    int fd = open(kControl, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        why = err == ENOENT ? "no /dev/fusd: the fusd module is not loaded (modprobe fusd, or insmod kernel/fusd.ko)"
                            : std::string("cannot open /dev/fusd: ") + std::strerror(err);
        return -err;
    }
    fusd_hello hello{};
    hello.major = FUSD_VERSION_MAJOR;
    hello.minor = FUSD_VERSION_MINOR;
    if (ioctl(fd, FUSD_IOC_HELLO, &hello) < 0) {
        int err = errno;
        close(fd);
        if (err == EPROTO)
            why = "version mismatch: the fusd module speaks protocol " + std::to_string(hello.major) + "." +
                  std::to_string(hello.minor) + ", this libfusd " + std::to_string(FUSD_VERSION_MAJOR) + "." +
                  std::to_string(FUSD_VERSION_MINOR);
        else if (err == ENOTTY)
            why = "/dev/fusd does not answer FUSD_IOC_HELLO: not the fusd module";
        else
            why = std::string("FUSD_IOC_HELLO failed: ") + std::strerror(err);
        return -err;
    }
    if (minor)
        *minor = hello.minor;
    return fd;
}

// CAP_SYS_ADMIN or CAP_MKNOD in the effective set: what FUSD_IOC_REGISTER needs.
bool can_register()
{
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("CapEff:", 0) == 0) {
            unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
            return caps & ((1ull << 21) | (1ull << 27)); // CAP_SYS_ADMIN, CAP_MKNOD
        }
    return geteuid() == 0;
}

// Copies n bytes; up to 32 of them inline, without a call into libc (see RequestHead in
// fusd.hpp for why the request path avoids calls): the common answer is a few bytes.
inline void copy_payload(std::byte *to, const std::byte *from, std::size_t n)
{
    auto halves = [&](auto word) { // two copies of one word size that overlap in the middle
        std::memcpy(to, from, sizeof word);
        std::memcpy(to + n - sizeof word, from + n - sizeof word, sizeof word);
    };
    if (n > 32)
        std::memcpy(to, from, n);
    else if (n > 16)
        halves(std::array<std::byte, 16>{});
    else if (n >= 8)
        halves(std::uint64_t{});
    else if (n >= 4)
        halves(std::uint32_t{});
    else if (n) {
        to[0] = from[0];
        to[n / 2] = from[n / 2];
        to[n - 1] = from[n - 1];
    }
}

// A growable byte buffer that, unlike std::vector<std::byte>, does not zero what it appends.
class ByteBuffer {
public:
    std::size_t size() const { return size_; }
    std::byte *data() { return data_.get(); }
    void clear() { size_ = 0; }
    std::byte *append(std::size_t n)
    {
        if (size_ + n > capacity_)
            grow(size_ + n);
        std::byte *at = data_.get() + size_;
        size_ += n;
        return at;
    }

private:
    [[gnu::noinline]] void grow(std::size_t needed)
    {
        std::size_t capacity = std::max(needed, 2 * capacity_);
        auto bigger = std::make_unique_for_overwrite<std::byte[]>(capacity);
        if (size_)
            std::memcpy(bigger.get(), data_.get(), size_);
        data_ = std::move(bigger);
        capacity_ = capacity;
    }

    std::unique_ptr<std::byte[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

class KernelTransport final : public Transport {
public:
    explicit KernelTransport(DeviceState &dev) : dev_(dev), loop_(*dev.loop) {}
    ~KernelTransport() override
    {
        if (fd_ >= 0)
            shutdown();
        std::free(buf_);
    }

    void start();

    Backend backend() const override { return Backend::kernel; }
    int fd() const override { return fd_; }
    bool on_readable() override;
    void reply(RequestSlot &slot, int result, std::span<const std::byte> bytes) override;
    void notify_ready(FileState &file, unsigned events) override;
    void keep_buffer(RequestSlot &slot) override;
    void forget_file(FileState &file) override;
    void shutdown() override;
    std::string cleanup_hint() const override { return "kernel:" + std::to_string(dev_id_); }

private:
    static constexpr int kBatch = 64; // messages handled per wake-up before the loop looks around

    // The request path (serve() down to the driver's callback, and reply() back to deferred_)
    // is inlined into as few functions as it can be: see RequestHead (fusd.hpp) for why.
    bool serve(int wait_fd);
    bool receive_buffer() { return buf_ || allocate_buffer(); }
    bool allocate_buffer();
    ssize_t read_message();
    ssize_t exchange_message(int wait_fd);
    [[gnu::always_inline]] bool handle(std::size_t got);
    void on_interrupt(std::uint64_t id);
    [[gnu::always_inline]] std::shared_ptr<FileState> file_of(std::uint64_t file_id);
    void forget_file_locked(std::unordered_map<std::uint64_t, std::shared_ptr<FileState>>::iterator it);
    [[gnu::always_inline]] void dispatch(std::shared_ptr<FileState> file, const Incoming &in);
    [[gnu::always_inline]] void send(const fusd_reply &head, std::span<const std::byte> payload,
                                     std::shared_ptr<FileState> open_file = nullptr);
    [[gnu::noinline]] void send_now(const fusd_reply &head, std::span<const std::byte> payload,
                                    const std::shared_ptr<FileState> &open_file);
    void write_message(const std::byte *msg, std::size_t size);
    void report_refused(const std::byte *msg, int err);
    void flush_deferred();
    void write_deferred(std::size_t end);
    void clear_deferred();
    void answer_now(const fusd_req_header &hdr, int result); // for requests the core never sees

    DeviceState &dev_;
    LoopImpl &loop_;
    int fd_ = -1;
    std::uint64_t dev_id_ = 0;
    bool gone_ = false;                  // removed by force (FUSD_OP_GONE): nothing to unregister
    bool exchange_ = false;              // the module has FUSD_IOC_EXCHANGE (protocol 1.1)
    std::byte *buf_ = nullptr;           // receive buffer (malloc'ed: a kept request frees it)
    SpinLock files_mutex_;
    std::unordered_map<std::uint64_t, std::shared_ptr<FileState>> files_;  // by file_id: open files
    // The entry of files_ that file_of() found last (under files_mutex_): a busy file is found
    // without a lookup, which is a call. Reset whenever an entry leaves files_.
    std::uint64_t last_file_id_ = 0;
    std::shared_ptr<FileState> *last_file_ = nullptr;
    // Replies made inside a callback on the loop thread, written when it returns (loop thread
    // only): whole messages back to back, each saying its size; the last one starts at
    // last_deferred_. An open reply (FUSD_REPLY_POLL) takes its file's readiness when written:
    // deferred_opens_ keeps the files of the open replies, in the same order.
    ByteBuffer deferred_;
    std::size_t last_deferred_ = 0;
    std::vector<std::shared_ptr<FileState>> deferred_opens_;
};

// The transport whose callback the loop thread is running now (see dispatch()).
thread_local KernelTransport *t_dispatching = nullptr;

void KernelTransport::start()
{
    const std::string &path = dev_.path;
    std::string name = devname_of(path);
    if (name.size() >= FUSD_NAME_MAX)
        throw Error(ENAMETOOLONG, path + ": the kernel backend takes names of at most " +
                                      std::to_string(FUSD_NAME_MAX - 1) + " bytes below /dev");
    std::string why;
    unsigned minor = 0;
    fd_ = open_channel(why, &minor);
    exchange_ = minor >= 1; // FUSD_IOC_EXCHANGE came with protocol 1.1
    if (fd_ < 0) {
        int err = -fd_;
        fd_ = -1;
        throw Error(err == ENOENT ? ENODEV : err, path + ": " + why);
    }
    fusd_register reg{};
    std::memcpy(reg.name, name.c_str(), name.size() + 1);
    reg.mode = dev_.options.mode & 0777; // the module takes permission bits only
    reg.uid = *dev_.options.owner;
    reg.gid = *dev_.options.group;
    if (ioctl(fd_, FUSD_IOC_REGISTER, &reg) < 0) {
        int err = errno;
        close(fd_);
        fd_ = -1;
        std::string what = path + ": cannot register with the fusd module: " + std::strerror(err);
        if (err == EEXIST)
            what = path + ": already exists (a node, or another fusd device); not replacing it";
        else if (err == EPERM)
            what += " (registering needs CAP_SYS_ADMIN or CAP_MKNOD)";
        else if (err == EINVAL)
            what += " (names are components of A-Z a-z 0-9 . _ - + : @ , separated by single slashes)";
        else if (err == ENOSPC)
            what += " (the module's 1024 devices are in use)";
        throw Error(err, what);
    }
    dev_id_ = reg.dev_id;
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

void KernelTransport::shutdown()
{
    if (fd_ >= 0) {
        if (!gone_) {
            // Waiting callers get ENODEV and the node goes now, even if a forked child of the
            // daemon still holds the channel open.
            fusd_unregister u{dev_id_};
            ioctl(fd_, FUSD_IOC_UNREGISTER, &u);
        }
        close(fd_);
        fd_ = -1;
    }
    std::lock_guard lock(files_mutex_);
    last_file_ = nullptr;
    files_.clear();
}

bool KernelTransport::on_readable()
{
    // A callback may remove the device, and with it the last owner of this transport.
    std::shared_ptr<DeviceState> hold = dev_.shared_from_this();
    const int wait_fd = exchange_ ? loop_.wait_fd() : -1;
    if (wait_fd < 0)
        return serve(-1); // an embedding program's loop: take what is queued, never wait
    // While we wait in the module, the channel is out of the epoll set, which that wait watches: a
    // request then wakes only the exchange, and costs no epoll callback. (Kept in the set, even
    // disarmed by EPOLLONESHOT, it cost 1.7 us per request in the TCG guest: ep_poll_callback
    // runs on every wake-up of the channel.) Back in the set, level-triggered, when we return.
    struct Resume {
        KernelTransport &t;
        ~Resume()
        {
            if (t.fd_ >= 0) // not removed inside a callback
                t.loop_.resume(t.fd_);
        }
    } resume{*this};
    loop_.suspend(fd_);
    return serve(wait_fd);
}

// Requests until none is left or kBatch are done. Returns false when the device is gone.
bool KernelTransport::serve(int wait_fd)
{
    ssize_t n = read_message();
    for (int budget = kBatch;; --budget) {
        if (n <= 0)
            return n == 0;
        if (!handle(std::size_t(n))) {
            flush_deferred();
            return false;
        }
        if (fd_ < 0 || !exchange_ || budget == 1) {
            // Removed inside the callback, an old module, or our share of the loop is used up:
            // a queued message brings the epoll set straight back to us.
            flush_deferred();
            return true;
        }
        n = exchange_message(wait_fd);
    }
}

bool KernelTransport::allocate_buffer()
{
    if (!(buf_ = static_cast<std::byte *>(std::malloc(kReceiveSize)))) {
        LoopImpl::log_error(dev_.path + ": out of memory for the receive buffer");
        return false; // try again on the next wake-up
    }
    return true;
}

// The first message of a wake-up, by read(): its size, 0 for none now, -1 when the channel failed.
// One read per wake-up: a lone request (the common case) costs no extra read that says EAGAIN.
ssize_t KernelTransport::read_message()
{
    if (!receive_buffer())
        return 0;
    ssize_t n = ::read(fd_, buf_, kReceiveSize);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        LoopImpl::log_error(dev_.path + ": reading /dev/fusd: " + std::strerror(errno));
        return -1;
    }
    return n;
}

// The next message by FUSD_IOC_EXCHANGE, which also writes the last answer the callback made: one
// system call per request instead of a write(), an epoll_wait() and a read() (measured in the
// TCG guest: the daemon's CPU per 1-byte request fell from ~54 us to ~47 us). With wait_fd (the loop's
// epoll set, while Loop::run() owns the thread) it sleeps in the module until the next request
// or until anything else the loop watches is ready; without, it only takes what is queued.
// Returns like read_message().
ssize_t KernelTransport::exchange_message(int wait_fd)
{
    if (!receive_buffer()) {
        flush_deferred();
        return 0;
    }
    // An open reply is written on its own: its readiness is read under the file's poll_mutex,
    // which must not be held across a wait.
    const std::size_t end = deferred_.size();
    const std::byte *msg = nullptr;
    std::uint32_t msg_size = 0;
    if (end) {
        fusd_reply last;
        std::memcpy(&last, deferred_.data() + last_deferred_, sizeof last);
        const bool goes_along = !(last.flags & FUSD_REPLY_POLL);
        const std::size_t written_first = goes_along ? last_deferred_ : end; // by write()
        if (written_first)
            write_deferred(written_first);
        if (goes_along) {
            msg = deferred_.data() + last_deferred_;
            msg_size = last.size;
        }
    }
    constexpr std::int32_t kUnsent = INT32_MIN;
    fusd_exchange ex{};
    ex.msg = std::uintptr_t(msg);
    ex.msg_size = msg_size;
    ex.msg_result = kUnsent;
    ex.buf = std::uintptr_t(buf_);
    ex.buf_size = kReceiveSize;
    ex.flags = wait_fd >= 0 ? FUSD_EXCHANGE_WAIT : 0;
    ex.wake_fd = wait_fd;
    int n = ::ioctl(fd_, FUSD_IOC_EXCHANGE, &ex);
    const int err = n < 0 ? errno : 0;
    if (msg && ex.msg_result != kUnsent && ex.msg_result < 0)
        report_refused(msg, -ex.msg_result);
    if (n < 0 && err != EINTR) {
        // Cannot happen with a sane module; answer the old way from now on rather than lose it.
        LoopImpl::log_error(dev_.path + ": FUSD_IOC_EXCHANGE failed (" + std::strerror(err) +
                            "); using read() and write()");
        exchange_ = false;
        if (msg && ex.msg_result == kUnsent)
            write_message(msg, msg_size);
    }
    if (end)
        clear_deferred();
    return n > 0 ? n : 0;
}

inline std::shared_ptr<FileState> KernelTransport::file_of(std::uint64_t file_id)
{
    std::lock_guard lock(files_mutex_);
    if (!last_file_ || last_file_id_ != file_id) {
        auto it = files_.find(file_id);
        if (it == files_.end())
            return nullptr;
        last_file_id_ = file_id;
        last_file_ = &it->second; // unordered_map entries stay put until erased
    }
    return *last_file_;
}

// Erases a file's entry (under files_mutex_).
void KernelTransport::forget_file_locked(std::unordered_map<std::uint64_t, std::shared_ptr<FileState>>::iterator it)
{
    if (last_file_ == &it->second)
        last_file_ = nullptr;
    files_.erase(it);
}

// One message of `got` bytes from the module, in buf_ (loop thread). Returns false when the
// device is gone, or the channel failed.
inline bool KernelTransport::handle(std::size_t got)
{
    fusd_req_header hdr{};
    if (got >= sizeof hdr)
        std::memcpy(&hdr, buf_, sizeof hdr);
    if (got < sizeof hdr || hdr.size < sizeof hdr) {
        LoopImpl::log_error(dev_.path + ": short message from the fusd module");
        return false;
    }
    Incoming in;
    in.handle = std::uintptr_t(hdr.id);
    in.caller = {pid_t(hdr.pid), uid_t(hdr.uid), gid_t(hdr.gid)};
    in.flags = hdr.flags;
    const std::byte *payload = buf_ + sizeof hdr;
    const std::size_t payload_size = std::min<std::size_t>(got, hdr.size) - sizeof hdr;

    switch (hdr.opcode) {
    case FUSD_OP_OPEN: {
        auto file = loop_.new_file(dev_, in.caller, hdr.flags);
        file->transport_data = hdr.file_id;
        {
            std::lock_guard lock(files_mutex_);
            files_[hdr.file_id] = file;
        }
        in.op = Op::open;
        dispatch(std::move(file), in);
        return true;
    }
    case FUSD_OP_RELEASE: {
        std::shared_ptr<FileState> file;
        {
            std::lock_guard lock(files_mutex_);
            auto it = files_.find(hdr.file_id);
            if (it == files_.end())
                return true; // its open failed or was interrupted: the core released it already
            file = std::move(it->second);
            forget_file_locked(it);
        }
        in.op = Op::release;
        dispatch(std::move(file), in);
        return true;
    }
    case FUSD_OP_READ:
    case FUSD_OP_WRITE:
    case FUSD_OP_IOCTL: {
        auto file = file_of(hdr.file_id);
        if (!file) {
            answer_now(hdr, -EBADF); // cannot happen: the module sends calls for opened files only
            return true;
        }
        if (hdr.opcode == FUSD_OP_READ) {
            in.op = Op::read;
            in.size = hdr.len;
        } else if (hdr.opcode == FUSD_OP_WRITE) {
            in.op = Op::write;
            in.size = payload_size;
            in.data = payload;
            in.data_size = payload_size;
        } else {
            in.op = Op::ioctl;
            in.size = hdr.reply_max; // _IOR/_IOWR: the out size; else 0
            in.data = payload_size ? payload : nullptr;
            in.data_size = payload_size;
            in.ioctl_command = hdr.ioctl_cmd;
            in.ioctl_argument = hdr.ioctl_arg;
        }
        dispatch(std::move(file), in);
        return true;
    }
    case FUSD_OP_INTERRUPT:
        on_interrupt(hdr.id);
        return true;
    case FUSD_OP_GONE:
        if (hdr.dev_id != dev_id_)
            return true;
        gone_ = true; // fusdctl rm --force: the module removed the node and released the callers
        return false;
    default:
        // A later minor version's message: those needing a reply get ENOSYS.
        if (!(hdr.id & FUSD_ID_NOREPLY))
            answer_now(hdr, -ENOSYS);
        return true;
    }
}

// Runs the driver's callback. What it answered on this thread stays in deferred_ until it returns:
// on_readable() writes it, the last answer together with the read of the next request.
inline void KernelTransport::dispatch(std::shared_ptr<FileState> file, const Incoming &in)
{
    t_dispatching = this;
    try {
        loop_.deliver(std::move(file), in);
    } catch (...) {
        t_dispatching = nullptr;
        flush_deferred();
        throw;
    }
    t_dispatching = nullptr;
}

void KernelTransport::flush_deferred()
{
    write_deferred(deferred_.size());
    clear_deferred();
}

void KernelTransport::clear_deferred()
{
    deferred_.clear();
    last_deferred_ = 0;
    deferred_opens_.clear();
}

// Writes the deferred answers before offset `end` (each one write()).
void KernelTransport::write_deferred(std::size_t end)
{
    std::size_t opens = 0;
    for (std::size_t at = 0; at < end && fd_ >= 0;) { // fd_ < 0: removed inside the callback
        std::byte *msg = deferred_.data() + at;
        fusd_reply head;
        std::memcpy(&head, msg, sizeof head);
        at += head.size;
        if (!(head.flags & FUSD_REPLY_POLL)) {
            write_message(msg, head.size);
            continue;
        }
        FileState &file = *deferred_opens_[opens++];
        std::lock_guard lock(file.poll_mutex);
        head.poll_mask = file.readiness.load() & FUSD_POLL_ALL;
        std::memcpy(msg, &head, sizeof head);
        write_message(msg, head.size);
    }
}

// A caller left (signal): find its request among the slots still out. Rare, so a scan rather than
// a table kept on every request; our reference keeps a matching slot from being recycled while
// the core answers EINTR, and an answered or recycled slot no longer matches.
void KernelTransport::on_interrupt(std::uint64_t id)
{
    for (RequestSlot *slot : loop_.pending_slots()) {
        if (slot->handle.load(std::memory_order_acquire) == id && slot->op != Op::release &&
            !slot->answered.load(std::memory_order_acquire) && slot->file && slot->file->device.get() == &dev_)
            loop_.interrupt(*slot, std::uintptr_t(id));
        loop_.unref(slot);
    }
}

void KernelTransport::keep_buffer(RequestSlot &slot)
{
    // The slot's data points into buf_: hand the whole buffer over; the next read allocates.
    slot.owned_buffer = buf_;
    buf_ = nullptr;
}

// One reply: written now, or (inside a callback on the loop thread) when the callback returns.
// An open reply (open_file) carries the file's readiness, read under its poll_mutex so that a
// notify() racing with it cannot be overtaken by an older mask (see notify_ready).
inline void KernelTransport::send(const fusd_reply &head, std::span<const std::byte> payload,
                                  std::shared_ptr<FileState> open_file)
{
    if (t_dispatching == this) {
        last_deferred_ = deferred_.size();
        std::byte *msg = deferred_.append(sizeof head + payload.size());
        std::memcpy(msg, &head, sizeof head);
        copy_payload(msg + sizeof head, payload.data(), payload.size());
        if (open_file)
            deferred_opens_.push_back(std::move(open_file));
        return;
    }
    send_now(head, payload, open_file);
}

// send() outside a callback on the loop thread: written at once.
void KernelTransport::send_now(const fusd_reply &head, std::span<const std::byte> payload,
                               const std::shared_ptr<FileState> &open_file)
{
    const std::size_t size = sizeof head + payload.size();
    std::byte stack[sizeof head + kStackReply];
    thread_local std::unique_ptr<std::byte[]> big;
    std::byte *msg = stack;
    if (payload.size() > kStackReply) {
        if (!big)
            big = std::make_unique<std::byte[]>(sizeof head + FUSD_CHUNK_MAX);
        msg = big.get();
    }
    std::memcpy(msg, &head, sizeof head);
    if (!payload.empty())
        std::memcpy(msg + sizeof head, payload.data(), payload.size());
    if (open_file) {
        std::lock_guard lock(open_file->poll_mutex);
        fusd_reply with_mask = head;
        with_mask.poll_mask = open_file->readiness.load() & FUSD_POLL_ALL;
        std::memcpy(msg, &with_mask, sizeof with_mask);
        write_message(msg, size);
    } else {
        write_message(msg, size);
    }
}

void KernelTransport::write_message(const std::byte *msg, std::size_t size)
{
    ssize_t n;
    do
        n = ::write(fd_, msg, size);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        report_refused(msg, errno);
}

// The module refused our reply `msg` with `err`. ENOENT is harmless: the caller left (a signal,
// or its device was removed meanwhile).
void KernelTransport::report_refused(const std::byte *msg, int err)
{
    if (err == ENOENT)
        return;
    fusd_reply head;
    std::memcpy(&head, msg, sizeof head);
    LoopImpl::log_error(dev_.path + ": the fusd module refused a reply (request " + std::to_string(head.id) +
                        ", result " + std::to_string(head.result) + "): " + std::strerror(err));
}

void KernelTransport::answer_now(const fusd_req_header &hdr, int result)
{
    fusd_reply head{};
    head.size = sizeof head;
    head.type = FUSD_MSG_REPLY;
    head.id = hdr.id;
    head.result = result;
    send(head, {});
}

void KernelTransport::reply(RequestSlot &slot, int result, std::span<const std::byte> bytes)
{
    const std::uint64_t id = slot.handle.load(std::memory_order_acquire);
    if (slot.op == Op::release || slot.interrupted.load(std::memory_order_acquire))
        return; // RELEASE takes no reply; an interrupted caller has left (a reply would get ENOENT)
    fusd_reply head{};
    head.size = std::uint32_t(sizeof head + (result < 0 ? 0 : bytes.size()));
    head.type = FUSD_MSG_REPLY;
    head.id = id;
    head.result = result;
    if (result < 0) {
        send(head, {});
        return;
    }
    switch (slot.op) {
    case Op::open: // the initial readiness goes with the reply
        head.flags = FUSD_REPLY_POLL;
        send(head, {}, slot.file);
        break;
    case Op::read:
    case Op::ioctl:
        send(head, bytes);
        break;
    default: // write: result is the count taken
        head.size = sizeof head;
        send(head, {});
        break;
    }
}

void KernelTransport::notify_ready(FileState &file, unsigned)
{
    // The current mask, not the argument: a write under poll_mutex always carries the newest.
    std::lock_guard lock(file.poll_mutex);
    fusd_ready ready{};
    ready.size = sizeof ready;
    ready.type = FUSD_MSG_READY;
    ready.dev_id = dev_id_;
    ready.file_id = file.transport_data;
    ready.mask = file.readiness.load() & FUSD_POLL_ALL;
    ssize_t n;
    do
        n = ::write(fd_, &ready, sizeof ready);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != ENOENT) // ENOENT: that file was closed meanwhile
        LoopImpl::log_error(dev_.path + ": the fusd module refused a readiness change: " + std::strerror(errno));
}

void KernelTransport::forget_file(FileState &file)
{
    std::lock_guard lock(files_mutex_);
    auto it = files_.find(file.transport_data);
    if (it != files_.end() && it->second.get() == &file)
        forget_file_locked(it);
}

} // namespace

std::unique_ptr<Transport> make_kernel_transport(DeviceState &device)
{
    auto t = std::make_unique<KernelTransport>(device);
    t->start();
    return t;
}

BackendStatus probe_kernel()
{
    BackendStatus s{Backend::kernel, false, "",
                    "a real character device node (test -c) made by the fusd module with the requested mode and "
                    "owner (udev: SUBSYSTEM==\"fusd\"); lseek/pread/pwrite fail with ESPIPE; mmap fails with "
                    "ENODEV; ioctls only with _IOC-encoded sizes (up to 16383 bytes; FIONBIO, FIOASYNC, FIOCLEX, "
                    "FIONCLEX are the kernel's, FIONREAD reaches the driver); reads and writes above 128 KiB are "
                    "split into 128 KiB requests; close() does not wait for the driver; names only of "
                    "A-Z a-z 0-9 . _ - + : @ , (63 bytes); status in /sys/class/fusd/NAME/"};
    std::string why;
    int fd = open_channel(why);
    if (fd < 0)
        s.reason = why;
    else {
        close(fd);
        if (!can_register())
            s.reason = "not permitted: registering a device needs CAP_SYS_ADMIN or CAP_MKNOD (run as root)";
        else
            s.usable = true;
    }
    // Spinning waits show as CPU use: say so, with the module's setting (fusd(4), "Polling").
    std::ifstream poll_ns("/sys/module/fusd/parameters/poll_ns");
    unsigned long ns = 0;
    if (poll_ns >> ns && ns > 0)
        s.differences += "; a waiting caller or daemon spins up to " + std::to_string(ns) +
                         " ns before it sleeps while its CPU has nothing else to run "
                         "(/sys/module/fusd/parameters/poll_ns)";
    return s;
}

// FUSD_IOC_FORCE_UNREGISTER by name: the module removes the node at once and releases every
// caller blocked on it (ENODEV), even when the daemon is stopped or hung; the daemon reads
// FUSD_OP_GONE when it runs again. Allowed to the uid that registered the device and to root.
void force_remove_kernel(const std::string &path)
{
    std::string why;
    int fd = open_channel(why);
    if (fd < 0) {
        if (fd == -ENOENT)
            return; // no module: no kernel device to remove
        throw Error(-fd, path + ": " + why);
    }
    fusd_force_unregister fu{};
    std::string name = devname_of(path);
    if (name.size() >= sizeof fu.name) {
        close(fd);
        return; // no fusd device can have that name
    }
    std::memcpy(fu.name, name.c_str(), name.size() + 1);
    int r = ioctl(fd, FUSD_IOC_FORCE_UNREGISTER, &fu);
    int err = errno;
    close(fd);
    if (r < 0 && err != ENOENT)
        throw Error(err, path + ": the fusd module refused the forced removal: " + std::strerror(err) +
                             (err == EPERM ? " (only the uid that registered it, or root)" : ""));
}

} // namespace fusd::detail
