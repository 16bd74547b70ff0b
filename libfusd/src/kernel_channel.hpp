// SPDX-License-Identifier: MIT
//
// KernelChannel: one open /dev/fusd, speaking the protocol of <linux/fusd.h> (kernel/include/uapi).
//
// The channel's life: open() (open /dev/fusd, FUSD_IOC_HELLO: the protocol version), then either
// register_device() (FUSD_IOC_REGISTER: the module makes the node before the call returns) for a
// daemon's device, or force_unregister() (FUSD_IOC_FORCE_UNREGISTER) for fusdctl rm --force, or
// nothing (a probe). unregister() (FUSD_IOC_UNREGISTER) ends a device; the descriptor closes with
// the channel. What travels on a registered channel (requests in, replies and readiness out) is
// written here too, inline, for the request path: read_request(), exchange(), write_message().
// The channel knows messages only as bytes; what they mean is the kernel transport's business.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/fusd.h>

#include "fd.hpp"
#include "fusd/fusd.hpp"

namespace fusd::detail {

class KernelChannel {
public:
    // Bytes of the receive buffer a request needs: its header and the largest payload.
    static constexpr std::size_t kReceiveSize = FUSD_MIN_READ_BUFFER;

    // Opens /dev/fusd and says HELLO. Returns 0, or -errno with `why` saying what went wrong, for a
    // person (ENOENT: the module is not loaded).
    int open(std::string &why);
    // Makes the node /dev/NAME of `path` with options' mode and owner, and the classic labels
    // (classic_class, classic_devname; a module before protocol 1.3 keeps none); then
    // non-blocking. Throws fusd::Error.
    void register_device(const std::string &path, const DeviceOptions &options);
    // Ends the registered device: waiting callers get ENODEV and the node goes now.
    void unregister();
    // Removes the device NAME (of /dev/NAME) by force. Returns 0 or an errno.
    int force_unregister(const std::string &name);

    int fd() const { return fd_.get(); }
    bool is_open() const { return bool(fd_); }
    void close() { fd_.reset(); }
    std::uint64_t dev_id() const { return dev_id_; }
    // FUSD_IOC_EXCHANGE (protocol 1.1): the module has it, and it has not failed.
    bool has_exchange() const { return exchange_; }
    void stop_exchange() { exchange_ = false; }

    // The request path, one system call each: its result, or -1 with errno set.
    ssize_t read_request(std::byte *buf) { return ::read(fd_.get(), buf, kReceiveSize); }
    int exchange(fusd_exchange &ex) { return ::ioctl(fd_.get(), FUSD_IOC_EXCHANGE, &ex); }
    // One message (a reply or a readiness change); retried on EINTR. Returns 0 or an errno.
    int write_message(const void *msg, std::size_t size)
    {
        ssize_t n;
        do
            n = ::write(fd_.get(), msg, size);
        while (n < 0 && errno == EINTR);
        return n < 0 ? errno : 0;
    }

    // The node name the module knows for `path`: "/dev/NAME" -> "NAME".
    static std::string name_of(const std::string &path);

private:
    Fd fd_;
    bool exchange_ = false;     // see has_exchange()
    bool labels_ = false;       // FUSD_IOC_REGISTER_LABELED (protocol 1.3)
    std::uint64_t dev_id_ = 0;  // from REGISTER
};

} // namespace fusd::detail
