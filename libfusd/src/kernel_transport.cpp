// SPDX-License-Identifier: MIT
//
// The kernel transport: a device is a node of the fusd kernel module (kernel/, fusd(4)), served
// through one channel (one open /dev/fusd) per device, speaking <linux/fusd.h> directly.
//
// Three layers, one file pair each:
//  - KernelChannel (kernel_channel.*): the protocol steps (open and HELLO, REGISTER, UNREGISTER,
//    FORCE_UNREGISTER), and the system calls that carry messages. Also probe_kernel() and
//    force_remove_kernel().
//  - KernelTransport (this file): receives the module's messages, checked and cut apart by
//    parse_kernel_message() (kernel_message.*), and turns them into core requests; encodes the
//    core's answers into replies and readiness messages.
//  - KernelReplyBatch (kernel_reply_batch.*): holds the replies a callback makes on the loop
//    thread until it returns, and writes them at one flush point (see there for why).
//
// What this file does:
//  - start(): the channel opens and registers the node (the module checks the name, refuses an
//    existing /dev path with EEXIST and makes the node through devtmpfs with our mode and owner
//    before the call returns), then is non-blocking.
//  - on_readable(): each read() returns exactly one request: struct fusd_req_header and its
//    payload (WRITE data, IOCTL in-data), into one receive buffer of FUSD_MIN_READ_BUFFER bytes.
//    The core gets pointers into that buffer; a request kept past its callback takes the buffer
//    (keep_buffer) and the next read gets a fresh one, so nothing is copied.
//  - reply(): one message of struct fusd_reply plus payload per answer, from any thread; made
//    inside a callback on the loop thread, it goes to the reply batch.
//  - the hot path: FUSD_IOC_EXCHANGE (protocol 1.1) writes the batch's last reply and reads the
//    next request in one system call. Inside Loop::run() the exchange also waits, in the module,
//    for the next request or for the loop's epoll set to become readable (any other fd of the
//    loop), so a busy device costs one system call per request, where read()+write()+epoll_wait()
//    cost three. Meanwhile the channel is out of the epoll set. At most kBatch requests are taken
//    per wake-up, so the other fds of the loop get their turn. The path from the exchange to the
//    driver's callback and back to the batch makes few function calls (see RequestHead in
//    fusd.hpp for why).
//  - readiness: poll/select/epoll on the node are answered by the module from a mask we keep up
//    to date: a FUSD_MSG_READY write per change, and the open reply carries the initial mask
//    (FUSD_REPLY_POLL). (A driver that answers from another thread and notifies afterwards races
//    on every backend: notify first.)
//  - interrupts: a caller that is signalled after we read its request makes the module queue a
//    FUSD_OP_INTERRUPT with the same id; we find the slot by id among those still out and tell
//    the core.
//    The caller has already left: a reply to that id would fail with ENOENT, so none is sent.
//  - mmap (protocol 1.2): FUSD_OP_MMAP becomes Op::mmap; the driver's reply_map() names a
//    descriptor of its own, which the module looks up when the reply is written: so that reply is
//    written at once, never batched (the driver may close the fd when reply_map() returns). A
//    reply the module refuses (a bad descriptor) is answered with the module's error instead.
//  - RELEASE takes no reply and the caller of close() does not wait for it; it may name a file
//    whose open the core already failed (the opener was interrupted): such ids are ignored.
//  - shutdown(): FUSD_IOC_UNREGISTER (waiting callers get ENODEV, the node goes at once), close.
//    A forced removal (FUSD_IOC_FORCE_UNREGISTER from fusdctl rm --force) arrives as
//    FUSD_OP_GONE: on_readable() reports the connection gone and the core removes the device.
//
// One call: read(2) on /dev/NAME -> module queues FUSD_OP_READ -> on_readable() -> serve() ->
// decode() -> LoopImpl::deliver() -> driver -> reply() -> KernelReplyBatch::add() ->
// KernelReplyBatch::exchange() (FUSD_IOC_EXCHANGE: the reply and its data out, the next request in).
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <linux/fusd.h>

