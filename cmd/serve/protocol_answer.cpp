// SPDX-License-Identifier: MIT
// Reading fusdctl serve --protocol json answer lines (see protocol_answer.hpp).
#include "serve/protocol_answer.hpp"

#include <cstdint>
#include <regex>
#include <stdexcept>

#include <fmt/core.h>

#include "base64.hpp"
#include "common.hpp"

namespace fusdctl::serve {

using nlohmann::json;

namespace {

// The bytes of an answer: "data" (base64) or "text" (as it is, UTF-8); neither: empty.
std::string answer_bytes(const json &reply) {
    bool has_data = reply.contains("data"), has_text = reply.contains("text");
    if (has_data && has_text)
        throw std::invalid_argument("both \"data\" and \"text\"");
    if (has_data) {
        if (!reply["data"].is_string())
            throw std::invalid_argument("\"data\" is not a base64 string");
        auto bytes = base64_decode(reply["data"].get_ref<const std::string &>());
        if (!bytes)
            throw std::invalid_argument("\"data\" is not valid base64");
        return std::move(*bytes);
    }
    if (has_text) {
        if (!reply["text"].is_string())
            throw std::invalid_argument("\"text\" is not a string");
        return reply["text"].get<std::string>();
    }
    return {};
}

void only_keys(const json &reply, std::initializer_list<std::string_view> allowed) {
    for (const auto &[key, value] : reply.items()) {
        bool ok = false;
        for (std::string_view a : allowed)
            ok = ok || key == a;
        if (!ok)
            throw std::invalid_argument(fmt::format("unexpected key \"{}\"", key));
    }
}

} // namespace

AnswerLine read_answer_line(std::string_view line) {
    AnswerLine out;
    if (line.empty() || line.find_first_not_of(" \t\r") == std::string_view::npos) {
        out.blank = true;
        return out;
    }
    out.msg = json::parse(line, nullptr, false);
    if (out.msg.is_object() && out.msg.contains("id") && out.msg["id"].is_number_unsigned())
        out.id = out.msg["id"].get<std::uint64_t>();
    if (!out.msg.is_object()) {
        // Not JSON: the call it meant still fails, if its id can be made out.
        static const std::regex id_field(R"re("id"\s*:\s*([0-9]{1,19})\b)re");
        std::match_results<std::string_view::const_iterator> m;
        if (std::regex_search(line.begin(), line.end(), m, id_field))
            out.id = std::stoull(m[1].str());
    }
    return out;
}

CallAnswer parse_call_answer(fusd::Op op, std::size_t size, const json &reply) {
    CallAnswer a;
    if (reply.contains("error")) {
        only_keys(reply, {"id", "error"});
        const json &e = reply["error"];
        int errnum = 0;
        if (e.is_string())
            errnum = errno_by_name(e.get_ref<const std::string &>());
        else if (e.is_number_unsigned() && e.get<std::uint64_t>() < 4096) // not get<int>(): 2^32 + 5 is no EIO
            errnum = int(e.get<std::uint64_t>());
        if (errnum <= 0 || errnum >= 4096)
            throw std::invalid_argument("\"error\" is not an errno name (such as \"EAGAIN\") or number");
        a.error = errnum;
        return a;
    }
    switch (op) {
    case fusd::Op::open:
        only_keys(reply, {"id"});
        return a;
    case fusd::Op::read: {
        only_keys(reply, {"id", "data", "text"});
        if (!reply.contains("data") && !reply.contains("text"))
            throw std::invalid_argument("a read's answer has \"data\" (or \"text\"), \"\" for end of file");
        a.bytes = answer_bytes(reply);
        if (a.bytes.size() > size)
            throw std::invalid_argument(fmt::format("{} bytes for a read of {}", a.bytes.size(), size));
        return a;
    }
    case fusd::Op::write: {
        only_keys(reply, {"id", "written"});
        a.written = size;
        if (reply.contains("written")) {
            if (!reply["written"].is_number_unsigned() || reply["written"].get<std::uint64_t>() > size)
                throw std::invalid_argument(fmt::format("\"written\" is not a count from 0 to {}", size));
            a.written = reply["written"].get<std::size_t>();
        }
        return a;
    }
    case fusd::Op::ioctl: {
        only_keys(reply, {"id", "result", "data", "text"});
        if (reply.contains("result")) {
            if (!reply["result"].is_number_integer() || reply["result"].get<std::int64_t>() < 0 ||
                reply["result"].get<std::int64_t>() > INT32_MAX)
                throw std::invalid_argument("\"result\" is not a number >= 0 (an error is \"error\")");
            a.result = reply["result"].get<int>();
        }
        a.bytes = answer_bytes(reply);
        if (a.bytes.size() > size)
            throw std::invalid_argument(fmt::format("{} bytes of out-data for an ioctl of {}", a.bytes.size(), size));
        return a;
    }
    default:
        throw std::invalid_argument("not a call that takes an answer");
    }
}

Readiness parse_readiness(const json &msg) {
    only_keys(msg, {"readiness", "file"});
    const json &list = msg["readiness"];
    if (!list.is_array())
        throw std::invalid_argument("\"readiness\" is not a list such as [\"in\", \"out\"]");
    Readiness r;
    for (const json &word : list) {
        std::string w = word.is_string() ? word.get<std::string>() : "";
        if (w == "in")
            r.events |= fusd::ready::readable;
        else if (w == "out")
            r.events |= fusd::ready::writable;
        else if (w == "err")
            r.events |= fusd::ready::error;
        else if (w == "hup")
            r.events |= fusd::ready::hangup;
        else
            throw std::invalid_argument(fmt::format("readiness {} is not one of in, out, err, hup", word.dump()));
    }
    if (!msg.contains("file"))
        return r;
    if (!msg["file"].is_number_unsigned())
        throw std::invalid_argument("\"file\" is not a file number");
    r.file = msg["file"].get<std::uint64_t>();
    return r;
}

} // namespace fusdctl::serve
