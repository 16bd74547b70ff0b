// SPDX-License-Identifier: MIT
//
// The classic FUSD C API (fusd.h) over the C++ core.
//
//   CDevice    one fusd_register()ed device: the C operations table, device_info, the descriptor
//              handed to the driver (a dup of the loop's fd) and a weak hold on the core's Device,
//              which the core may remove on its own (a signal, `fusdctl rm`, an aborted backend).
//   CFile      one open file: private_data and the file position between calls, poll_diff's
//              state, and a weak hold on the core's File.
//   fusd_call  one call given to a C callback (its fusd_file_info inside), owning the core's
//              Request until fusd_return() or fusd_destroy() ends it.
//
// One read: core → callbacks_for().read → new_call → fops.read(&call->info, ...) → finish(): the
// return value answers it now, or -FUSD_NOREPLY leaves it to a later fusd_return() from any
// thread. A call ended inside its own callback (fusd_return(), then -FUSD_NOREPLY: the pager
// pattern) is freed by finish() once that callback has returned, never earlier. poll_diff always
// runs on the loop's thread from posted work, never inside another callback.
//
// Signals: the loop takes none (no signal mask, no signalfd). SIGINT and SIGTERM, when the driver
// left them at their default, get a handler that only records the signal and wakes the loop; the
// library's next dispatch unregisters every device and re-raises the signal with its default
// action, so the driver ends as it did under FUSD and leaves nothing behind. A driver's own
// handlers are left alone; exit() also unregisters everything (the loop is a static object).
#include "fusd.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <unistd.h>
#include <vector>

#include <linux/ioctl.h>

#include "core.hpp"
#include "fd.hpp"
#include "fusd/fusd.hpp"

namespace {

struct CDevice {
    fusd::Fd fd;                 // a dup of the loop's fd: the device's number in the C API
    fusd::Device *device = nullptr;
    std::weak_ptr<void> alive;   // expires when the core frees `device`
    void *device_info = nullptr;
    fusd_file_operations fops{};
};

struct CFile;

} // namespace

struct fusd_call {
    fusd_file_info info{};
    int type = 0;
    fusd::Request req;
    std::shared_ptr<CDevice> dev;
    std::shared_ptr<CFile> cfile;
    std::vector<char> buffer;    // read buffer, ioctl in/out buffer
    const char *write_data = nullptr;
    size_t length = 0;
    loff_t offset = 0;           // the file position; the driver's value after the call is kept
    int ioctl_request = 0;
    unsigned ioctl_dir = 0;      // _IOC_NONE/_IOC_READ/_IOC_WRITE, from the number or the table
    unsigned long ioctl_arg = 0;
    unsigned cached_state = 0;
    std::uint64_t request_id = 0;
    std::mutex mutex;
    bool in_callback = true;     // its callback has not returned yet: finish() frees it
    bool ended = false;          // answered or destroyed
};

