// SPDX-License-Identifier: MIT
//
// The FUSE backend over io_uring (Linux 6.14+): the same one-file mount over the device's /dev
// path as fuse_transport.cpp, but requests come in ring entries and answers go back with
// FUSE_IO_URING_CMD_COMMIT_AND_FETCH, one io_uring_enter() for a batch of answers and fetches
// instead of a read(2) and a writev(2) per request.
//
// Why not libfuse: Debian's libfuse 3.14 predates FUSE over io_uring (libfuse 3.17+), and its
// session reads requests only from the /dev/fuse descriptor, so this transport speaks the FUSE
// protocol itself: INIT by read/write on /dev/fuse, then one queue per possible CPU (the kernel
// sends a request to the queue of the CPU its caller runs on, and uses the ring only once every
// queue has an entry). INTERRUPT and FORGET still come by read(2) and poll notifications go by
// write(2) on /dev/fuse.
//
// Threads: every SQE is submitted on the loop thread, the registrations too (on its first
// wake-up, which start() asks for). The kernel copies a request into its entry by task work of
// the task that submitted the entry's command: a thread that submitted and then blocks in a
// call on the device (the thread that added the device, opening it while another thread runs
// the loop) would wait, uninterruptibly, for its own task work. A reply from another thread
// fills its entry and queues it; an eventfd wakes the loop, which submits it. Until the loop
// registers the queues the kernel holds callers back (killably), as for a loop not yet running.
//
// Entries: an entry holds one request until it is answered. A driver that keeps requests
// (blocking reads) would otherwise starve its queue, so when a request is kept and its queue has
// no entry left in the kernel, another entry is registered (up to kMaxEntriesPerQueue).
//
// One call: kernel FUSE_READ -> CQE -> on_readable() -> decode_uring_request() -> deliver() ->
// driver -> reply() -> COMMIT_AND_FETCH of the entry (the next request arrives in it).
#include "uring_transport.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>
#include <unordered_set>

#include <liburing.h>

#include "fd.hpp"
#include "fusd/admin.hpp"
#include "fuse_mount.hpp"
#include "loop_impl.hpp"
#include "uring_message.hpp"

namespace fusd::detail {

namespace {

using namespace fuse_abi;

constexpr std::uint32_t kMaxWrite = 1u << 20;   // as libfuse's session: 256 pages a request
constexpr std::uint16_t kMaxPagesAsked = 256;
constexpr unsigned kSqDepth = 256;
constexpr unsigned kInitialEntriesPerQueue = 2;
constexpr unsigned kMaxEntriesPerQueue = 256;
constexpr std::uint32_t kProtocolMinor = 42;     // the first with FUSE_OVER_IO_URING
constexpr const char *kEnableUring = "/sys/module/fuse/parameters/enable_uring";

// Anonymous memory, unmapped on destruction. Pages cost nothing until touched.
class Mapping {
public:
    explicit Mapping(std::size_t size) : size_(size)
    {
        void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            throw Error(errno, std::string("fusd: cannot map a FUSE ring buffer: ") + std::strerror(errno));
        base_ = static_cast<std::byte *>(p);
    }
    ~Mapping() { munmap(base_, size_); }
    Mapping(const Mapping &) = delete;
    Mapping &operator=(const Mapping &) = delete;
    std::byte *data() const { return base_; }
    std::size_t size() const { return size_; }

private:
    std::byte *base_ = nullptr;
    std::size_t size_ = 0;
};

// One ring entry: a header buffer and a payload buffer registered with the kernel.
struct Entry {
    Entry(unsigned q, std::size_t page, std::size_t payload_size)
        : qid(q), memory(page + payload_size), header(reinterpret_cast<UringReqHeader *>(memory.data())),
          payload(memory.data() + page), payload_size(payload_size)
    {
        iov[0] = {header, sizeof(UringReqHeader)};
        iov[1] = {payload, payload_size};
    }
    unsigned qid;
    Mapping memory;
    UringReqHeader *header;
    std::byte *payload;
    std::size_t payload_size;
    iovec iov[2];
    // Loop thread only, except `unique`, read by reply() (the request's hand-over orders it).
    std::uint64_t unique = 0;        // the request the entry holds
    RequestSlot *slot = nullptr;     // armed: INTERRUPT for `unique` reaches it
    bool in_kernel = false;          // its command is with the kernel
    bool dead = false;               // the kernel no longer knows it
    std::uint32_t last_op = 0;       // the command last submitted
    std::shared_ptr<FileState> *open_holder = nullptr; // the open answer in it, until committed
};

unsigned possible_cpus()
{
    // The kernel makes num_possible_cpus() queues; "0-3,6" style.
    std::ifstream in("/sys/devices/system/cpu/possible");
    std::string list;
    unsigned count = 0;
    if (std::getline(in, list)) {
        std::size_t pos = 0;
        while (pos < list.size()) {
            std::size_t end = list.find(',', pos);
            std::string part = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
            unsigned a = 0, b = 0;
            int n = std::sscanf(part.c_str(), "%u-%u", &a, &b);
            count += n == 2 && b >= a ? b - a + 1 : n >= 1 ? 1 : 0;
            if (end == std::string::npos)
                break;
            pos = end + 1;
        }
    }
    return count ? count : unsigned(get_nprocs_conf());
}

class UringTransport final : public Transport {
public:
    explicit UringTransport(DeviceState &dev) : dev_(dev), loop_(*dev.loop) { arms_requests_ = true; }
    ~UringTransport() override
    {
        if (!shut_)
            shutdown();
    }