#include "kernel_channel.hpp"
#include "kernel_message.hpp"
#include "kernel_reply_batch.hpp"
#include "loop_impl.hpp"

namespace fusd::detail {

namespace {

constexpr std::size_t kStackReply = 4096;   // replies up to this payload are built on the stack

static_assert(POLLIN == FUSD_POLLIN && POLLPRI == FUSD_POLLPRI && POLLOUT == FUSD_POLLOUT &&
                  POLLERR == FUSD_POLLERR && POLLHUP == FUSD_POLLHUP,
              "fusd readiness bits are poll(2)'s");

class KernelTransport final : public Transport {
public:
    explicit KernelTransport(DeviceState &dev) : dev_(dev), loop_(*dev.loop), replies_(channel_, dev.path) {}
    ~KernelTransport() override
    {
        if (channel_.is_open())
            shutdown();
        std::free(buf_);
    }

    void start();

    Backend backend() const override { return Backend::kernel; }
    int fd() const override { return channel_.fd(); }
    bool on_readable() override;
    void reply(RequestSlot &slot, int result, std::span<const std::byte> bytes) override;
    void retry(RequestSlot &slot, std::span<const MemoryRange> in, std::span<const MemoryRange> out) override;
    void notify_ready(FileState &file, unsigned events) override;
    void keep_buffer(RequestSlot &slot) override;
    void forget_file(FileState &file) override;
    void shutdown() override;

private:
    static constexpr int kBatch = 64; // messages taken per wake-up before the loop looks around

    // The request path (serve() down to the driver's callback, and reply() back to replies_)
    // is inlined into as few functions as it can be: see RequestHead (fusd.hpp) for why.
    bool serve(int wait_fd);
    bool receive_buffer() { return buf_ || allocate_buffer(); }
    bool allocate_buffer();
    ssize_t read_request();
    ssize_t exchange(int wait_fd);
    [[gnu::always_inline]] bool decode(std::size_t got);
    void on_interrupt(std::uint64_t id);
    [[gnu::always_inline]] std::shared_ptr<FileState> file_of(std::uint64_t file_id);
    void forget_file_locked(std::unordered_map<std::uint64_t, std::shared_ptr<FileState>>::iterator it);
    [[gnu::always_inline]] void run_callback(std::shared_ptr<FileState> file, const Incoming &in);
    [[gnu::always_inline]] void send(const fusd_reply &head, std::span<const std::byte> payload,
                                     std::shared_ptr<FileState> open_file = nullptr);
    [[gnu::noinline]] void send_now(const fusd_reply &head, std::span<const std::byte> payload,
                                    const std::shared_ptr<FileState> &open_file);
    void answer_now(const fusd_req_header &hdr, int result); // for requests the core never sees
    void send_map(fusd_reply head, std::span<const std::byte> bytes);