namespace {

struct CFile {
    std::mutex mutex;
    void *private_data = nullptr;
    loff_t position = 0;
    std::weak_ptr<fusd::File> file; // reset at close; expires when the core frees the File
    std::map<std::uint64_t, fusd_call *> pending;
    bool poll_idle = false;      // the driver answered poll_diff with an unchanged state
};

std::mutex g_mutex;
std::unique_ptr<fusd::Loop> g_loop;
std::map<int, std::shared_ptr<CDevice>> g_devices;
std::atomic<fusd::Loop *> g_signal_loop{nullptr};
std::atomic<int> g_signal{0};

unsigned to_events(unsigned state)
{
    return (state & FUSD_NOTIFY_INPUT ? POLLIN : 0u) | (state & FUSD_NOTIFY_OUTPUT ? POLLOUT : 0u) |
           (state & FUSD_NOTIFY_EXCEPT ? POLLPRI : 0u);
}

unsigned to_state(unsigned events)
{
    return (events & POLLIN ? FUSD_NOTIFY_INPUT : 0u) | (events & POLLOUT ? FUSD_NOTIFY_OUTPUT : 0u) |
           (events & POLLPRI ? FUSD_NOTIFY_EXCEPT : 0u);
}

// Async-signal-safe: an atomic store and Loop::stop()'s eventfd write.
void on_stop_signal(int sig)
{
    g_signal.store(sig);
    if (fusd::Loop *l = g_signal_loop.load())
        l->stop();
}

void take_default_signals()
{
    for (int sig : {SIGINT, SIGTERM}) {
        struct sigaction old {};
        if (sigaction(sig, nullptr, &old) < 0 || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
            continue; // the driver's own disposition stays
        struct sigaction sa {};
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; // no SA_RESTART: a callback blocked in read(2) (console-read) returns EINTR
        sigaction(sig, &sa, nullptr);
    }
}

fusd::Loop &loop()
{
    if (!g_loop) {
        g_loop = std::make_unique<fusd::Loop>(false);
        g_signal_loop.store(g_loop.get());
        take_default_signals();
    }
    return *g_loop;
}

// The core's Device, or null once the core has removed it on its own.
fusd::Device *live_device(const CDevice &dev)
{
    if (dev.alive.expired() || !g_loop)
        return nullptr;
    for (fusd::Device *d : g_loop->devices())
        if (d == dev.device)
            return d;
    return nullptr;
}

// The core's File while it is open, else null.
std::shared_ptr<fusd::File> open_file(CFile &cfile)
{
    std::lock_guard lock(cfile.mutex);
    auto file = cfile.file.lock();
    return file && !file->released() ? file : nullptr;
}

// The driver is ending: every device goes with the loop, and callers still waiting get EPIPE,
// as from a FUSD daemon that died.
void shut_down()
{
    std::lock_guard lock(g_mutex);
    g_signal_loop.store(nullptr);
    for (auto &[fd, dev] : g_devices)
        dev->fd.reset();
    g_devices.clear();
    g_loop.reset();
}

// A SIGINT or SIGTERM taken by on_stop_signal ends the driver here, outside any callback.
void end_on_signal()
{
    int sig = g_signal.exchange(0);
    if (!sig)
        return;
    shut_down();
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

int fail(int err)
{
    errno = err;
    return -1;
}

// The exception being handled, as errno and a message: none may leave an extern "C" function.
int fail_current(const char *function)
{
    try {
        throw;
    } catch (const fusd::Error &e) {
        std::fprintf(stderr, "%s: %s\n", function, e.what());
        return fail(e.code().value());
    } catch (const std::bad_alloc &) {
        return fail(ENOMEM);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s: %s\n", function, e.what());
        return fail(EIO);
    } catch (...) {
        return fail(EIO);
    }
}

// The call's flags and caller. FUSD gave the caller's real ids (current_uid()); the filesystem
// ids only stand in when the caller was gone before its call was read (real ids unknown).
void set_caller(fusd_file_info &info, const fusd::Request &req)
{
    const fusd::Caller &who = req.caller();
    info.flags = req.flags();
    info.pid = who.pid;
    info.uid = who.real_uid != uid_t(-1) ? who.real_uid : who.uid;
    info.gid = who.real_gid != gid_t(-1) ? who.real_gid : who.gid;
}

fusd_call *new_call(const std::shared_ptr<CDevice> &dev, int type, fusd::Request req, std::shared_ptr<CFile> cfile)
{
    auto *call = new fusd_call;
    call->type = type;
    call->dev = dev;
    call->cfile = std::move(cfile);
    call->info.fd = dev->fd.get();
    call->info.device_info = dev->device_info;
    call->info.fusd_msg = call;
    {
        std::lock_guard lock(call->cfile->mutex);
        call->info.private_data = call->cfile->private_data;
        call->offset = call->cfile->position;
    }
    if (req) {
        set_caller(call->info, req);
        call->request_id = req.id();
        call->req = std::move(req);
        std::lock_guard lock(call->cfile->mutex);
        call->cfile->pending[call->request_id] = call;
    }
    return call;
}

void keep_private_data(fusd_call *call)
{
    std::lock_guard lock(call->cfile->mutex);
    call->cfile->private_data = call->info.private_data;
}

void forget(fusd_call *call)
{
    if (call->request_id) {
        std::lock_guard lock(call->cfile->mutex);
        call->cfile->pending.erase(call->request_id);
    }
    delete call; // an unanswered Request answers EIO as it goes
}

void issue_poll_diff(const std::shared_ptr<CDevice> &dev, const std::shared_ptr<CFile> &cfile, unsigned cached);

// poll_diff runs from the loop's posted work: on its thread, never inside another callback.
void post_poll_diff(const std::shared_ptr<CDevice> &dev, const std::shared_ptr<CFile> &cfile, unsigned cached)
{
    if (dev->fops.poll_diff && g_loop)
        g_loop->post([dev, cfile, cached] { issue_poll_diff(dev, cfile, cached); });
}

// After a read, write or ioctl, a driver whose last poll_diff answer changed nothing is asked again.
void maybe_repoll(const std::shared_ptr<CDevice> &dev, const std::shared_ptr<CFile> &cfile)
{
    bool idle;
    {
        std::lock_guard lock(cfile->mutex);
        idle = cfile->poll_idle;
    }
    if (!idle)
        return;
    if (auto file = open_file(*cfile))
        post_poll_diff(dev, cfile, to_state(file->readiness()));
}

// Sends a call's answer (under call->mutex, once).
void answer(fusd_call *call, ssize_t retval)
{
    keep_private_data(call);
    const auto &dev = call->dev;
    const auto &cfile = call->cfile;
    bool io = call->type == FUSD_READ || call->type == FUSD_WRITE || call->type == FUSD_IOCTL;
    if (call->type == FUSD_CLOSE) {
        std::lock_guard lock(cfile->mutex);
        cfile->file.reset();
    }
    if (call->type == FUSD_POLL_DIFF) {
        if (retval >= 0) {
            unsigned state = unsigned(retval);
            if (auto file = open_file(*cfile))
                file->notify(to_events(state));
            if (state != call->cached_state) {
                post_poll_diff(dev, cfile, state);
            } else {
                std::lock_guard lock(cfile->mutex);
                cfile->poll_idle = true;
            }
        }
    } else if (!call->req) {
        // nothing to send: an unblock call, or answered already
    } else if (retval < 0) {
        call->req.reply_error(retval < -4095 ? EIO : int(-retval));
    } else {
        switch (call->type) {
        case FUSD_OPEN:
            call->req.reply_ok();
            post_poll_diff(dev, cfile, 0);
            break;
        case FUSD_CLOSE:
            call->req.reply_ok();
            break;
        case FUSD_READ: {
            size_t n = std::min<size_t>(size_t(retval), call->buffer.size());
            call->req.reply_data(std::span<const std::byte>(reinterpret_cast<const std::byte *>(call->buffer.data()), n));
            std::lock_guard lock(cfile->mutex);
            cfile->position = call->offset; // the driver advances *offset itself, as in FUSD
            break;
        }
        case FUSD_WRITE: {
            call->req.reply_written(std::min<size_t>(size_t(retval), call->length));
            std::lock_guard lock(cfile->mutex);
            cfile->position = call->offset;
            break;
        }
        case FUSD_IOCTL: {
            std::span<const std::byte> out;
            if (call->ioctl_dir & _IOC_READ)
                out = {reinterpret_cast<const std::byte *>(call->buffer.data()),
                       std::min(call->buffer.size(), call->req.size())};
            call->req.reply_ioctl(int(retval), out);
            break;
        }
        }
    }
    if (io)
        maybe_repoll(dev, cfile);
}

// Runs a C callback's result: answer now, or keep the call for a later fusd_return(). A call the
// callback already ended itself is freed here, now that nothing of the callback uses it.
void finish(fusd_call *call, ssize_t r)
{
    {
        std::lock_guard lock(call->mutex);
        call->in_callback = false;
        if (!call->ended) {
            if (r == -FUSD_NOREPLY) {
                keep_private_data(call);
                return;
            }
            try {
                answer(call, r);
            } catch (const std::exception &e) {
                std::fprintf(stderr, "fusd: answering a call: %s\n", e.what());
            }
            call->ended = true;
        }
    }
    forget(call);
}

void issue_poll_diff(const std::shared_ptr<CDevice> &dev, const std::shared_ptr<CFile> &cfile, unsigned cached)
{
    if (!dev->fops.poll_diff || !open_file(*cfile))
        return;
    {
        std::lock_guard lock(cfile->mutex);
        cfile->poll_idle = false;
    }
    fusd_call *call = new_call(dev, FUSD_POLL_DIFF, fusd::Request(), cfile);
    call->cached_state = cached;
    finish(call, dev->fops.poll_diff(&call->info, cached));
}

std::shared_ptr<CFile> cfile_of(fusd::Request &req)
{
    return std::static_pointer_cast<CFile>(req.file().state());
}

fusd::Callbacks callbacks_for(const std::shared_ptr<CDevice> &dev)
{
    fusd::Callbacks cb;
    cb.open = [dev](fusd::Request req) {
        auto cfile = std::make_shared<CFile>();
        cfile->file = req.file().keep();
        req.file().state() = cfile;
        if (dev->fops.poll_diff)
            req.file().notify(0); // poll_diff drivers start from "nothing ready", as in FUSD
        fusd_call *call = new_call(dev, FUSD_OPEN, std::move(req), cfile);
        finish(call, dev->fops.open ? dev->fops.open(&call->info) : 0);
    };
    cb.release = [dev](fusd::Request req) {
        auto cfile = cfile_of(req);
        fusd_call *call = new_call(dev, FUSD_CLOSE, std::move(req), cfile);
        finish(call, dev->fops.close ? dev->fops.close(&call->info) : 0);
    };
    cb.read = [dev](fusd::Request req) {
        if (!dev->fops.read)
            return req.reply_error(EINVAL);
        auto cfile = cfile_of(req);
        fusd_call *call = new_call(dev, FUSD_READ, std::move(req), cfile);
        call->length = call->req.size();
        call->buffer.resize(call->length);
        finish(call, dev->fops.read(&call->info, call->buffer.data(), call->length, &call->offset));
    };
    cb.write = [dev](fusd::Request req) {
        if (!dev->fops.write)
            return req.reply_error(EINVAL);
        auto cfile = cfile_of(req);
        fusd_call *call = new_call(dev, FUSD_WRITE, std::move(req), cfile);
        call->length = call->req.data().size();
        call->write_data = reinterpret_cast<const char *>(call->req.data().data());
        finish(call, dev->fops.write(&call->info, call->write_data, call->length, &call->offset));
    };
    cb.ioctl = [dev](fusd::Request req) {
        if (!dev->fops.ioctl)
            return req.reply_error(ENOTTY);
        auto cfile = cfile_of(req);
        fusd_call *call = new_call(dev, FUSD_IOCTL, std::move(req), cfile);
        call->ioctl_request = int(call->req.ioctl_command());
        call->ioctl_arg = call->req.ioctl_argument();
        // A legacy number (TCGETS, I2C_FUNCS...) carries no size: the table of <linux/fusd_ioctl.h>
        // gives it, so the driver gets a buffer, as for an _IOR/_IOW/_IOWR number.
        const fusd::IoctlShape shape = fusd::ioctl_shape(call->req.ioctl_command());
        call->ioctl_dir = shape.dir;
        void *data;
        if (shape.dir == _IOC_NONE) {
            data = reinterpret_cast<void *>(call->ioctl_arg);
        } else {
            call->buffer.assign(shape.size, 0);
            auto in = call->req.data();
            if (!in.empty()) // _IOR: nothing comes in
                std::memcpy(call->buffer.data(), in.data(), std::min(in.size(), call->buffer.size()));
            data = call->buffer.data();
        }
        finish(call, dev->fops.ioctl(&call->info, call->ioctl_request, data));
    };
    // The later forks' mmap member: the driver names the device's memory (its base and size),
    // and the caller maps [offset, offset + length) of it. Answered as the callback returns (the
    // forks had no NOREPLY for mmap); the memory must be shared, as reply_map_memory() says, and
    // only the kernel backend carries mmap (CUSE and FUSE answer the caller ENODEV themselves).
    cb.mmap = [dev](fusd::Request req) {
        if (!dev->fops.mmap)
            return req.reply_error(ENODEV);
        if (req.map_offset() > std::uint64_t(INT_MAX))
            return req.reply_error(EINVAL);
        fusd_call *call = new_call(dev, FUSD_MMAP, fusd::Request(), cfile_of(req));
        set_caller(call->info, req);
        void *addr = nullptr;
        size_t length = 0;
        int r = dev->fops.mmap(&call->info, int(req.map_offset()), req.size(), req.map_prot(), req.map_flags(), &addr,
                               &length);
        keep_private_data(call);
        forget(call);
        if (r < 0)
            return req.reply_error(r == -FUSD_NOREPLY ? EIO : -r);
        req.reply_map_memory(addr, length);
    };
    // As in FUSD, unblock gets a call of its own (type FUSD_UNBLOCK, the file's private_data and
    // the interrupted caller's pid, uid, gid and flags); its return value ends only that call. The
    // interrupted call stays the driver's to fusd_return() or fusd_destroy(); its answer is dropped.
    cb.interrupt = [dev](fusd::File &file, std::uint64_t id) {
        if (!dev->fops.unblock)
            return;
        auto cfile = std::static_pointer_cast<CFile>(file.state());
        if (!cfile)
            return;
        fusd_file_info caller{};
        {
            std::lock_guard lock(cfile->mutex);
            auto it = cfile->pending.find(id);
            if (it == cfile->pending.end())
                return;
            caller = it->second->info;
        }
        fusd_call *call = new_call(dev, FUSD_UNBLOCK, fusd::Request(), cfile);
        call->info.flags = caller.flags;
        call->info.pid = caller.pid;
        call->info.uid = caller.uid;
        call->info.gid = caller.gid;
        finish(call, dev->fops.unblock(&call->info));
    };
    return cb;
}

// Both forms of fusd_register(); clazz and devname may be null (none).
int register_device(const char *name, const char *clazz, const char *devname, mode_t mode, void *device_info,
                    fusd_file_operations *fops)
{
    if (!name || !fops)
        return fail(EINVAL);
    try {
        std::lock_guard lock(g_mutex);
        auto dev = std::make_shared<CDevice>();
        dev->device_info = device_info;
        dev->fops = *fops;
        fusd::DeviceOptions opts;
        opts.name = name;
        opts.mode = mode & 07777;
        opts.classic_class = clazz ? clazz : "";
        opts.classic_devname = devname ? devname : "";
        dev->fd.reset(dup(loop().fd())); // a distinct number per device, readable when the loop has work
        if (!dev->fd)
            return fail(errno);
        dev->device = &loop().add(opts, callbacks_for(dev));
        auto alive = std::make_shared<char>(0);
        dev->device->state() = alive;
        dev->alive = alive;
        g_devices[dev->fd.get()] = dev;
        return dev->fd.get();
    } catch (...) { // dev, and the dup with it, goes here
        return fail_current("fusd_register");
    }
}

} // namespace

extern "C" {

int fusd_register4(const char *name, mode_t mode, void *device_info, struct fusd_file_operations *fops)
{
    return register_device(name, nullptr, nullptr, mode, device_info, fops);
}

// clazz and devname: labels (DeviceOptions::classic_class, classic_devname), see libfusd(3).
int fusd_register6(const char *name, const char *clazz, const char *devname, mode_t mode, void *device_info,
                   struct fusd_file_operations *fops)
{
    return register_device(name, clazz, devname, mode, device_info, fops);
}

int fusd_unregister(int fd)
{
    try {
        std::lock_guard lock(g_mutex);
        auto it = g_devices.find(fd);
        if (it == g_devices.end())
            return fail(EBADF);
        if (fusd::Device *d = live_device(*it->second)) // else the core removed it already
            loop().remove(*d);
        it->second->fd.reset(); // now: calls still out may keep the CDevice
        g_devices.erase(it);
        return 0;
    } catch (...) {
        return fail_current("fusd_unregister");
    }
}

int fusd_return(struct fusd_file_info *info, ssize_t retval)
{
    if (!info || !info->fusd_msg)
        return fail(EINVAL);
    fusd_call *call = info->fusd_msg;
    bool free_now;
    {
        std::lock_guard lock(call->mutex);
        if (call->ended)
            return fail(EINVAL); // returned twice inside its own callback
        call->ended = true;
        try {
            answer(call, retval);
        } catch (...) {
            fail_current("fusd_return");
        }
        free_now = !call->in_callback; // else finish() frees it when its callback returns
    }
    if (free_now)
        forget(call);
    return 0;
}

void fusd_destroy(struct fusd_file_info *info)
{
    if (!info || !info->fusd_msg)
        return;
    fusd_call *call = info->fusd_msg;
    {
        std::lock_guard lock(call->mutex);
        if (call->ended)
            return;
        call->ended = true;
        if (call->in_callback) {
            call->req = fusd::Request(); // an unanswered Request answers EIO as it goes
            return;
        }
    }
    forget(call);
}

int fusd_dispatch(int fd)
{
    try {
        if (!g_devices.count(fd))
            return fail(EBADF);
        loop().dispatch();
    } catch (...) {
        return fail_current("fusd_dispatch");
    }
    end_on_signal();
    return 0;
}

void fusd_run(void)
{
    if (g_devices.empty()) {
        std::fprintf(stderr, "fusd_run: no device is registered\n");
        std::exit(EXIT_FAILURE);
    }
    int status = 0;
    try {
        loop().run(); // until the last device is gone, or a signal (end_on_signal)
    } catch (...) {
        fail_current("fusd_run");
        status = EXIT_FAILURE;
    }
    end_on_signal();
    try {
        shut_down();
    } catch (...) {
        fail_current("fusd_run");
    }
    std::exit(status);
}

void fusd_fdset_add(fd_set *set, int *max)
{
    for (auto &[fd, dev] : g_devices) {
        FD_SET(fd, set);
        if (max && fd > *max)
            *max = fd;
    }
}

void fusd_dispatch_fdset(fd_set *set)
{
    for (auto &[fd, dev] : g_devices)
        if (FD_ISSET(fd, set)) {
            fusd_dispatch(fd);
            return;
        }
}

int fusd_get_call_type(struct fusd_file_info *f) { return f && f->fusd_msg ? f->fusd_msg->type : -1; }
size_t fusd_get_length(struct fusd_file_info *f) { return f->fusd_msg->length; }
loff_t *fusd_get_offset(struct fusd_file_info *f) { return &f->fusd_msg->offset; }
char *fusd_get_read_buffer(struct fusd_file_info *f) { return f->fusd_msg->buffer.data(); }
const char *fusd_get_write_buffer(struct fusd_file_info *f) { return f->fusd_msg->write_data; }
int fusd_get_ioctl_request(struct fusd_file_info *f) { return f->fusd_msg->ioctl_request; }
unsigned long fusd_get_ioctl_arg(struct fusd_file_info *f) { return f->fusd_msg->ioctl_arg; }
void *fusd_get_ioctl_buffer(struct fusd_file_info *f)
{
    return f->fusd_msg->ioctl_dir == _IOC_NONE ? reinterpret_cast<void *>(f->fusd_msg->ioctl_arg)
                                               : f->fusd_msg->buffer.data();
}
unsigned int fusd_get_poll_diff_cached_state(struct fusd_file_info *f) { return f->fusd_msg->cached_state; }

char *fusd_unparse_flags(int flags)
{
    thread_local char ring[8][4];
    thread_local unsigned next;
    char *s = ring[next++ % 8];
    s[0] = flags & FUSD_NOTIFY_INPUT ? 'R' : '-';
    s[1] = flags & FUSD_NOTIFY_OUTPUT ? 'W' : '-';
    s[2] = flags & FUSD_NOTIFY_EXCEPT ? 'E' : '-';
    s[3] = '\0';
    return s;
}

} // extern "C"