    void start();

    Backend backend() const override { return Backend::fuse; }
    int fd() const override { return epoll_.get(); }
    bool on_readable() override;
    void reply(RequestSlot &slot, int result, std::span<const std::byte> bytes) override;
    void notify_ready(FileState &file, unsigned events) override;
    void keep_buffer(RequestSlot &slot) override;
    void arm(RequestSlot &slot) override;
    void forget_file(FileState &file) override;
    void shutdown() override;

private:
    void make_node();
    void handshake();
    void make_ring();
    Entry &add_entry(unsigned qid);
    void queue_command(Entry &e, std::uint32_t op);
    void submit();
    void handle_completion(Entry &e, int res);
    void handle_request(Entry &e, const UringRequest &r);
    void handle_dev_message(std::span<const std::byte> bytes);
    void interrupt(std::uint64_t unique);
    // Fills the entry's answer: the out-header and `payload_size` bytes already in its payload.
    void answer(Entry &e, int error, std::size_t payload_size);
    void commit(Entry &e);
    bool on_loop_thread() const { return loop_thread_set_ && pthread_equal(loop_thread_, pthread_self()); }
    std::shared_ptr<FileState> *find_holder(std::uint64_t fh);
    Attr attributes();
    Caller unresolved_caller(const UringRequest &r) const { return {pid_t(r.pid), r.uid, r.gid, uid_t(-1), gid_t(-1)}; }
    Incoming incoming(Entry &e, const UringRequest &r, Op op) const
    {
        Incoming in;
        in.op = op;
        in.transport_id = reinterpret_cast<std::uintptr_t>(&e);
        in.caller = unresolved_caller(r);
        in.caller_unresolved = true;
        in.flags = r.flags;
        return in;
    }

    DeviceState &dev_;
    LoopImpl &loop_;
    bool shut_ = false;
    bool mounted_ = false;
    ino_t placeholder_ino_ = 0;
    unsigned conn_major_ = 0, conn_minor_ = 0;
    std::int64_t created_s_ = 0;
    std::mutex attr_mutex_;

    Fd fuse_fd_;
    Fd epoll_;
    Fd wake_;                          // eventfd: replies from other threads are waiting
    io_uring ring_{};
    bool ring_ready_ = false;
    std::size_t payload_size_ = 0;
    std::size_t page_ = 4096;
    std::unique_ptr<Mapping> dev_buffer_; // for read(2) of /dev/fuse: the kernel wants room for a write
    std::vector<std::unique_ptr<Entry>> entries_;
    std::vector<unsigned> in_kernel_;  // per queue: entries whose command the kernel holds
    std::vector<unsigned> per_queue_;  // per queue: entries
    bool pending_submit_ = false;
    bool in_dispatch_ = false;
    bool registered_ = false;
    bool gone_ = false;
    pthread_t loop_thread_{};
    bool loop_thread_set_ = false;
    std::unordered_set<std::uint64_t> early_interrupts_; // INTERRUPT read before its request

    std::mutex commits_mutex_;
    std::vector<Entry *> commits_;     // answered on other threads, for the loop to submit

