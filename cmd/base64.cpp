// SPDX-License-Identifier: MIT
#include "base64.hpp"

#include <cstdint>
#include <cstring>

namespace fusdctl {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
} // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        std::uint32_t v = (std::uint8_t(bytes[i]) << 16) | (std::uint8_t(bytes[i + 1]) << 8) | std::uint8_t(bytes[i + 2]);
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (std::size_t rest = bytes.size() - i) {
        std::uint32_t v = std::uint8_t(bytes[i]) << 16;
        if (rest == 2)
            v |= std::uint8_t(bytes[i + 1]) << 8;
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4)
        return std::nullopt;
    auto value = [](char c) -> int {
        const char *p = std::strchr(kAlphabet, c);
        return c && p ? int(p - kAlphabet) : -1;
    };
    std::string out;
    for (std::size_t i = 0; i < text.size(); i += 4) {
        bool last = i + 4 == text.size();
        int pad = 0;
        if (last && text[i + 3] == '=')
            pad = text[i + 2] == '=' ? 2 : 1;
        std::uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            int d = k >= 4 - pad ? 0 : value(text[i + k]);
            if (d < 0)
                return std::nullopt;
            v = (v << 6) | unsigned(d);
        }
        out += char(v >> 16);
        if (pad < 2)
            out += char((v >> 8) & 0xff);
        if (pad < 1)
            out += char(v & 0xff);
    }
    return out;
}

} // namespace fusdctl
