// SPDX-License-Identifier: MIT
//
// fusdctl run: the private /dev. The host's entries are bind mounts of the host's own nodes
// (a device node made in a user namespace's tmpfs would not open: such a mount is nodev), taken
// through a descriptor of the host's /dev opened before the tmpfs hides it.
#include "run/private_dev.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.hpp"
#include "fd.hpp"

namespace fusdctl::run {

namespace {

[[noreturn]] void fail(const std::string &what) {
    throw std::runtime_error(fmt::format("run: {}: {}", what, std::strerror(errno)));
}

// Binds the host's /dev/NAME (seen through host_dev) over a placeholder of the same kind.
void bind_from_host(int host_dev, const std::string &name) {
    struct stat st{};
    if (::fstatat(host_dev, name.c_str(), &st, 0) != 0)
        return; // the host has none: neither has the run
    std::string target = "/dev/" + name;
    if (S_ISDIR(st.st_mode)) {
        if (::mkdir(target.c_str(), 0755) != 0)
            fail("mkdir " + target);
    } else {
        fusd::Fd placeholder{::open(target.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600)};
        if (!placeholder)
            fail("create " + target);
    }
    std::string source = fmt::format("/proc/self/fd/{}/{}", host_dev, name);
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
        fail("bind the host's " + target);
}

} // namespace

void make_private_dev() {
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        fail("make the mounts private");
    fusd::Fd host_dev{::open("/dev", O_PATH | O_DIRECTORY | O_CLOEXEC)};
    if (!host_dev)
        fail("open /dev");
    if (::mount("fusd-run", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m") != 0)
        fail("mount a tmpfs over /dev");
    for (const char *name : {"null", "zero", "full", "random", "urandom", "tty", "fuse", "shm"})
        bind_from_host(host_dev.get(), name);
    // A devpts of our own: the host's /dev/ptmx opens the devpts found beside it, and the host's
    // pts/ptmx is usually mode 000. PROGRAM's own terminal stays open, though not listed here.
    if (::mkdir("/dev/pts", 0755) != 0)
        fail("mkdir /dev/pts");
    if (::mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") != 0)
        fail("mount a devpts on /dev/pts");
    const std::pair<const char *, const char *> links[] = {{"ptmx", "pts/ptmx"},
        {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
        {"stderr", "/proc/self/fd/2"}};
    for (auto [name, target] : links)
        if (::symlink(target, (std::string("/dev/") + name).c_str()) != 0)
            fail(std::string("symlink /dev/") + name);
    if (::mkdir(kRuntimeDir, 0700) != 0)
        fail(std::string("mkdir ") + kRuntimeDir);
    // A /proc of our own pid namespace, so that the pids in it (and in the calls the devices
    // see) are the run's. A container may forbid it (a masked /proc): the host's then stays.
    (void)::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
}

bool is_mount_point(const std::string &path) {
    // /proc/self/mountinfo escapes space, tab, newline and backslash as octal.
    std::string escaped;
    for (char c : path) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\\')
            escaped += fmt::format("\\{:03o}", static_cast<unsigned char>(c));
        else
            escaped += c;
    }
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // id parent major:minor root mount_point ...
        std::size_t pos = 0;
        for (int field = 0; field < 4 && pos != std::string::npos; ++field)
            pos = line.find(' ', pos + 1);
        if (pos == std::string::npos)
            continue;
        std::size_t end = line.find(' ', pos + 1);
        if (line.compare(pos + 1, end - pos - 1, escaped) == 0)
            return true;
    }
    return false;
}

} // namespace fusdctl::run