    std::mutex holders_mutex_;
    std::unordered_set<std::shared_ptr<FileState> *> holders_;
};

void UringTransport::make_node()
{
    placeholder_ino_ = make_placeholder(dev_.path);
    created_s_ = realtime_ns() / 1'000'000'000;
}

void UringTransport::start()
{
    const std::string &path = dev_.path;
    make_node();
    try {
        page_ = std::size_t(sysconf(_SC_PAGESIZE));
        // The kernel's minimum for an entry's payload: max(FUSE_MIN_READ_BUFFER, max_write, max_pages pages).
        payload_size_ = std::max<std::size_t>({8192, kMaxWrite, kMaxPagesAsked * page_});
        dev_buffer_ = std::make_unique<Mapping>(payload_size_ + page_);
        fuse_fd_.reset(open("/dev/fuse", O_RDWR | O_CLOEXEC));
        if (!fuse_fd_)
            throw Error(errno, path + ": cannot open /dev/fuse: " + std::strerror(errno));
        mount_fuse_over(path, fuse_fd_.get(), conn_major_, conn_minor_);
        mounted_ = true;
        handshake();
        fcntl(fuse_fd_.get(), F_SETFL, fcntl(fuse_fd_.get(), F_GETFL) | O_NONBLOCK);
        make_ring();
        epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
        wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!epoll_ || !wake_)
            throw Error(errno, path + ": epoll/eventfd: " + std::strerror(errno));
        for (int fd : {fuse_fd_.get(), ring_.ring_fd, wake_.get()}) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = fd;
            if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
                throw Error(errno, path + ": epoll_ctl: " + std::strerror(errno));
        }
        std::uint64_t one = 1; // the loop's first wake-up registers the queues
        (void)!::write(wake_.get(), &one, sizeof one);
    } catch (...) {
        shutdown();
        throw;
    }
}

