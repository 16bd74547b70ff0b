// SPDX-License-Identifier: MIT
//
// The classic FUSD C API (fusd.h) over the C++ core. Each call that reaches a C callback gets its
// own fusd_file_info inside a CCall, which owns the fusd::Request until fusd_return() answers it.
// A CFile (the File's state) keeps private_data and the file position between calls.
#include "fusd.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <unistd.h>
#include <vector>

#include <linux/ioctl.h>

#include "fd.hpp"
#include "fusd/fusd.hpp"

namespace {

struct CDevice {
    fusd::Fd fd;                 // a dup of the loop's fd: the device's number in the C API
    fusd::Device *device = nullptr;
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
    loff_t offset = 0;
    int ioctl_request = 0;
    unsigned long ioctl_arg = 0;
    unsigned cached_state = 0;
    std::uint64_t request_id = 0;
};

namespace {

struct CFile {
    std::mutex mutex;
    void *private_data = nullptr;
    loff_t position = 0;
    fusd::File *file = nullptr;  // null once released
    std::map<std::uint64_t, fusd_call *> pending;
    bool poll_idle = false;      // the driver answered poll_diff with an unchanged state
};

std::mutex g_mutex;
std::unique_ptr<fusd::Loop> g_loop;
std::map<int, std::shared_ptr<CDevice>> g_devices;

unsigned to_events(unsigned state)
{
    return (state & FUSD_NOTIFY_INPUT ? POLLIN : 0u) | (state & FUSD_NOTIFY_OUTPUT ? POLLOUT : 0u) |
           (state & FUSD_NOTIFY_EXCEPT ? POLLERR : 0u);
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
        call->info.flags = req.flags();
        call->info.pid = req.caller().pid;
        call->info.uid = req.caller().uid;
        call->info.gid = req.caller().gid;
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
    delete call;
}

void issue_poll_diff(const std::shared_ptr<CDevice> &dev, const std::shared_ptr<CFile> &cfile, unsigned cached)
{
    if (!dev->fops.poll_diff)
        return;
    {
        std::lock_guard lock(cfile->mutex);
        if (!cfile->file)
            return;
        cfile->poll_idle = false;
    }
    fusd_call *call = new_call(dev, FUSD_POLL_DIFF, fusd::Request(), cfile);
    call->cached_state = cached;
    int r = dev->fops.poll_diff(&call->info, cached);
    if (r != -FUSD_NOREPLY)
        fusd_return(&call->info, r);
}

// Runs a C callback's result: answer now, or keep the call for a later fusd_return().
void finish(fusd_call *call, ssize_t r)
{
    keep_private_data(call);
    if (r != -FUSD_NOREPLY)
        fusd_return(&call->info, r);
}

void maybe_repoll(const std::shared_ptr<CDevice> &dev, const std::shared_ptr<CFile> &cfile)
{
    bool idle;
    fusd::File *file;
    {
        std::lock_guard lock(cfile->mutex);
        idle = cfile->poll_idle;
        file = cfile->file;
    }
    if (idle && file) {
        unsigned cached = (file->readiness() & POLLIN ? FUSD_NOTIFY_INPUT : 0u) |
                          (file->readiness() & POLLOUT ? FUSD_NOTIFY_OUTPUT : 0u) |
                          (file->readiness() & POLLERR ? FUSD_NOTIFY_EXCEPT : 0u);
        issue_poll_diff(dev, cfile, cached);
    }
}

fusd::Callbacks callbacks_for(const std::shared_ptr<CDevice> &dev)
{
    fusd::Callbacks cb;
    cb.open = [dev](fusd::Request req) {
        auto cfile = std::make_shared<CFile>();
        cfile->file = &req.file();
        req.file().state() = cfile;
        if (dev->fops.poll_diff)
            req.file().notify(0); // poll_diff drivers start from "nothing ready", as in FUSD
        fusd_call *call = new_call(dev, FUSD_OPEN, std::move(req), cfile);
        finish(call, dev->fops.open ? dev->fops.open(&call->info) : 0);
    };
    cb.release = [dev](fusd::Request req) {
        auto cfile = std::static_pointer_cast<CFile>(req.file().state());
        fusd_call *call = new_call(dev, FUSD_CLOSE, std::move(req), cfile);
        finish(call, dev->fops.close ? dev->fops.close(&call->info) : 0);
    };
    cb.read = [dev](fusd::Request req) {
        auto cfile = std::static_pointer_cast<CFile>(req.file().state());
        if (!dev->fops.read)
            return req.reply_error(EINVAL);
        fusd_call *call = new_call(dev, FUSD_READ, std::move(req), cfile);
        call->length = call->req.size();
        call->buffer.resize(call->length);
        finish(call, dev->fops.read(&call->info, call->buffer.data(), call->length, &call->offset));
    };
    cb.write = [dev](fusd::Request req) {
        auto cfile = std::static_pointer_cast<CFile>(req.file().state());
        if (!dev->fops.write)
            return req.reply_error(EINVAL);
        fusd_call *call = new_call(dev, FUSD_WRITE, std::move(req), cfile);
        call->length = call->req.data().size();
        call->write_data = reinterpret_cast<const char *>(call->req.data().data());
        finish(call, dev->fops.write(&call->info, call->write_data, call->length, &call->offset));
    };
    cb.ioctl = [dev](fusd::Request req) {
        auto cfile = std::static_pointer_cast<CFile>(req.file().state());
        if (!dev->fops.ioctl)
            return req.reply_error(ENOTTY);
        fusd_call *call = new_call(dev, FUSD_IOCTL, std::move(req), cfile);
        call->ioctl_request = int(call->req.ioctl_command());
        call->ioctl_arg = call->req.ioctl_argument();
        void *data;
        if (_IOC_DIR(call->ioctl_request) == _IOC_NONE) {
            data = reinterpret_cast<void *>(call->ioctl_arg);
        } else {
            call->buffer.assign(_IOC_SIZE(call->ioctl_request), 0);
            auto in = call->req.data();
            if (!in.empty()) // _IOR: nothing comes in
                std::memcpy(call->buffer.data(), in.data(), std::min(in.size(), call->buffer.size()));
            data = call->buffer.data();
        }
        finish(call, dev->fops.ioctl(&call->info, call->ioctl_request, data));
    };
    cb.interrupt = [dev](fusd::File &file, std::uint64_t id) {
        auto cfile = std::static_pointer_cast<CFile>(file.state());
        fusd_call *call = nullptr;
        {
            std::lock_guard lock(cfile->mutex);
            auto it = cfile->pending.find(id);
            if (it != cfile->pending.end())
                call = it->second;
        }
        if (call && dev->fops.unblock) {
            int r = dev->fops.unblock(&call->info);
            if (r != -FUSD_NOREPLY && r != 0)
                fusd_return(&call->info, r); // the caller already has EINTR: this only frees the call
        }
    };
    return cb;
}

fusd::Loop &loop()
{
    if (!g_loop)
        g_loop = std::make_unique<fusd::Loop>();
    return *g_loop;
}

int fail(int err)
{
    errno = err;
    return -1;
}

} // namespace

extern "C" {

int fusd_register4(const char *name, mode_t mode, void *device_info, struct fusd_file_operations *fops)
{
    if (!name || !fops)
        return fail(EINVAL);
    std::lock_guard lock(g_mutex);
    auto dev = std::make_shared<CDevice>();
    dev->device_info = device_info;
    dev->fops = *fops;
    try {
        fusd::DeviceOptions opts;
        opts.name = name;
        opts.mode = mode & 07777;
        dev->fd.reset(dup(loop().fd())); // a distinct number per device, readable when the loop has work
        if (!dev->fd)
            return fail(errno);
        dev->device = &loop().add(opts, callbacks_for(dev));
    } catch (const fusd::Error &e) { // dev, and the dup with it, goes here
        std::fprintf(stderr, "fusd_register: %s\n", e.what());
        return fail(e.code().value());
    }
    g_devices[dev->fd.get()] = dev;
    return dev->fd.get();
}

int fusd_register6(const char *name, const char *clazz, const char *devname, mode_t mode, void *device_info,
                   struct fusd_file_operations *fops)
{
    (void)clazz;
    (void)devname;
    return fusd_register4(name, mode, device_info, fops);
}

int fusd_unregister(int fd)
{
    std::lock_guard lock(g_mutex);
    auto it = g_devices.find(fd);
    if (it == g_devices.end())
        return fail(EBADF);
    loop().remove(*it->second->device);
    it->second->fd.reset(); // now: calls still out may keep the CDevice
    g_devices.erase(it);
    return 0;
}

int fusd_return(struct fusd_file_info *info, ssize_t retval)
{
    if (!info || !info->fusd_msg)
        return fail(EINVAL);
    fusd_call *call = info->fusd_msg;
    keep_private_data(call);
    auto dev = call->dev;
    auto cfile = call->cfile;
    bool io = call->type == FUSD_READ || call->type == FUSD_WRITE || call->type == FUSD_IOCTL;
    try {
        if (call->type == FUSD_POLL_DIFF) {
            if (retval >= 0) {
                unsigned state = unsigned(retval);
                fusd::File *file;
                {
                    std::lock_guard lock(cfile->mutex);
                    file = cfile->file;
                }
                if (file)
                    file->notify(to_events(state));
                if (state != call->cached_state)
                    dev->device->loop().post([dev, cfile, state] { issue_poll_diff(dev, cfile, state); });
                else {
                    std::lock_guard lock(cfile->mutex);
                    cfile->poll_idle = true;
                }
            }
        } else if (!call->req) {
            // already answered (e.g. the caller was interrupted): nothing to send
        } else if (retval < 0) {
            call->req.reply_error(retval < -4095 ? EIO : int(-retval));
        } else {
            switch (call->type) {
            case FUSD_OPEN:
                call->req.reply_ok();
                if (dev->fops.poll_diff)
                    dev->device->loop().post([dev, cfile] { issue_poll_diff(dev, cfile, 0); });
                break;
            case FUSD_CLOSE: {
                call->req.reply_ok();
                std::lock_guard lock(cfile->mutex);
                cfile->file = nullptr;
                break;
            }
            case FUSD_READ: {
                size_t n = std::min<size_t>(size_t(retval), call->buffer.size());
                call->req.reply_data(std::span<const std::byte>(reinterpret_cast<const std::byte *>(call->buffer.data()), n));
                std::lock_guard lock(cfile->mutex);
                cfile->position = call->offset + loff_t(n);
                break;
            }
            case FUSD_WRITE: {
                size_t n = std::min<size_t>(size_t(retval), call->length);
                call->req.reply_written(n);
                std::lock_guard lock(cfile->mutex);
                cfile->position = call->offset + loff_t(n);
                break;
            }
            case FUSD_IOCTL: {
                std::span<const std::byte> out;
                if (_IOC_DIR(call->ioctl_request) & _IOC_READ)
                    out = {reinterpret_cast<const std::byte *>(call->buffer.data()),
                           std::min(call->buffer.size(), call->req.size())};
                call->req.reply_ioctl(int(retval), out);
                break;
            }
            }
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "fusd_return: %s\n", e.what());
        if (call->req)
            call->req.reply_error(EIO);
    }
    forget(call);
    if (io)
        maybe_repoll(dev, cfile);
    return 0;
}

void fusd_destroy(struct fusd_file_info *info)
{
    if (info && info->fusd_msg)
        forget(info->fusd_msg); // an unanswered Request answers EIO as it goes
}

int fusd_dispatch(int fd)
{
    if (!g_devices.count(fd))
        return fail(EBADF);
    try {
        loop().dispatch();
    } catch (const fusd::Error &e) {
        return fail(e.code().value());
    }
    return 0;
}

void fusd_run(void)
{
    loop().run();
    {
        std::lock_guard lock(g_mutex);
        for (auto &[fd, dev] : g_devices)
            dev->fd.reset();
        g_devices.clear();
    }
    g_loop.reset();
    std::exit(0);
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
            loop().dispatch();
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
    return _IOC_DIR(f->fusd_msg->ioctl_request) == _IOC_NONE ? reinterpret_cast<void *>(f->fusd_msg->ioctl_arg)
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
