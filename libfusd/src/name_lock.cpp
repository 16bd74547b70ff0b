// SPDX-License-Identifier: MIT
// One device name's lock in the runtime directory (see name_lock.hpp).
#include "name_lock.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry.hpp"

namespace fusd::detail {

NameLock::NameLock(const std::string &device_path)
{
    std::string dir = registry::dir() + "/claims";
    mkdir(registry::dir().c_str(), 0755);
    mkdir(dir.c_str(), 0755);
    file_ = dir + "/" + registry::file_name_of(device_path) + ".lock";
    for (;;) {
        Fd fd{::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)};
        if (!fd)
            return; // no runtime directory of ours: nothing to race over
        int rc;
        while ((rc = flock(fd.get(), LOCK_EX)) < 0 && errno == EINTR) {
        }
        if (rc < 0)
            return;
        // The previous holder may have unlinked the file we locked: then it locks nothing.
        struct stat locked{}, now{};
        if (fstat(fd.get(), &locked) == 0 && stat(file_.c_str(), &now) == 0 && locked.st_dev == now.st_dev &&
            locked.st_ino == now.st_ino) {
            fd_ = std::move(fd);
            return;
        }
    }
}

NameLock::~NameLock()
{
    if (fd_)
        unlink(file_.c_str()); // last act under the lock: the next taker sees a new file
}

} // namespace fusd::detail