void UringTransport::handshake()
{
    const std::string &path = dev_.path;
    for (int waited_ms = 0;;) {
        pollfd p{fuse_fd_.get(), POLLIN, 0};
        int r = ::poll(&p, 1, 100);
        if (r == 0 && (waited_ms += 100) >= 10'000)
            throw Error(ETIMEDOUT, path + ": the kernel sent no FUSE_INIT");
        if (r <= 0)
            continue;
        ssize_t n = ::read(fuse_fd_.get(), dev_buffer_->data(), dev_buffer_->size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            throw Error(errno, path + ": connection failed during FUSE_INIT: " + std::strerror(errno));
        InHeader in;
        InitIn init{};
        if (std::size_t(n) < sizeof in + 16)
            throw Error(EPROTO, path + ": FUSE_INIT too short");
        std::memcpy(&in, dev_buffer_->data(), sizeof in);
        if (in.opcode != kInit || in.len != std::size_t(n))
            throw Error(EPROTO, path + ": the kernel's first message is not FUSE_INIT");
        std::memcpy(&init, dev_buffer_->data() + sizeof in, std::min(sizeof init, std::size_t(n) - sizeof in));
        const bool ext = (init.flags & kInitExt) && std::size_t(n) >= sizeof in + sizeof init;
        if (init.major != 7 || !ext || !(init.flags2 & kOverIoUringFlags2))
            throw Error(EOPNOTSUPP, path + ": the kernel does not offer FUSE over io_uring on this connection "
                                           "(is /sys/module/fuse/parameters/enable_uring Y?)");
        struct {
            OutHeader h;
            InitOut o;
        } out{};
        out.h = {sizeof out, 0, in.unique};
        out.o.major = 7;
        out.o.minor = std::min(init.minor, kProtocolMinor);
        out.o.max_readahead = init.max_readahead;
        out.o.flags = (init.flags & kMaxPages) | kInitExt;
        out.o.max_background = 16;
        out.o.congestion_threshold = 12;
        out.o.max_write = kMaxWrite;
        out.o.time_gran = 1;
        out.o.max_pages = kMaxPagesAsked;
        out.o.flags2 = kOverIoUringFlags2;
        if (::write(fuse_fd_.get(), &out, sizeof out) != ssize_t(sizeof out))
            throw Error(errno ? errno : EIO, path + ": cannot answer FUSE_INIT: " + std::strerror(errno));
        return;
    }
}

void UringTransport::make_ring()
{
    const std::string &path = dev_.path;
    int r = io_uring_queue_init(kSqDepth, &ring_, IORING_SETUP_SQE128);
    if (r < 0)
        throw Error(-r, path + ": cannot create an io_uring (SQE128): " + std::strerror(-r));
    ring_ready_ = true;
    unsigned queues = possible_cpus();
    in_kernel_.assign(queues, 0);
    per_queue_.assign(queues, 0);
    for (unsigned q = 0; q < queues; ++q)
        for (unsigned i = 0; i < kInitialEntriesPerQueue; ++i)
            add_entry(q);
}

Entry &UringTransport::add_entry(unsigned qid)
{
    entries_.push_back(std::make_unique<Entry>(qid, page_, payload_size_));
    ++per_queue_[qid];
    return *entries_.back();
}

void UringTransport::queue_command(Entry &e, std::uint32_t op)
{
    io_uring_sqe *sqe = io_uring_get_sqe(&ring_);
    if (!sqe) { // the submission queue is full: hand it over first
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
    }
    // An SQE128 slot: twice the size liburing's struct says (the empty asm hides the pointer's
    // origin, so the compiler does not hold the memset to the struct's size).
    void *raw = sqe;
    asm("" : "+r"(raw));
    std::memset(raw, 0, 2 * sizeof(io_uring_sqe));
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fuse_fd_.get();
    sqe->cmd_op = op;
    sqe->addr = reinterpret_cast<std::uintptr_t>(e.iov);
    sqe->len = 2;
    UringCmdReq cmd{};
    cmd.qid = std::uint16_t(e.qid);
    cmd.commit_id = op == kUringCmdCommitAndFetch ? e.unique : 0;
    std::memcpy(sqe->cmd, &cmd, sizeof cmd);
    io_uring_sqe_set_data(sqe, &e);
    e.in_kernel = true;
    e.last_op = op;
    ++in_kernel_[e.qid];
    pending_submit_ = true;
}

void UringTransport::submit()
{
    if (!pending_submit_)
        return;
    pending_submit_ = false;
    int r;
    do
        r = io_uring_submit(&ring_);
    while (r == -EINTR);
    if (r < 0)
        LoopImpl::log_error(dev_.path + ": io_uring_submit: " + std::strerror(-r));
}

bool UringTransport::on_readable()
{
    if (!loop_thread_set_) {
        loop_thread_ = pthread_self();
        loop_thread_set_ = true;
    }
    in_dispatch_ = true;
    if (!registered_) {
        registered_ = true;
        for (auto &e : entries_)
            queue_command(*e, kUringCmdRegister);
    }
    std::uint64_t ignored;
    (void)!::read(wake_.get(), &ignored, sizeof ignored);
    std::vector<Entry *> commits;
    {
        std::lock_guard lock(commits_mutex_);
        commits.swap(commits_);
    }
    for (Entry *e : commits)
        queue_command(*e, kUringCmdCommitAndFetch);

    io_uring_cqe *cqe = nullptr;
    while (!gone_ && io_uring_peek_cqe(&ring_, &cqe) == 0) {
        auto *e = static_cast<Entry *>(io_uring_cqe_get_data(cqe));
        int res = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        if (e)
            handle_completion(*e, res);
    }
    while (!gone_) {
        ssize_t n = ::read(fuse_fd_.get(), dev_buffer_->data(), dev_buffer_->size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            gone_ = true; // ENODEV: unmounted or aborted (fusdctl rm --force)
            break;
        }
        handle_dev_message({dev_buffer_->data(), std::size_t(n)});
    }
    submit();
    in_dispatch_ = false;
    return !gone_;
}

void UringTransport::handle_completion(Entry &e, int res)
{
    e.in_kernel = false;
    --in_kernel_[e.qid];
    e.slot = nullptr;
    if (e.open_holder) { // the open answer went through: its release will come
        if (res == -ENOENT) {
            // The caller was gone before the answer: no release will follow.
            std::lock_guard lock(holders_mutex_);
            holders_.erase(e.open_holder);
            delete e.open_holder;
        }
        e.open_holder = nullptr;
    }
    if (res < 0) {
        if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED) {
            gone_ = true; // the connection ended
            return;
        }
        if (e.last_op == kUringCmdRegister) {
            LoopImpl::log_error(dev_.path + ": the kernel refused FUSE over io_uring (FUSE_IO_URING_CMD_REGISTER): " +
                                std::strerror(-res));
            gone_ = true;
            return;
        }
        // The kernel forgot the entry's request (ENOENT: its caller was gone). The entry is lost
        // to the kernel; register its buffers again as a new entry.
        queue_command(e, kUringCmdRegister);
        return;
    }
    UringRequest r;
    int d = decode_uring_request(*e.header, {e.payload, e.payload_size}, r);
    e.unique = r.unique;
    if (r.unique == 0) {
        LoopImpl::log_error(dev_.path + ": a FUSE ring entry without a request: entry dropped");
        e.dead = true;
        --per_queue_[e.qid];
        if (in_kernel_[e.qid] == 0 && per_queue_[e.qid] < kMaxEntriesPerQueue)
            queue_command(add_entry(e.qid), kUringCmdRegister);
        return;
    }
    if (d < 0) {
        answer(e, d == -ENOSYS ? -ENOSYS : -EIO, 0);
        commit(e);
        return;
    }
    handle_request(e, r);
    // Kept by the driver (no answer yet) with no entry left in the kernel for this queue: the
    // queue's next request would wait for an answer that may need it (a read waiting for a write).
    if (!e.in_kernel && in_kernel_[e.qid] == 0 && per_queue_[e.qid] < kMaxEntriesPerQueue) {
        bool queued_elsewhere;
        {
            std::lock_guard lock(commits_mutex_);
            queued_elsewhere = std::find(commits_.begin(), commits_.end(), &e) != commits_.end();
        }
        if (!queued_elsewhere)
            queue_command(add_entry(e.qid), kUringCmdRegister);
    }
}

std::shared_ptr<FileState> *UringTransport::find_holder(std::uint64_t fh)
{
    auto *h = reinterpret_cast<std::shared_ptr<FileState> *>(static_cast<std::uintptr_t>(fh));
    std::lock_guard lock(holders_mutex_);
    return holders_.count(h) ? h : nullptr;
}

void UringTransport::handle_request(Entry &e, const UringRequest &r)
{
    switch (r.opcode) {
    case kGetattr:
    case kSetattr: {
        if (r.opcode == kSetattr) {
            // chmod/chown of the node change what later opens may do (default_permissions: the
            // kernel checked the caller may). Truncation and times are accepted and ignored.
            std::lock_guard lock(attr_mutex_);
            if (r.setattr_valid & kFattrMode)
                dev_.options.mode = r.mode & 07777;
            if (r.setattr_valid & kFattrUid)
                dev_.options.owner = r.new_uid;
            if (r.setattr_valid & kFattrGid)
                dev_.options.group = r.new_gid;
        }
        AttrOut out{};
        out.attr_valid = std::uint64_t(kFuseAttrTimeout);
        out.attr = attributes();
        std::memcpy(e.payload, &out, sizeof out);
        answer(e, 0, sizeof out);
        commit(e);
        return;
    }
    case kFlush: // not asked for (FOPEN_NOFLUSH), nothing to flush if it comes
    case kDestroy:
        answer(e, 0, 0);
        commit(e);
        return;
    case kOpen: {
        Incoming in = incoming(e, r, Op::open);
        resolve_caller_ids(in.caller); // File::opener() is complete from the start
        in.caller_unresolved = false;
        loop_.deliver(loop_.new_file(dev_, in.caller, in.flags), in);
        return;
    }
    default:
        break;
    }
    std::shared_ptr<FileState> *h = find_holder(r.fh);
    if (!h) {
        answer(e, -EBADF, 0);
        commit(e);
        return;
    }
    switch (r.opcode) {
    case kRead: {
        Incoming in = incoming(e, r, Op::read);
        in.size = r.size;
        in.offset = r.offset;
        loop_.deliver(*h, in);
        return;
    }
    case kWrite: {
        Incoming in = incoming(e, r, Op::write);
        in.size = r.size;
        in.data = r.data.data();
        in.data_size = r.data.size();
        in.offset = r.offset;
        loop_.deliver(*h, in);
        return;
    }
    case kRelease: {
        std::shared_ptr<FileState> file = std::move(*h);
        {
            std::lock_guard lock(holders_mutex_);
            holders_.erase(h);
        }
        delete h;
        Incoming in = incoming(e, r, Op::release);
        if (in.caller.pid == 0) { // RELEASE comes from no process in particular: name the opener
            in.caller = file->opener;
            in.caller_unresolved = false;
        }
        loop_.deliver(std::move(file), in);
        return;
    }
    case kIoctl: {
        const IoctlPlan plan = plan_libfuse_ioctl(r.ioctl_cmd, r.ioctl_flags & kIoctlCompat,
                                                  r.ioctl_flags & kIoctlUnrestricted, r.data.size(), r.size);
        if (plan.action == IoctlPlan::Action::refuse) {
            answer(e, -plan.error, 0);
            commit(e);
            return;
        }
        if (plan.action == IoctlPlan::Action::retry) {
            struct {
                IoctlOut o;
                IoctlIovec v[2];
            } out{};
            out.o.flags = kIoctlRetry;
            out.o.in_iovs = plan.in;
            out.o.out_iovs = plan.out;
            unsigned n = 0;
            if (plan.in)
                out.v[n++] = {r.ioctl_arg, plan.size};
            if (plan.out)
                out.v[n++] = {r.ioctl_arg, plan.size};
            std::size_t size = sizeof out.o + n * sizeof(IoctlIovec);
            std::memcpy(e.payload, &out, size);
            answer(e, 0, size);
            commit(e);
            return;
        }
        Incoming in = incoming(e, r, Op::ioctl);
        in.flags = (*h)->flags; // FUSE_IOCTL carries no flags: the ones given at open
        in.size = r.size;
        in.data = r.data.data();
        in.data_size = r.data.size();
        in.ioctl_command = r.ioctl_cmd;
        in.ioctl_argument = r.ioctl_arg;
        loop_.deliver(*h, in);
        return;
    }
    case kPoll: {
        // Answered here from the readiness the driver published: no round trip to the driver.
        FileState &file = **h;
        if (r.poll_flags & kPollScheduleNotify) {
            std::lock_guard lock(file.poll_mutex);
            file.transport_data = r.poll_kh;
        }
        unsigned events = file.readiness.load();
        if (loop_.tracing()) {
            Caller c = unresolved_caller(r);
            resolve_caller_ids(c);
            loop_.trace_poll(dev_, c, events);
        }
        PollOut out{events, 0};
        std::memcpy(e.payload, &out, sizeof out);
        answer(e, 0, sizeof out);
        commit(e);
        return;
    }
    default:
        answer(e, -ENOSYS, 0);
        commit(e);
        return;
    }
}

void UringTransport::handle_dev_message(std::span<const std::byte> bytes)
{
    DevMessage m;
    if (decode_dev_message(bytes, m) < 0) {
        LoopImpl::log_error(dev_.path + ": malformed message from /dev/fuse ignored");
        return;
    }
    switch (m.opcode) {
    case kInterrupt:
        interrupt(m.interrupted);
        return;
    case kForget:
    case kBatchForget:
        return; // the root inode is never forgotten for good; nothing to answer
    default: {
        OutHeader h{sizeof h, m.opcode == kDestroy ? 0 : -ENOSYS, m.unique};
        (void)!::write(fuse_fd_.get(), &h, sizeof h);
        return;
    }
    }
}

void UringTransport::interrupt(std::uint64_t unique)
{
    for (auto &p : entries_) {
        Entry &e = *p;
        if (e.in_kernel || e.dead || e.unique != unique)
            continue;
        if (!e.slot)
            break; // not armed yet (or answered here without the driver): nothing to interrupt
        RequestSlot &slot = *e.slot;
        // Take a reference only on a slot still out (see LibfuseTransport::on_interrupt).
        int refs = slot.refs.load(std::memory_order_acquire);
        while (refs > 0 && !slot.refs.compare_exchange_weak(refs, refs + 1, std::memory_order_acq_rel))
            ;
        if (refs == 0)
            return;
        loop_.interrupt(slot, reinterpret_cast<std::uintptr_t>(&e));
        LoopImpl::unref(&slot);
        return;
    }
    // Its ring entry's completion may still be on its way: remember it for arm().
    if (early_interrupts_.size() > 4096)
        early_interrupts_.clear();
    early_interrupts_.insert(unique);
}

void UringTransport::arm(RequestSlot &slot)
{
    auto &e = *reinterpret_cast<Entry *>(slot.transport_id.load(std::memory_order_relaxed));
    e.slot = &slot;
    if (!early_interrupts_.empty() && early_interrupts_.erase(e.unique))
        interrupt(e.unique);
}

void UringTransport::keep_buffer(RequestSlot &slot)
{
    // The data lies in the ring entry, which is reused once answered, while the Request may
    // still be read: give the slot its own copy.
    if (!slot.data || !slot.data_size)
        return;
    void *copy = std::malloc(slot.data_size);
    if (!copy)
        throw std::bad_alloc();
    std::memcpy(copy, slot.data, slot.data_size);
    slot.owned_buffer = copy;
    slot.data = static_cast<const std::byte *>(copy);
}

void UringTransport::answer(Entry &e, int error, std::size_t payload_size)
{
    OutHeader h{std::uint32_t(sizeof h + payload_size), error, e.unique};
    std::memcpy(e.header->in_out, &h, sizeof h);
    UringEntInOut io{};
    io.commit_id = e.unique;
    io.payload_sz = std::uint32_t(payload_size);
    std::memcpy(&e.header->ring_ent_in_out, &io, sizeof io);
}

void UringTransport::commit(Entry &e)
{
    if (on_loop_thread()) {
        queue_command(e, kUringCmdCommitAndFetch);
        if (!in_dispatch_)
            submit();
        return;
    }
    {
        std::lock_guard lock(commits_mutex_);
        commits_.push_back(&e);
    }
    std::uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
}

void UringTransport::reply(RequestSlot &slot, int result, std::span<const std::byte> bytes)
{
    Entry &e = *reinterpret_cast<Entry *>(slot.transport_id.load(std::memory_order_acquire));
    if (slot.op == Op::release) {
        answer(e, 0, 0); // a failed close is still a close
        commit(e);
        return;
    }
    if (result < 0) {
        answer(e, result, 0);
        commit(e);
        return;
    }
    std::size_t size = 0;
    switch (slot.op) {
    case Op::open: {
        auto *h = new std::shared_ptr<FileState>(slot.file);
        {
            std::lock_guard lock(holders_mutex_);
            holders_.insert(h);
        }
        // No FUSE_FLUSH on close (see LibfuseTransport::reply); STREAM: a read held by the driver
        // must not freeze writes on the same open file.
        OpenOut out{reinterpret_cast<std::uintptr_t>(h),
                    kFopenDirectIo | kFopenNonseekable | kFopenNoflush | kFopenStream | kFopenParallelDirectWrites, 0};
        std::memcpy(e.payload, &out, sizeof out);
        size = sizeof out;
        e.open_holder = h;
        break;
    }
    case Op::read:
        size = std::min({bytes.size(), e.payload_size, std::size_t(slot.size)});
        if (size) // an empty answer may have no data pointer at all
            std::memcpy(e.payload, bytes.data(), size);
        break;
    case Op::write: {
        WriteOut out{std::uint32_t(result), 0};
        std::memcpy(e.payload, &out, sizeof out);
        size = sizeof out;
        break;
    }
    case Op::ioctl: {
        IoctlOut out{result, 0, 0, 0};
        std::size_t data = std::min({bytes.size(), e.payload_size - sizeof out, std::size_t(slot.size)});
        std::memcpy(e.payload, &out, sizeof out);
        if (data) // an empty answer may have no data pointer at all
            std::memcpy(e.payload + sizeof out, bytes.data(), data);
        size = sizeof out + data;
        break;
    }
    default:
        answer(e, -EIO, 0);
        commit(e);
        return;
    }
    answer(e, 0, size);
    commit(e);
}

void UringTransport::notify_ready(FileState &file, unsigned)
{
    std::lock_guard lock(file.poll_mutex);
    if (!file.transport_data)
        return;
    struct {
        OutHeader h;
        NotifyPollWakeup w;
    } msg{{sizeof msg, std::int32_t(kNotifyPoll), 0}, {file.transport_data}};
    (void)!::write(fuse_fd_.get(), &msg, sizeof msg);
}

void UringTransport::forget_file(FileState &file)
{
    std::lock_guard lock(file.poll_mutex);
    file.transport_data = 0;
}

Attr UringTransport::attributes()
{
    Attr a{};
    std::lock_guard lock(attr_mutex_);
    a.ino = 1; // FUSE_ROOT_ID
    a.mode = S_IFREG | (dev_.options.mode & 07777);
    a.nlink = 1;
    a.uid = dev_.options.owner ? *dev_.options.owner : 0;
    a.gid = dev_.options.group ? *dev_.options.group : 0;
    a.atime = a.mtime = a.ctime = std::uint64_t(created_s_);
    return a;
}

void UringTransport::shutdown()
{
    shut_ = true;
    // Answers given but not yet handed over (replies from other threads, the removal's own
    // answers to callers still waiting) go first: those callers get what the core answered, not
    // the abort's ECONNABORTED. Whichever thread this is, the commit itself completes in the call.
    if (ring_ready_ && fuse_fd_) {
        std::vector<Entry *> commits;
        {
            std::lock_guard lock(commits_mutex_);
            commits.swap(commits_);
        }
        for (Entry *e : commits)
            queue_command(*e, kUringCmdCommitAndFetch);
        submit();
    }
    // Abort first: the kernel holds /dev/fuse through the ring's commands, so closing it would
    // not end the connection, and every caller waiting on a request must be released now.
    if (mounted_ && conn_minor_)
        abort_connection(conn_minor_);
    if (ring_ready_) {
        io_uring_queue_exit(&ring_);
        ring_ready_ = false;
    }
    fuse_fd_.reset();
    epoll_.reset();
    wake_.reset();
    {
        std::lock_guard lock(holders_mutex_);
        for (auto *h : holders_) {
            forget_file(**h);
            delete h;
        }
        holders_.clear();
    }
    remove_own_mount(dev_.path, mounted_ ? conn_major_ : 0, mounted_ ? conn_minor_ : 0, placeholder_ino_);
    mounted_ = false;
    placeholder_ino_ = 0;
    entries_.clear();
}

std::string read_line(const char *path)
{
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
}

} // namespace

