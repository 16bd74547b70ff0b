// SPDX-License-Identifier: MIT
//
// fusd-recording(5): reading and writing its lines (see format.hpp).
#include "recording/format.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fcntl.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base64.hpp"
#include "common.hpp"

namespace fusdctl::recording {

namespace {

using Json = nlohmann::ordered_json;


// The keys each call may have (besides t, open, call, errno).
const std::map<Call, std::set<std::string>> kKeys = {
    {Call::open, {"access", "nonblock"}},
    {Call::read, {"size", "data", "text"}},
    {Call::write, {"data", "text", "result"}},
    {Call::ioctl, {"request", "arg", "in", "out", "result"}},
    {Call::close, {}},
};

std::optional<Call> parse_call(std::string_view name) {
    for (Call c : {Call::open, Call::read, Call::write, Call::ioctl, Call::close})
        if (to_string(c) == name)
            return c;
    return std::nullopt;
}

std::string shown_bytes(std::string_view bytes) {
    std::string s = "\"";
    std::size_t shown = std::min<std::size_t>(bytes.size(), 40);
    for (std::size_t i = 0; i < shown; ++i) {
        unsigned char c = bytes[i];
        switch (c) {
        case '\n': s += "\\n"; break;
        case '\r': s += "\\r"; break;
        case '\t': s += "\\t"; break;
        case '"': s += "\\\""; break;
        case '\\': s += "\\\\"; break;
        default:
            if (c < 0x20 || c >= 0x7f)
                s += fmt::format("\\x{:02x}", c);
            else
                s += char(c);
        }
    }
    s += bytes.size() > shown ? "\"..." : "\"";
    return s;
}

// One line's parser: every failure names the file and the line.
class LineParser {
public:
    LineParser(const std::string &file, int line, const Json &json) : file_(file), line_(line), json_(json) {}

    [[noreturn]] void fail(const std::string &what) const {
        throw RecordingError(fmt::format("{}:{}: {}", file_, line_, what));
    }

    const Json *get(const char *key) const {
        auto it = json_.find(key);
        return it == json_.end() ? nullptr : &*it;
    }

    std::uint64_t unsigned_number(const char *key, const Json &v) const {
        if (v.is_number_unsigned())
            return v.get<std::uint64_t>();
        if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
            return static_cast<std::uint64_t>(v.get<std::int64_t>());
        if (v.is_string()) { // "0x5401": ioctl numbers read best in hex
            const std::string s = v.get<std::string>();
            char *end = nullptr;
            errno = 0;
            unsigned long long n = std::strtoull(s.c_str(), &end, 0);
            if (!s.empty() && s[0] != '-' && end && *end == '\0' && errno == 0)
                return n;
        }
        fail(fmt::format("\"{}\" must be a non-negative integer, not {}", key, v.dump()));
    }

    std::string bytes(const char *key) const {
        const Json *v = get(key);
        if (!v)
            return {};
        if (!v->is_string())
            fail(fmt::format("\"{}\" must be a string", key));
        if (std::string_view(key) == "text")
            return v->get<std::string>();
        auto decoded = base64_decode(v->get<std::string>());
        if (!decoded)
            fail(fmt::format("\"{}\" is not valid base64", key));
        return *decoded;
    }

