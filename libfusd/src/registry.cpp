// SPDX-License-Identifier: MIT
#include "registry.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include "core.hpp"
#include "fd.hpp"
#include "fusd/admin.hpp"

namespace fusd {

std::string admin::runtime_dir()
{
    const char *env = std::getenv("FUSD_RUNTIME_DIR");
    return env && *env ? env : "/run/fusd";
}

namespace detail::registry {

std::string dir() { return admin::runtime_dir(); }
std::string devices_dir() { return dir() + "/devices"; }
std::string sockets_dir() { return dir() + "/ctl"; }
static std::string scratch_root() { return dir() + "/scratch"; }

std::string file_name_of(const std::string &path)
{
    // "/dev/clock" -> "dev:clock", "/dev/input/event7" -> "dev:input:event7": a '/' becomes ':'.
    // A name may hold ':' and '%' itself, so those are escaped ("%3a", "%25"): no two paths
    // share a file.
    std::string name;
    for (char c : std::string_view(path).substr(path.starts_with('/') ? 1 : 0)) {
        if (c == '/')
            name += ':';
        else if (c == ':')
            name += "%3a";
        else if (c == '%')
            name += "%25";
        else
            name += c;
    }
    return name;
}

std::string entry_file(const std::string &device_path) { return devices_dir() + "/" + file_name_of(device_path) + ".json"; }

std::uint64_t process_start_time(pid_t pid)
{
    // Plain read(2), not a stream: the process may be reaped between open and read, and then the
    // read fails with ESRCH, which libstdc++'s filebuf reports by throwing.
    char path[32];
    std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd)
        return 0;
    char buf[1024]; // 52 numbers and a command name: well under this
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    if (n <= 0)
        return 0;
    std::string stat(buf, std::size_t(n));
    auto close_paren = stat.rfind(')'); // the command name may hold spaces and parentheses
    if (close_paren == std::string::npos || stat.size() < close_paren + 3)
        return 0;
    if (stat[close_paren + 2] == 'Z')
        return 0; // a zombie serves nothing: dead, even before its parent reaps it
    std::istringstream rest(stat.substr(close_paren + 2));
    std::string field;
    // fields after the name start at #3 (state); start time is #22
    for (int i = 3; i <= 22 && rest >> field; ++i)
        if (i == 22)
            return std::strtoull(field.c_str(), nullptr, 10);
    return 0;
}

bool process_alive(pid_t pid, std::uint64_t start_time)
{
    if (pid <= 0)
        return false;
    std::uint64_t now = process_start_time(pid);
    return now != 0 && now == start_time;
}

bool entry_alive(const nlohmann::json &entry)
{
    return process_alive(entry.value("pid", 0), entry.value("start_time", std::uint64_t(0)));
}

static void make_dir(const std::string &path, mode_t mode)
{
    if (mkdir(path.c_str(), mode) < 0 && errno != EEXIST)
        throw Error(errno, "cannot create " + path + ": " + std::strerror(errno));
}

void write_entry(const nlohmann::json &entry)
{
    make_dir(dir(), 0755);
    make_dir(devices_dir(), 0755);
    std::string file = entry_file(entry.at("device").get<std::string>());
    std::string tmp = file + ".tmp." + std::to_string(getpid());
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << entry.dump() << '\n';
        if (!out)
            throw Error(EIO, "cannot write " + tmp);
    }
    if (rename(tmp.c_str(), file.c_str()) < 0) {
        int err = errno;
        unlink(tmp.c_str());
        throw Error(err, "cannot write " + file + ": " + std::strerror(err));
    }
}

void remove_entry(const std::string &device_path, pid_t pid)
{
    std::string file = entry_file(device_path);
    if (pid) {
        auto entry = find_entry(device_path);
        if (!entry || entry->value("pid", 0) != pid)
            return; // somebody else's now
    }
    unlink(file.c_str());
}

void remove_dead_entry(const nlohmann::json &entry)
{
    remove_entry(entry.value("device", std::string()), entry.value("pid", 0));
    std::string socket = entry.value("socket", std::string());
    if (socket.rfind(sockets_dir() + "/", 0) != 0)
        return; // not in our directory: never ours to remove
    for (const auto &other : read_entries())
        if (other.value("socket", std::string()) == socket && entry_alive(other))
            return;
    unlink(socket.c_str());
}

static std::optional<nlohmann::json> read_entry_file(const std::string &file)
{
    std::ifstream in(file);
    if (!in)
        return std::nullopt;
    auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("device") || !j["device"].is_string())
        return std::nullopt;
    return j;
}

std::vector<nlohmann::json> read_entries()
{
    std::vector<nlohmann::json> out;
    DIR *d = opendir(devices_dir().c_str());
    if (!d)
        return out;
    while (dirent *e = readdir(d)) {
        std::string name = e->d_name;
        if (name.size() < 6 || name.substr(name.size() - 5) != ".json")
            continue;
        if (auto j = read_entry_file(devices_dir() + "/" + name))
            out.push_back(std::move(*j));
        else
            unlink((devices_dir() + "/" + name).c_str()); // unreadable: never trusted, never kept
    }
    closedir(d);
    return out;
}

std::optional<nlohmann::json> find_entry(const std::string &device_path)
{
    auto j = read_entry_file(entry_file(device_path));
    if (j && j->value("device", "") != device_path)
        return std::nullopt;
    return j;
}

std::string scratch_dir_of(pid_t pid, std::uint64_t start_time)
{
    return scratch_root() + "/" + std::to_string(pid) + "-" + std::to_string(start_time);
}

void remove_scratch_dir(pid_t pid, std::uint64_t start_time)
{
    if (process_alive(pid, start_time))
        return;
    std::error_code ec; // remove_all never follows a symbolic link: it removes the link
    std::filesystem::remove_all(scratch_dir_of(pid, start_time), ec);
}

void remove_dead_scratch_dirs()
{
    DIR *d = opendir(scratch_root().c_str());
    if (!d)
        return;
    std::vector<std::pair<pid_t, std::uint64_t>> owners;
    while (dirent *e = readdir(d)) {
        // Only names this library makes: digits, '-', digits; anything else is not ours to touch.
        unsigned long long pid = 0, start = 0;
        int used = 0;
        if (std::sscanf(e->d_name, "%llu-%llu%n", &pid, &start, &used) == 2 && e->d_name[used] == '\0' &&
            pid > 0 && pid < (1ull << 31) && e->d_name == scratch_dir_of(pid_t(pid), start).substr(scratch_root().size() + 1))
            owners.emplace_back(pid_t(pid), start);
    }
    closedir(d);
    for (auto [pid, start] : owners)
        remove_scratch_dir(pid, start);
}

} // namespace detail::registry
} // namespace fusd