FuseTransportChoice choose_fuse_transport()
{
    const char *env = std::getenv("FUSD_FUSE_TRANSPORT");
    const std::string want = env ? env : "";
    std::string unavailable;
    if (access(kEnableUring, F_OK) != 0)
        unavailable = "this kernel has no FUSE over io_uring (Linux 6.14+ built with CONFIG_FUSE_IO_URING; no "
                      "/sys/module/fuse/parameters/enable_uring)";
    else if (std::string v = read_line(kEnableUring); v != "Y" && v != "1")
        unavailable = "FUSE over io_uring is off: turn it on as root with "
                      "`echo Y > /sys/module/fuse/parameters/enable_uring` (or boot with fuse.enable_uring=1)";
    else if (read_line("/proc/sys/kernel/io_uring_disabled") == "2")
        unavailable = "io_uring is disabled (sysctl kernel.io_uring_disabled=2)";
    if (want == "libfuse")
        return {false, "FUSD_FUSE_TRANSPORT=libfuse", false};
    if (want == "uring") {
        if (unavailable.empty())
            return {true, "FUSD_FUSE_TRANSPORT=uring", false};
        return {false, "FUSD_FUSE_TRANSPORT=uring, but " + unavailable, true};
    }
    if (!want.empty() && want != "auto")
        return {false, "FUSD_FUSE_TRANSPORT=" + want + ": not uring, libfuse or auto", true};
    // Not the default even where it is on: the kernel hands a request to a ring entry at once,
    // so a caller SIGKILLed while the daemon is stopped waits uninterruptibly until the daemon
    // continues or dies (libfuse's session leaves an unread request killable).
    if (unavailable.empty())
        return {false, "FUSE over io_uring is on but not the default: with it, a caller SIGKILLed while its "
                       "daemon is stopped waits uninterruptibly until the daemon continues or dies; "
                       "FUSD_FUSE_TRANSPORT=uring chooses it", false};
    return {false, unavailable, false};
}

std::unique_ptr<Transport> make_uring_fuse_transport(DeviceState &device)
{
    return start_transport<UringTransport>(device);
}

} // namespace fusd::detail

std::string fusd::admin::fuse_transport(std::string &why)
{
    detail::FuseTransportChoice c = detail::choose_fuse_transport();
    why = c.why;
    return c.error ? "" : c.uring ? "uring" : "libfuse";
}

namespace fusd::detail {

std::unique_ptr<Transport> make_fuse_transport(DeviceState &device)
{
    FuseTransportChoice c = choose_fuse_transport();
    if (c.error)
        throw Error(EINVAL, device.path + ": " + c.why);
    return c.uring ? make_uring_fuse_transport(device) : make_libfuse_fuse_transport(device);
}

} // namespace fusd::detail
