// SPDX-License-Identifier: MIT
//
// fusdctl serve --protocol json: reading the command's answer lines (man/fusd-protocol.7). Pure
// functions, apart from the I/O and the kept requests of ProtocolServer (protocol.cpp), so that
// tests/fuzz can give them any bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fusd/fusd.hpp"

namespace fusdctl::serve {

// One line of the command's output.
struct AnswerLine {
    bool blank = false;              // empty or only blanks: allowed between answers, ignored
    nlohmann::json msg;              // discarded when the line is not JSON
    std::optional<std::uint64_t> id; // the call it answers; also made out of a line that is not JSON
};
AnswerLine read_answer_line(std::string_view line);

// What an answer to a call of `op` with `size` bytes (read: asked for; write: given; ioctl: the
// out-data room) tells its request. Throws std::invalid_argument saying what is wrong.
struct CallAnswer {
    int error = 0;           // not 0: the call fails with this errno, the rest is unused
    std::string bytes;       // read: the data; ioctl: the out-data
    std::size_t written = 0; // write: the count taken
    int result = 0;          // ioctl: its return value
};
CallAnswer parse_call_answer(fusd::Op op, std::size_t size, const nlohmann::json &reply);

// A readiness message: the events, for one file or (no file) the whole device.
struct Readiness {
    unsigned events = 0;
    std::optional<std::uint64_t> file;
};
Readiness parse_readiness(const nlohmann::json &msg); // throws std::invalid_argument

} // namespace fusdctl::serve
