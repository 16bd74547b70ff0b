// SPDX-License-Identifier: MIT
//
// fusd-recording(5): the file `fusdctl record` writes and `fusdctl replay` serves.
//
// JSON Lines. The first line is the header, {"fusd-recording":1,"device":"/dev/ttyUSB0"}; then
// one line per answered call, in the order the answers were given:
//   {"t":0.5,"open":1,"call":"read","size":64,"data":"T0sNCg=="}
// `open` numbers the opens of the device in order of opening (1, 2, ...); `t` is when the answer
// came, in seconds since the first open. Data is base64 ("text" is accepted as a plain-string
// alternative for hand-written files). Blank lines and lines starting with '#' are skipped.
//
// parse_recording() reads a file strictly: any departure from the format is a RecordingError
// naming FILE:LINE. format_event() makes one line; the two agree on every field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fusdctl::recording {

inline constexpr int kVersion = 1;

enum class Call : std::uint8_t { open, read, write, ioctl, close };
std::string_view to_string(Call call);

struct Event {
    int line = 0;                 // in the file, for messages (0: not from a file)
    std::optional<double> t;      // seconds since the first open when the answer came
    unsigned open = 0;            // 1, 2, ... in order of opening
    Call call = Call::open;
    std::string access;           // open: "r", "w" or "rw"
    bool nonblock = false;        // open: O_NONBLOCK
    std::optional<std::size_t> size; // read: bytes asked for
    std::string data;             // read: bytes returned; write: bytes given
    std::uint32_t request = 0;    // ioctl: the command number
    std::uint64_t arg = 0;        // ioctl: the argument, for a command whose argument is a value
    std::string in;               // ioctl: bytes the argument pointed to, to the device
    std::string out;              // ioctl: bytes that came back
    long long result = 0;         // write: bytes taken; ioctl: its return value
    int error = 0;                // the call failed with this errno (0: it succeeded)
};

struct Recording {
    std::string device;           // the header's "device" (the recorded real device)
    std::vector<Event> events;
    unsigned opens = 0;
};

// FILE:LINE: what is wrong.
class RecordingError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

Recording parse_recording(const std::string &path);
Recording parse_recording_text(std::string_view text, const std::string &name);

std::string format_header(std::string_view device);
std::string format_event(const Event &event); // one line, without its '\n'

// "O_RDWR" style for messages: "r", "w", "rw" from open flags.
std::string access_of(unsigned flags);

// What a call was, for messages: `write "AT\r\n" (4 bytes)`, `ioctl 0x5401 (60 bytes in)`.
std::string describe(const Event &event);

} // namespace fusdctl::recording
