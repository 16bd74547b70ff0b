// SPDX-License-Identifier: MIT
//
// fusd-cleaner PID START_TIME CONTROL_SOCKET: removes what daemon PID published once it dies.
// Started by libfusd with the daemon's control socket (libfusd/src/cleaner.hpp says why); not a
// user command. File descriptor 3 is its end of a socket pair whose other end the daemon holds.
//
// One run: fork (the daemon reaps the first process at once), new session, read fd 3. One byte
// means the daemon cleaned up itself: exit. End of file means it is dying: wait until it is dead,
// then, for each registry entry of that process, remove its node (and FUSE mount) the way its
// backend says, the entry, the control socket, and the process's scratch directory.
#include <cerrno>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "core.hpp"
#include "name_lock.hpp"
#include "registry.hpp"

namespace {

// A hang guard for a process that closed its end but does not finish dying (its exit is
// stuck in the kernel): after this, clean anyway, for entries whose daemon is dead by then.
constexpr int kDyingGuardMs = 60'000;

void clean_after(pid_t pid, std::uint64_t start_time, const std::string &socket)
{
    namespace registry = fusd::detail::registry;
    for (int waited = 0; registry::process_alive(pid, start_time) && waited < kDyingGuardMs; waited += 5)
        usleep(5000);
    auto dead_daemons = [&](const nlohmann::json &entry) {
        return entry.value("pid", 0) == pid && entry.value("start_time", std::uint64_t(0)) == start_time &&
               !registry::entry_alive(entry);
    };
    for (const auto &listed : registry::read_entries()) {
        if (!dead_daemons(listed))
            continue;
        // Under the name's lock, and only if the entry is still the dead daemon's: a daemon
        // restarted at once may have cleaned up and registered the name since (its node is
        // not ours to touch), or waits for us to finish.
        std::string device = listed.value("device", std::string());
        fusd::detail::NameLock lock(device);
        auto entry = registry::find_entry(device);
        if (!entry || !dead_daemons(*entry))
            continue;
        try {
            fusd::detail::clean_stale_node(device, entry->value("backend", std::string()));
        } catch (const std::exception &) {
            // not ours to remove (something else is there now): the entry still goes
        }
        registry::remove_dead_entry(*entry);
    }
    if (!registry::process_alive(pid, start_time) && socket.rfind(registry::sockets_dir() + "/", 0) == 0)
        unlink(socket.c_str()); // the daemon died between its last entry and its socket
    registry::remove_scratch_dir(pid, start_time);
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    pid_t pid = pid_t(std::atol(argv[1]));
    std::uint64_t start_time = std::strtoull(argv[2], nullptr, 10);
    std::string socket = argv[3];
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child > 0)
        return 0;
    setsid();
    if (chdir("/") != 0)
        return 1;
    char byte;
    ssize_t n;
    while ((n = read(3, &byte, 1)) < 0 && errno == EINTR) {
    }
    if (n == 1)
        return 0; // the daemon cleaned up itself
    clean_after(pid, start_time, socket);
    return 0;
}
