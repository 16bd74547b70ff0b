// SPDX-License-Identifier: MIT
// `fusdctl serve --protocol json`: the command's answer lines (cmd/serve/protocol_answer.cpp), as
// ProtocolServer::on_line reads them. Any line is blank, an answer, a readiness message, or
// refused with std::invalid_argument; never a crash or another exception. The first 8 bytes
// choose the size of the call the line answers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "base64.hpp"
#include "serve/protocol_answer.hpp"

namespace serve = fusdctl::serve;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    std::uint64_t call_size = 0;
    if (size >= sizeof call_size) {
        std::memcpy(&call_size, data, sizeof call_size);
        data += sizeof call_size;
        size -= sizeof call_size;
    }
    call_size %= 1u << 21; // a call's size is at most what a backend passes at once
    std::string_view line(reinterpret_cast<const char *>(data), size);
    serve::AnswerLine parsed = serve::read_answer_line(line);
    if (parsed.blank || !parsed.msg.is_object())
        return 0;
    if (parsed.msg.contains("readiness") && !parsed.msg.contains("id")) {
        try {
            (void)serve::parse_readiness(parsed.msg);
        } catch (const std::invalid_argument &) {
        }
        return 0;
    }
    for (fusd::Op op : {fusd::Op::open, fusd::Op::read, fusd::Op::write, fusd::Op::ioctl, fusd::Op::release}) {
        try {
            serve::CallAnswer a = serve::parse_call_answer(op, call_size, parsed.msg);
            if (a.error < 0 || a.error >= 4096 || a.bytes.size() > call_size || a.written > call_size || a.result < 0)
                std::abort();
            // A number given as the error is that errno, never another one.
            if (a.error) {
                const auto &e = parsed.msg.at("error");
                if (e.is_number() && !(e.is_number_unsigned() && e.get<std::uint64_t>() == std::uint64_t(a.error)))
                    std::abort();
            }
        } catch (const std::invalid_argument &) {
        }
    }
    auto decoded = fusdctl::base64_decode(fusdctl::base64_encode(line));
    if (!decoded || *decoded != line)
        std::abort();
    return 0;
}
