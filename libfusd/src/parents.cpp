// SPDX-License-Identifier: MIT
//
// The parent directories of nested device names (/dev/input/event7, /dev/bus/usb/001/002).
//
// make_parents() runs before any backend makes the node: every parent that exists must be a real
// directory on /dev's own filesystem (no symbolic link, no other filesystem mounted below /dev:
// the name must not lead out of /dev), and those missing are made here, on every backend. Why
// here and not by devtmpfs (which makes the parents of the kernel module's and CUSE's nodes when
// they are missing): devtmpfs removes only the directories it made, and only when it removes the
// node itself, so a forced removal (which unlinks the node behind a stopped daemon) would leave
// them behind forever. A directory that devtmpfs finds already there is used as it is.
//
// Each directory made is recorded as fusd's in the runtime directory ($FUSD_RUNTIME_DIR/dirs/,
// one file per directory naming its device and inode), so that whoever removes a node below it
// (the daemon, `fusdctl rm --force`, the stale cleanup after a daemon died) removes it when it is
// empty: remove_made_parents(). A directory that existed before (/dev/input) is never recorded,
// so never removed; one removed and made again by somebody else no longer matches its record.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

#include "core.hpp"
#include "registry.hpp"

namespace fusd::detail {

namespace {

std::string records_dir() { return registry::dir() + "/dirs"; }
std::string record_of(const std::string &dir) { return records_dir() + "/" + registry::file_name_of(dir); }

void record(const std::string &dir, const struct stat &st)
{
    mkdir(registry::dir().c_str(), 0755);
    mkdir(records_dir().c_str(), 0755);
    std::ofstream out(record_of(dir), std::ios::trunc);
    out << st.st_dev << ' ' << st.st_ino << '\n';
    out.close();
    if (!out)
        throw Error(EIO, dir + ": cannot record it as made by fusd in " + records_dir());
}

// The directory recorded at `dir`, if fusd made it: its device and inode.
bool recorded(const std::string &dir, dev_t &device, ino_t &inode)
{
    std::ifstream in(record_of(dir));
    return bool(in >> device >> inode);
}

void remove_dir(const std::string &dir)
{
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT)
        unlink(record_of(dir).c_str());
}

} // namespace

void make_parents(const std::string &path)
{
    struct stat dev_root{};
    if (stat("/dev", &dev_root) != 0)
        throw Error(errno, path + ": cannot stat /dev: " + std::strerror(errno));
    std::vector<std::string> made;
    try {
        for (std::size_t slash = path.find('/', 5); slash != std::string::npos; slash = path.find('/', slash + 1)) {
            std::string dir = path.substr(0, slash);
            struct stat st{};
            if (lstat(dir.c_str(), &st) != 0) {
                if (errno != ENOENT)
                    throw Error(errno, path + ": cannot look at " + dir + ": " + std::strerror(errno));
                if (mkdir(dir.c_str(), 0755) == 0) {
                    made.push_back(dir);
                    chmod(dir.c_str(), 0755); // whatever the umask: every caller may reach the node
                    if (lstat(dir.c_str(), &st) != 0)
                        throw Error(errno, path + ": " + dir + " vanished as it was made");
                    record(dir, st);
                    continue;
                }
                if (errno != EEXIST)
                    throw Error(errno, path + ": cannot create the directory " + dir + ": " + std::strerror(errno));
                if (lstat(dir.c_str(), &st) != 0) // made by somebody else meanwhile
                    throw Error(errno, path + ": cannot look at " + dir + ": " + std::strerror(errno));
            }
            if (S_ISLNK(st.st_mode))
                throw Error(EINVAL, path + ": " + dir + " is a symbolic link; a device name must not lead out of /dev");
            if (!S_ISDIR(st.st_mode))
                throw Error(ENOTDIR, path + ": " + dir + " exists and is not a directory");
            if (st.st_dev != dev_root.st_dev)
                throw Error(EXDEV, path + ": " + dir + " is another filesystem mounted below /dev; not making nodes there");
        }
    } catch (...) {
        for (auto it = made.rbegin(); it != made.rend(); ++it)
            remove_dir(*it);
        throw;
    }
}

void remove_made_parents(const std::string &path)
{
    for (std::size_t slash = path.rfind('/'); slash != std::string::npos && slash > 4; slash = path.rfind('/', slash - 1)) {
        std::string dir = path.substr(0, slash);
        dev_t device = 0;
        ino_t inode = 0;
        if (!recorded(dir, device, inode))
            return; // not fusd's: neither it nor anything above it is ours to remove
        struct stat st{};
        if (lstat(dir.c_str(), &st) != 0) {
            if (errno == ENOENT)
                unlink(record_of(dir).c_str()); // already gone
            continue;
        }
        if (!S_ISDIR(st.st_mode) || st.st_dev != device || st.st_ino != inode) {
            unlink(record_of(dir).c_str()); // removed and made again by somebody else: theirs now
            return;
        }
        if (rmdir(dir.c_str()) != 0)
            return; // not empty: another node still lives below it
        unlink(record_of(dir).c_str());
    }
}

} // namespace fusd::detail