    Event event() const {
        if (!json_.is_object())
            fail("not a JSON object");
        Event e;
        e.line = line_;
        const Json *call = get("call");
        if (!call || !call->is_string())
            fail("no \"call\" (open, read, write, ioctl or close)");
        auto c = parse_call(call->get<std::string>());
        if (!c)
            fail(fmt::format("unknown call \"{}\" (open, read, write, ioctl or close)", call->get<std::string>()));
        e.call = *c;
        const auto &allowed = kKeys.at(e.call);
        for (const auto &[key, value] : json_.items())
            if (key != "t" && key != "open" && key != "call" && key != "errno" && !allowed.count(key))
                fail(fmt::format("unknown key \"{}\" for a {}", key, to_string(e.call)));
        const Json *open = get("open");
        if (!open)
            fail("no \"open\" (which open of the device, 1, 2, ...)");
        std::uint64_t n = unsigned_number("open", *open);
        if (n == 0 || n > 1000000)
            fail("\"open\" must be 1 or more");
        e.open = static_cast<unsigned>(n);
        if (const Json *t = get("t")) {
            if (!t->is_number() || !std::isfinite(t->get<double>()) || t->get<double>() < 0)
                fail("\"t\" must be a number of seconds, 0 or more");
            e.t = t->get<double>();
        }
        if (const Json *err = get("errno")) {
            if (!err->is_string() || !(e.error = errno_by_name(err->get<std::string>())))
                fail(fmt::format("\"errno\" must name an errno (EIO, EAGAIN, ...), not {}", err->dump()));
        }
        if (get("data") && get("text"))
            fail("\"data\" and \"text\" both given: one of them");
        switch (e.call) {
        case Call::open:
            if (const Json *a = get("access")) {
                if (!a->is_string() || (*a != "r" && *a != "w" && *a != "rw"))
                    fail("\"access\" must be \"r\", \"w\" or \"rw\"");
                e.access = a->get<std::string>();
            } else {
                e.access = "rw";
            }
            if (const Json *nb = get("nonblock")) {
                if (!nb->is_boolean())
                    fail("\"nonblock\" must be true or false");
                e.nonblock = nb->get<bool>();
            }
            break;
        case Call::read:
            if (const Json *s = get("size"))
                e.size = unsigned_number("size", *s);
            e.data = get("text") ? bytes("text") : bytes("data");
            if (e.size && e.data.size() > *e.size)
                fail(fmt::format("\"data\" has {} bytes, more than the \"size\" read ({})", e.data.size(), *e.size));
            if (e.error && !e.data.empty())
                fail("a read that failed returns no data");
            break;
        case Call::write:
            e.data = get("text") ? bytes("text") : bytes("data");
            if (const Json *r = get("result"))
                e.result = static_cast<long long>(unsigned_number("result", *r));
            else
                e.result = static_cast<long long>(e.data.size());
            if (static_cast<std::size_t>(e.result) > e.data.size())
                fail(fmt::format("\"result\" {} is more than the {} bytes written", e.result, e.data.size()));
            break;
        case Call::ioctl: {
            const Json *r = get("request");
            if (!r)
                fail("no \"request\" (the ioctl number, e.g. \"0x5401\")");
            std::uint64_t req = unsigned_number("request", *r);
            if (req > 0xffffffffu)
                fail("\"request\" is more than 32 bits");
            e.request = static_cast<std::uint32_t>(req);
            if (const Json *a = get("arg"))
                e.arg = unsigned_number("arg", *a);
            e.in = bytes("in");
            e.out = bytes("out");
            if (const Json *res = get("result")) {
                if (!res->is_number_integer())
                    fail("\"result\" must be an integer");
                e.result = res->get<long long>();
                if (e.result < 0)
                    fail("\"result\" must be 0 or more (a failure is \"errno\")");
            }
            break;
        }
        case Call::close:
            break;
        }
        return e;
    }

private:
    const std::string &file_;
    int line_;
    const Json &json_;
};

} // namespace

std::string_view to_string(Call call) {
    switch (call) {
    case Call::open: return "open";
    case Call::read: return "read";
    case Call::write: return "write";
    case Call::ioctl: return "ioctl";
    case Call::close: return "close";
    }
    return "?";
}

int errno_by_name(std::string_view name) {
    for (int e = 1; e < 4096; ++e)
        if (const char *n = ::strerrorname_np(e); n && name == n)
            return e;
    return 0;
}

std::string access_of(unsigned flags) {
    switch (flags & O_ACCMODE) {
    case O_RDONLY: return "r";
    case O_WRONLY: return "w";
    default: return "rw";
    }
}

Recording parse_recording_text(std::string_view text, const std::string &name) {
    Recording rec;
    if (text.empty())
        throw RecordingError(fmt::format("{}:1: empty file: no {{\"fusd-recording\":{}}} header", name, kVersion));
    std::vector<int> state; // per open: 0 open, 1 closed, 2 failed to open
    std::optional<double> last_t;
    bool header = false;
    int line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        ++line_no;
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos)
            throw RecordingError(fmt::format("{}:{}: truncated: the last line has no end (a recording cut short?)",
                                             name, line_no));
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        if (line.find_first_not_of(" \t\r") == std::string_view::npos || line[0] == '#')
            continue;
        Json json;
        try {
            json = Json::parse(line);
        } catch (const nlohmann::json::exception &e) {
            // Not only parse_error: a number too large for any type ("1e400") is out_of_range.
            std::string what = e.what();
            if (auto p = what.find("] "); p != std::string::npos)
                what = what.substr(p + 2);
            throw RecordingError(fmt::format("{}:{}: not a JSON line: {}", name, line_no, what));
        }
        LineParser parser(name, line_no, json);
        if (!header) {
            if (!json.is_object() || !json.contains("fusd-recording"))
                parser.fail(fmt::format("not a fusd recording: the first line must be {{\"fusd-recording\":{},...}}", kVersion));
            const Json &v = json["fusd-recording"];
            if (!v.is_number_integer() || v.get<long long>() != kVersion)
                parser.fail(fmt::format("unknown version {} (this fusdctl reads version {})", v.dump(), kVersion));
            for (const auto &[key, value] : json.items()) {
                if (key == "device") {
                    if (!value.is_string())
                        parser.fail("\"device\" must be a string");
                    rec.device = value.get<std::string>();
                } else if (key != "fusd-recording" && key != "recorded") {
                    parser.fail(fmt::format("unknown key \"{}\" in the header", key));
                }
            }
            header = true;
            continue;
        }
        Event e = parser.event();
        if (e.t) {
            if (last_t && *e.t < *last_t)
                parser.fail(fmt::format("\"t\" {} is earlier than the line before ({}): lines are in time order", *e.t, *last_t));
            last_t = e.t;
        }
        if (e.call == Call::open) {
            if (e.open != state.size() + 1)
                parser.fail(fmt::format("open {} out of order: the next open is {}", e.open, state.size() + 1));
            state.push_back(e.error ? 2 : 0);
        } else {
            if (e.open > state.size())
                parser.fail(fmt::format("a {} on open {}, which was not opened before", to_string(e.call), e.open));
            int s = state[e.open - 1];
            if (s != 0)
                parser.fail(fmt::format("a {} on open {}, which {}", to_string(e.call), e.open,
                                        s == 1 ? "was closed before" : "failed to open"));
            if (e.call == Call::close) {
                if (e.error)
                    parser.fail("a close has no \"errno\"");
                state[e.open - 1] = 1;
            }
        }
        rec.events.push_back(std::move(e));
    }
    if (!header)
        throw RecordingError(fmt::format("{}:{}: no {{\"fusd-recording\":{}}} header", name, line_no, kVersion));
    rec.opens = static_cast<unsigned>(state.size());
    return rec;
}

