// SPDX-License-Identifier: MIT
//
// may_mount_fuse(): root, or CAP_SYS_ADMIN where it counts for mount(2).
#include "mount_right.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fd.hpp"

namespace fusd::detail {

namespace {

bool has_cap_sys_admin()
{
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (syscall(SYS_capget, &header, data) != 0)
        return false;
    return (data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN)) != 0;
}

// Capabilities count in our own user namespace only: mount(2) checks them against the user
// namespace that owns the mount namespace, so the two must be the same.
bool own_mount_namespace()
{
    Fd mnt{open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)};
    if (!mnt)
        return false;
    Fd owner{ioctl(mnt.get(), NS_GET_USERNS)};
    struct stat owner_st{}, ours{};
    if (!owner || fstat(owner.get(), &owner_st) != 0 || stat("/proc/self/ns/user", &ours) != 0)
        return false;
    return owner_st.st_ino == ours.st_ino && owner_st.st_dev == ours.st_dev;
}

} // namespace

bool may_mount_fuse()
{
    if (geteuid() == 0)
        return true;
    return has_cap_sys_admin() && own_mount_namespace();
}

} // namespace fusd::detail
