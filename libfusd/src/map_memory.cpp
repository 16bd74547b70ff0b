// SPDX-License-Identifier: MIT
//
// Request::reply_map_memory(): an mmap answered with a pointer into the driver's own shared
// memory, as the classic API's mmap member (the later FUSD forks' signature) answers. The module
// maps files, not addresses: the mapping that holds the memory is found in /proc/self/maps, and
// its file (a memfd, a tmpfs file, or the shmem object behind MAP_SHARED | MAP_ANONYMOUS) is
// opened through /proc/self/map_files, which takes CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE.
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <string>
#include <unistd.h>

#include "loop_impl.hpp"
#include "util/fd.hpp"

namespace fusd {

namespace {

// One line of /proc/self/maps.
struct MapsEntry {
    std::uintptr_t start = 0, end = 0;
    std::uint64_t offset = 0;
    std::string perms;
};

bool find_mapping(std::uintptr_t addr, MapsEntry &found)
{
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        MapsEntry e;
        char perms[8] = {};
        if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " %7s %" SCNx64, &e.start, &e.end, perms,
                        &e.offset) != 4)
            continue;
        if (addr >= e.start && addr < e.end) {
            e.perms = perms;
            found = e;
            return true;
        }
    }
    return false;
}

} // namespace

void Request::reply_map_memory(const void *base, std::size_t size)
{
    const detail::RequestHead &s = head();
    if (s.op != Op::mmap)
        throw std::logic_error("fusd::Request::reply_map_memory: not an mmap request");
    char at[32];
    std::snprintf(at, sizeof at, "%p", base);
    const std::string where = device().path() + ": mmap of the driver's memory at " + at + ": ";
    auto refuse = [&](int err, const std::string &why) {
        detail::LoopImpl::log_error(where + why);
        reply_error(err);
    };
    if (s.map_offset > size || s.size > size - s.map_offset)
        return refuse(ENXIO, "the request's range is past the memory's end");
    const std::uintptr_t first = std::uintptr_t(base) + s.map_offset, last = first + s.size - 1;
    MapsEntry m;
    if (!find_mapping(first, m) || last >= m.end)
        return refuse(EFAULT, "not one mapping of this process");
    if (m.perms.size() < 4 || m.perms[3] != 's')
        return refuse(ENODEV, "not a MAP_SHARED mapping (private memory cannot be shared)");
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/map_files/%" PRIxPTR "-%" PRIxPTR, m.start, m.end);
    Fd fd(::open(path, (m.perms[1] == 'w' ? O_RDWR : O_RDONLY) | O_CLOEXEC));
    if (!fd)
        return refuse(errno == EPERM ? EACCES : errno,
                      std::string("opening its file through /proc/self/map_files: ") + std::strerror(errno));
    reply_map(fd.get(), m.offset + (first - m.start));
}

} // namespace fusd
