// SPDX-License-Identifier: MIT
// fusd-recording(5) files, as `fusdctl replay` reads them (cmd/recording/format.cpp): any text
// is either a recording or a RecordingError, never a crash or another exception; what parses
// is written back by format_event() and parses again to the same calls.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base64.hpp"
#include "recording/format.hpp"

namespace rec = fusdctl::recording;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(data), size);
    rec::Recording r;
    try {
        r = rec::parse_recording_text(text, "fuzz");
    } catch (const rec::RecordingError &) {
        return 0;
    }
    std::string again = rec::format_header(r.device) + "\n";
    for (const rec::Event &e : r.events) {
        again += rec::format_event(e) + "\n";
        (void)rec::describe(e);
    }
    rec::Recording r2;
    try {
        r2 = rec::parse_recording_text(again, "fuzz-again");
    } catch (const rec::RecordingError &) {
        std::abort(); // what format_event() writes, parse_recording() must read
    }
    if (r2.device != r.device || r2.events.size() != r.events.size() || r2.opens != r.opens)
        std::abort();
    for (std::size_t i = 0; i < r.events.size(); ++i) {
        const rec::Event &a = r.events[i], &b = r2.events[i];
        if (a.call != b.call || a.open != b.open || a.data != b.data || a.in != b.in || a.out != b.out ||
            a.request != b.request || a.arg != b.arg || a.error != b.error || a.size != b.size ||
            a.access != b.access || a.nonblock != b.nonblock)
            std::abort();
        if (!a.error && a.call != rec::Call::read && a.result != b.result) // a read's result is its data
            std::abort();
    }
    // base64 both ways, on the raw bytes.
    auto decoded = fusdctl::base64_decode(fusdctl::base64_encode(text));
    if (!decoded || *decoded != text)
        std::abort();
    return 0;
}