    DeviceState &dev_;
    LoopImpl &loop_;
    KernelChannel channel_;
    bool gone_ = false;                  // removed by force (FUSD_OP_GONE): nothing to unregister
    std::byte *buf_ = nullptr;           // receive buffer (malloc'ed: a kept request frees it)
    SpinLock files_mutex_;
    std::unordered_map<std::uint64_t, std::shared_ptr<FileState>> files_;  // by file_id: open files
    // The entry of files_ that file_of() found last (under files_mutex_): a busy file is found
    // without a lookup, which is a call. Reset whenever an entry leaves files_.
    std::uint64_t last_file_id_ = 0;
    std::shared_ptr<FileState> *last_file_ = nullptr;
    // Replies made inside a callback on the loop thread, written when it returns.
    KernelReplyBatch replies_;
};

void KernelTransport::start()
{
    const std::string &path = dev_.path;
    std::string name = KernelChannel::name_of(path);
    if (name.size() >= FUSD_NAME_MAX)
        throw Error(ENAMETOOLONG, path + ": the kernel backend takes names of at most " +
                                      std::to_string(FUSD_NAME_MAX - 1) + " bytes below /dev");
    std::string why;
    if (int r = channel_.open(why); r < 0)
        throw Error(r == -ENOENT ? ENODEV : -r, path + ": " + why);
    channel_.register_device(path, dev_.options);
}

void KernelTransport::shutdown()
{
    if (channel_.is_open()) {
        // Replies held by a callback that removes its device (a classic driver's exit() inside
        // its ioctl callback) go out first: unregistering would answer their callers ENODEV.
        replies_.flush();
        if (!gone_)
            channel_.unregister();
        channel_.close();
    }
    std::lock_guard lock(files_mutex_);
    last_file_ = nullptr;
    files_.clear();
}

bool KernelTransport::on_readable()
{
    // A callback may remove the device, and with it the last owner of this transport.
    std::shared_ptr<DeviceState> hold = dev_.shared_from_this();
    const int wait_fd = channel_.has_exchange() ? loop_.wait_fd() : -1;
    if (wait_fd < 0)
        return serve(-1); // an embedding program's loop: take what is queued, never wait
    // While we wait in the module, the channel is out of the epoll set, which that wait watches: a
    // request then wakes only the exchange, and costs no epoll callback. (Kept in the set, even
    // disarmed by EPOLLONESHOT, it would cost an ep_poll_callback on every wake-up of the
    // channel.) Back in the set, level-triggered, when we return.
    struct Resume {
        KernelTransport &t;
        ~Resume()
        {
            if (t.channel_.is_open()) // not removed inside a callback
                t.loop_.resume(t.channel_.fd());
        }
    } resume{*this};
    loop_.suspend(channel_.fd());
    return serve(wait_fd);
}

// Requests until none is left or kBatch are done. Returns false when the device is gone.
bool KernelTransport::serve(int wait_fd)
{
    ssize_t n = read_request();
    for (int budget = kBatch;; --budget) {
        if (n <= 0)
            return n == 0;
        if (!decode(std::size_t(n))) {
            replies_.flush();
            return false;
        }
        if (!channel_.is_open() || !channel_.has_exchange() || budget == 1) {
            // Removed inside the callback, an old module, or our share of the loop is used up:
            // a queued message brings the epoll set straight back to us.
            replies_.flush();
            return true;
        }
        n = exchange(wait_fd);
    }
}

bool KernelTransport::allocate_buffer()
{
    if (!(buf_ = static_cast<std::byte *>(std::malloc(KernelChannel::kReceiveSize)))) {
        LoopImpl::log_error(dev_.path + ": out of memory for the receive buffer");
        return false; // try again on the next wake-up
    }
    return true;
}

// The first message of a wake-up, by read(): its size, 0 for none now, -1 when the channel failed.
// One read per wake-up: a lone request (the common case) costs no extra read that says EAGAIN.
ssize_t KernelTransport::read_request()
{
    if (!receive_buffer())
        return 0;
    ssize_t n = channel_.read_request(buf_);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        LoopImpl::log_error(dev_.path + ": reading /dev/fusd: " + std::strerror(errno));
        return -1;
    }
    return n;
}

// The next message by FUSD_IOC_EXCHANGE, which also writes the replies the callback made: one
// system call per request instead of a write(), an epoll_wait() and a read(). With wait_fd (the
// loop's epoll set, while Loop::run() owns the thread) it sleeps in the module until the next
// request or until anything else the loop watches is ready. Returns like read_request().
ssize_t KernelTransport::exchange(int wait_fd)
{
    if (!receive_buffer()) {
        replies_.flush();
        return 0;
    }
    return replies_.exchange(buf_, wait_fd);
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

// Decodes one message of `got` bytes from the module, in buf_, and runs its callback (loop
// thread). Returns false when the device is gone, or the channel failed.
inline bool KernelTransport::decode(std::size_t got)
{
    using Kind = KernelMessage::Kind;
    const KernelMessage m = parse_kernel_message({buf_, got});
    const fusd_req_header &hdr = m.hdr;
    if (m.kind == Kind::bad_header) {
        LoopImpl::log_error(dev_.path + ": short message from the fusd module");
        return false;
    }
    Incoming in;
    in.transport_id = std::uintptr_t(hdr.id);
    in.caller = {pid_t(hdr.pid), uid_t(hdr.fsuid), gid_t(hdr.fsgid), uid_t(hdr.uid), gid_t(hdr.gid)};
    in.flags = hdr.flags;

    switch (m.kind) {
    case Kind::open: {
        auto file = loop_.new_file(dev_, in.caller, hdr.flags);
        file->transport_data = hdr.file_id;
        {
            std::lock_guard lock(files_mutex_);
            files_[hdr.file_id] = file;
        }
        in.op = Op::open;
        run_callback(std::move(file), in);
        return true;
    }
    case Kind::release: {
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
        run_callback(std::move(file), in);
        return true;
    }
    case Kind::read:
    case Kind::write:
    case Kind::ioctl: {
        auto file = file_of(hdr.file_id);
        if (!file) {
            answer_now(hdr, -EBADF); // cannot happen: the module sends calls for opened files only
            return true;
        }
        if (m.kind == Kind::read) {
            in.op = Op::read;
            in.size = hdr.len;
        } else if (m.kind == Kind::write) {
            in.op = Op::write;
            in.size = m.payload.size();
            in.data = m.payload.data();
            in.data_size = m.payload.size();
        } else {
            in.op = Op::ioctl;
            in.size = hdr.reply_max; // _IOR/_IOWR: the out size; else 0
            in.data = m.payload.empty() ? nullptr : m.payload.data();
            in.data_size = m.payload.size();
            in.ioctl_command = hdr.ioctl_cmd;
            in.ioctl_argument = hdr.ioctl_arg;
        }
        run_callback(std::move(file), in);
        return true;
    }
    case Kind::mmap:
    case Kind::bad_call: {
        auto file = file_of(hdr.file_id);
        if (!file || m.kind == Kind::bad_call) {
            answer_now(hdr, file ? -EPROTO : -EBADF);
            return true;
        }
        in.op = Op::mmap;
        in.size = std::size_t(m.mmap.length);
        in.map_offset = m.mmap.offset;
        in.map_prot = int(m.mmap.prot);
        in.map_flags = int(m.mmap.flags);
        run_callback(std::move(file), in);
        return true;
    }
    case Kind::interrupt:
        on_interrupt(hdr.id);
        return true;
    case Kind::gone:
        if (hdr.dev_id != channel_.dev_id())
            return true;
        gone_ = true; // fusdctl rm --force: the module removed the node and released the callers
        return false;
    case Kind::bad_header:
    case Kind::unknown:
        break;
    }
    // A later minor version's message: those needing a reply get ENOSYS.
    if (!(hdr.id & FUSD_ID_NOREPLY))
        answer_now(hdr, -ENOSYS);
    return true;
}

// Runs the driver's callback. What it answers on this thread stays in replies_ until it returns:
// serve() writes it, the last answer together with the read of the next request.
inline void KernelTransport::run_callback(std::shared_ptr<FileState> file, const Incoming &in)
{
    replies_.collect([&] { loop_.deliver(std::move(file), in); });
}

// A caller left (signal): find its request among the slots still out. Rare, so a scan rather than
// a table kept on every request; our reference keeps a matching slot from being recycled while
// the core answers EINTR, and an answered or recycled slot no longer matches.
void KernelTransport::on_interrupt(std::uint64_t id)
{
    for (RequestSlot *slot : loop_.pending_slots()) {
        if (slot->transport_id.load(std::memory_order_acquire) == id && slot->op != Op::release &&
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
// An open reply (open_file) carries the file's readiness, read when it is written.
inline void KernelTransport::send(const fusd_reply &head, std::span<const std::byte> payload,
                                  std::shared_ptr<FileState> open_file)
{
    if (replies_.collecting()) {
        replies_.add(head, payload, std::move(open_file));
        return;
    }
    send_now(head, payload, open_file);
}

// send() outside a callback on the loop thread: header and payload put together (the channel has
// .write only: a writev would be split into one message per iovec) and written at once.
void KernelTransport::send_now(const fusd_reply &head, std::span<const std::byte> payload,
                               const std::shared_ptr<FileState> &open_file)
{
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
    replies_.write_now(msg, sizeof head + payload.size(), open_file.get());
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
    const std::uint64_t id = slot.transport_id.load(std::memory_order_acquire);
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
    case Op::mmap:
        send_map(head, bytes);
        break;
    default: // write: result is the count taken
        head.size = sizeof head;
        send(head, {});
        break;
    }
}

// FUSD_REPLY_RETRY: the module copies the in ranges from the caller and asks again (fusd(4)).
void KernelTransport::retry(RequestSlot &slot, std::span<const MemoryRange> in, std::span<const MemoryRange> out)
{
    if (slot.interrupted.load(std::memory_order_acquire))
        return;
    fusd_ioctl_range ranges[FUSD_RETRY_RANGES_MAX];
    static_assert(kRetryRangesMax == FUSD_RETRY_RANGES_MAX && kRetryBytesMax == FUSD_CHUNK_MAX,
                  "Request::reply_retry's limits are the module's");
    fusd_ioctl_retry list{std::uint32_t(in.size()), std::uint32_t(out.size())};
    std::size_t n = 0;
    for (auto ranges_of : {in, out})
        for (const MemoryRange &r : ranges_of)
            ranges[n++] = {r.address, r.length};
    std::byte payload[sizeof list + sizeof ranges];
    std::memcpy(payload, &list, sizeof list);
    std::memcpy(payload + sizeof list, ranges, n * sizeof ranges[0]);
    fusd_reply head{};
    head.size = std::uint32_t(sizeof head + sizeof list + n * sizeof ranges[0]);
    head.type = FUSD_MSG_REPLY;
    head.id = slot.transport_id.load(std::memory_order_acquire);
    head.flags = FUSD_REPLY_RETRY;
    send(head, {payload, sizeof list + n * sizeof ranges[0]});
}

// An mmap answer, written now: the module looks its descriptor up in this process as it takes the
// reply. Refused (a bad descriptor), the caller gets the module's error.
void KernelTransport::send_map(fusd_reply head, std::span<const std::byte> bytes)
{
    MapReply map{};
    std::memcpy(&map, bytes.data(), std::min(bytes.size(), sizeof map));
    fusd_mmap_reply payload{};
    payload.fd = map.fd;
    payload.offset = map.offset;
    std::byte msg[sizeof head + sizeof payload];
    head.size = sizeof msg;
    std::memcpy(msg, &head, sizeof head);
    std::memcpy(msg + sizeof head, &payload, sizeof payload);
    int err = channel_.write_message(msg, sizeof msg);
    if (!err || err == ENOENT) // ENOENT: the caller left
        return;
    LoopImpl::log_error(dev_.path + ": the fusd module refused the mmap reply (descriptor " + std::to_string(map.fd) +
                        ", offset " + std::to_string(map.offset) + "): " + std::strerror(err) +
                        "; the caller gets that error");
    head.size = sizeof head;
    head.result = -err;
    if (int refused = channel_.write_message(&head, sizeof head); refused && refused != ENOENT)
        LoopImpl::log_error(dev_.path + ": the fusd module refused an error reply: " + std::strerror(refused));
}

void KernelTransport::notify_ready(FileState &file, unsigned)
{
    // The current mask, not the argument: a write under poll_mutex always carries the newest.
    std::lock_guard lock(file.poll_mutex);
    fusd_ready ready{};
    ready.size = sizeof ready;
    ready.type = FUSD_MSG_READY;
    ready.dev_id = channel_.dev_id();
    ready.file_id = file.transport_data;
    ready.mask = file.readiness.load() & FUSD_POLL_ALL;
    int err = channel_.write_message(&ready, sizeof ready);
    if (err && err != ENOENT) // ENOENT: that file was closed meanwhile
        LoopImpl::log_error(dev_.path + ": the fusd module refused a readiness change: " + std::strerror(err));
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

} // namespace fusd::detail