Recording parse_recording(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw RecordingError(fmt::format("{}: {}", path, std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw RecordingError(fmt::format("{}: read error", path));
    return parse_recording_text(text.str(), path);
}

std::string format_header(std::string_view device) {
    Json j;
    j["fusd-recording"] = kVersion;
    j["device"] = std::string(device);
    return j.dump();
}

std::string format_event(const Event &e) {
    Json j;
    j["open"] = e.open;
    j["call"] = std::string(to_string(e.call));
    switch (e.call) {
    case Call::open:
        j["access"] = e.access;
        if (e.nonblock)
            j["nonblock"] = true;
        break;
    case Call::read:
        if (e.size)
            j["size"] = *e.size;
        if (!e.error)
            j["data"] = base64_encode(e.data);
        break;
    case Call::write:
        j["data"] = base64_encode(e.data);
        if (!e.error)
            j["result"] = e.result;
        break;
    case Call::ioctl:
        j["request"] = fmt::format("{:#x}", e.request);
        if (e.arg)
            j["arg"] = e.arg;
        if (!e.in.empty())
            j["in"] = base64_encode(e.in);
        if (!e.error) {
            if (!e.out.empty())
                j["out"] = base64_encode(e.out);
            j["result"] = e.result;
        }
        break;
    case Call::close:
        break;
    }
    if (e.error)
        j["errno"] = errno_name(e.error);
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (e.t) // fixed-point microseconds: "0.000057", not "5.7e-05"
        line.insert(1, fmt::format("\"t\":{:.6f},", *e.t));
    return line;
}

std::string describe(const Event &e) {
    switch (e.call) {
    case Call::open:
        return fmt::format("open ({})", e.access == "r" ? "read-only" : e.access == "w" ? "write-only" : "read-write");
    case Call::read:
        return e.size ? fmt::format("read of {} bytes", *e.size) : std::string("read");
    case Call::write:
        return fmt::format("write {} ({} bytes)", shown_bytes(e.data), e.data.size());
    case Call::ioctl:
        if (!e.in.empty())
            return fmt::format("ioctl {:#x} with {} bytes in {}", e.request, e.in.size(), shown_bytes(e.in));
        if (e.arg)
            return fmt::format("ioctl {:#x} arg {}", e.request, e.arg);
        return fmt::format("ioctl {:#x}", e.request);
    case Call::close:
        return "close";
    }
    return "?";
}

} // namespace fusdctl::recording
