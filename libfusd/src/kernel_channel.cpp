// SPDX-License-Identifier: MIT
//
// KernelChannel's protocol steps (open and HELLO, REGISTER, UNREGISTER, FORCE_UNREGISTER), and the
// kernel backend's two uses of a channel without a device: probe_kernel() (is the module there,
// may we register?) and force_remove_kernel() (fusdctl rm --force).
#include "kernel_channel.hpp"

#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>

#include "core.hpp"

namespace fusd::detail {

namespace {

constexpr const char *kControl = FUSD_CONTROL_DEVICE;

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

} // namespace

std::string KernelChannel::name_of(const std::string &path)
{
    return path.rfind("/dev/", 0) == 0 ? path.substr(5) : path;
}

int KernelChannel::open(std::string &why)
{
    Fd fd(::open(kControl, O_RDWR | O_CLOEXEC));
    if (!fd) {
        int err = errno;
        why = err == ENOENT ? "no /dev/fusd: the fusd module is not loaded (modprobe fusd, or insmod kernel/fusd.ko)"
                            : std::string("cannot open /dev/fusd: ") + std::strerror(err);
        return -err;
    }
    fusd_hello hello{};
    hello.major = FUSD_VERSION_MAJOR;
    hello.minor = FUSD_VERSION_MINOR;
    if (ioctl(fd.get(), FUSD_IOC_HELLO, &hello) < 0) {
        int err = errno;
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
    exchange_ = hello.minor >= 1; // FUSD_IOC_EXCHANGE came with protocol 1.1
    labels_ = hello.minor >= 3;   // FUSD_IOC_REGISTER_LABELED with 1.3
    fd_ = std::move(fd);
    return 0;
}

void KernelChannel::register_device(const std::string &path, const DeviceOptions &options)
{
    std::string name = name_of(path);
    fusd_register_labeled in{};
    fusd_register &reg = in.reg;
    std::memcpy(reg.name, name.c_str(), name.size() + 1); // the caller checked its length
    reg.mode = options.mode & 0777; // the module takes permission bits only
    reg.uid = *options.owner;
    reg.gid = *options.group;
    if (options.classic_class.size() >= sizeof in.clazz || options.classic_devname.size() >= sizeof in.devname)
        throw Error(ENAMETOOLONG, path + ": a classic label is too long"); // Loop::add checks them first
    const bool labeled = labels_ && !(options.classic_class.empty() && options.classic_devname.empty());
    std::memcpy(in.clazz, options.classic_class.c_str(), options.classic_class.size() + 1);
    std::memcpy(in.devname, options.classic_devname.c_str(), options.classic_devname.size() + 1);
    if (labeled ? ioctl(fd_.get(), FUSD_IOC_REGISTER_LABELED, &in) < 0 : ioctl(fd_.get(), FUSD_IOC_REGISTER, &reg) < 0) {
        int err = errno;
        fd_.reset();
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
    fcntl(fd_.get(), F_SETFL, fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
}

void KernelChannel::unregister()
{
    // Even if a forked child of the daemon still holds the channel open.
    fusd_unregister u{dev_id_};
    ioctl(fd_.get(), FUSD_IOC_UNREGISTER, &u);
}

int KernelChannel::force_unregister(const std::string &name)
{
    fusd_force_unregister fu{};
    if (name.size() >= sizeof fu.name)
        return ENOENT; // no fusd device can have that name
    std::memcpy(fu.name, name.c_str(), name.size() + 1);
    return ioctl(fd_.get(), FUSD_IOC_FORCE_UNREGISTER, &fu) < 0 ? errno : 0;
}

BackendStatus probe_kernel()
{
    // The row (kernel_backend.cpp) states what never changes; this adds what depends on the module.
    BackendStatus s{Backend::kernel, false, "", ""};
    std::string why;
    KernelChannel channel;
    if (channel.open(why) < 0)
        s.reason = why;
    else if (!can_register())
        s.reason = "not permitted: registering a device needs CAP_SYS_ADMIN or CAP_MKNOD (run as root)";
    else
        s.usable = true;
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
    KernelChannel channel;
    if (int r = channel.open(why); r < 0) {
        if (r == -ENOENT)
            return; // no module: no kernel device to remove
        throw Error(-r, path + ": " + why);
    }
    int err = channel.force_unregister(KernelChannel::name_of(path));
    if (err && err != ENOENT)
        throw Error(err, path + ": the fusd module refused the forced removal: " + std::strerror(err) +
                             (err == EPERM ? " (only the uid that registered it, or root)" : ""));
}

} // namespace fusd::detail
