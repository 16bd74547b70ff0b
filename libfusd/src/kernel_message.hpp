// SPDX-License-Identifier: MIT
//
// One message of the fusd module to a daemon, as read(2) or FUSD_IOC_EXCHANGE returns it:
// struct fusd_req_header and its payload (WRITE data, IOCTL in-data, the MMAP request). It is
// checked and cut apart here, apart from what the transport then does with it, so that the parse
// can be fuzzed alone (tests/fuzz/fuzz_kernel_message.cpp): every field that sizes or points is
// bounded by the bytes actually read.
#pragma once

#include <cstddef>
#include <span>

#include <linux/fusd.h>

namespace fusd::detail {

struct KernelMessage {
    enum class Kind {
        bad_header, // shorter than its header, or a header whose size is smaller: the channel failed
        bad_call,   // a call whose payload has the wrong size: answered EPROTO
        open, release, read, write, ioctl, mmap, interrupt, gone,
        unknown,    // a later minor version's message: answered ENOSYS unless it takes no reply
    };
    Kind kind = Kind::bad_header;
    fusd_req_header hdr{};
    std::span<const std::byte> payload; // within the bytes given, at most hdr.size - header
    fusd_mmap_request mmap{};           // Kind::mmap
};

KernelMessage parse_kernel_message(std::span<const std::byte> bytes);

} // namespace fusd::detail
