// SPDX-License-Identifier: MIT
//
// The runtime registry: one JSON file per live device in $FUSD_RUNTIME_DIR/devices (default
// /run/fusd/devices; named by file_name_of() its path), written by the daemon that serves it,
// read by fusdctl. An entry names the device, its backend, the serving pid and that process's
// start time (so a reused pid is never mistaken for the daemon), its command line and its control
// socket. Entries are hints: liveness is always checked against /proc before one is believed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/types.h>

namespace fusd::detail::registry {

std::string dir();
std::string devices_dir();
std::string sockets_dir();
// A file name for an absolute path, one per path ("/dev/input/event7" -> "dev:input:event7").
std::string file_name_of(const std::string &path);
std::string entry_file(const std::string &device_path);

// Start time of a process in clock ticks since boot (/proc/PID/stat field 22); 0 if gone.
std::uint64_t process_start_time(pid_t pid);
bool process_alive(pid_t pid, std::uint64_t start_time);
bool entry_alive(const nlohmann::json &entry);

// Creates the directories as needed. Throws fusd::Error.
void write_entry(const nlohmann::json &entry);
// Removes the entry for device_path if it belongs to `pid` (0: whoever wrote it).
void remove_entry(const std::string &device_path, pid_t pid);
// Removes the entry of a daemon found dead (entry_alive() false), and its control socket once no
// live entry names it: a killed daemon never unlinks its own socket.
void remove_dead_entry(const nlohmann::json &entry);
std::vector<nlohmann::json> read_entries();
std::optional<nlohmann::json> find_entry(const std::string &device_path);

// Scratch directories (see admin::scratch_dir): $FUSD_RUNTIME_DIR/scratch/<pid>-<start time>.
std::string scratch_dir_of(pid_t pid, std::uint64_t start_time);
// Removes, with everything in it, the scratch directory of a process that is dead.
void remove_scratch_dir(pid_t pid, std::uint64_t start_time);
// The same for every scratch directory whose process is dead (and for no other name).
void remove_dead_scratch_dirs();

} // namespace fusd::detail::registry
