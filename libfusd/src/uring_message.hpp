// SPDX-License-Identifier: MIT
//
// Decoding what the kernel puts in a FUSE-over-io_uring ring entry (and the few messages that
// still come by read(2) of /dev/fuse): every length and size is checked against the buffers
// before anything is used. Pure functions, no I/O: the uring transport and the fuzz target
// (tests/fuzz/fuzz_uring_message.cpp) share them.
#pragma once

#include <cstdint>
#include <span>

#include "fuse_uring_uapi.hpp"

namespace fusd::detail {

struct UringRequest {
    std::uint32_t opcode = 0;
    std::uint64_t unique = 0;
    std::uint32_t uid = 0, gid = 0, pid = 0;
    std::uint64_t fh = 0;
    std::uint64_t offset = 0;
    std::uint32_t size = 0;   // READ: bytes wanted; WRITE: bytes given; IOCTL: room for the answer
    std::uint32_t flags = 0;  // OPEN, READ, WRITE, RELEASE: the open flags
    std::span<const std::byte> data; // WRITE data, IOCTL input (inside the entry's payload)
    std::uint32_t ioctl_flags = 0, ioctl_cmd = 0;
    std::uint64_t ioctl_arg = 0;
    std::uint32_t setattr_valid = 0, mode = 0, new_uid = 0, new_gid = 0;
    std::uint64_t poll_kh = 0;
    std::uint32_t poll_flags = 0;
};

// Decodes a ring entry: `header` is the entry's header buffer, `payload` its payload buffer
// (whole capacity). Returns 0, or -EPROTO for a malformed message (answer it EIO), or -ENOSYS for
// an opcode this transport does not serve (answer it ENOSYS). `out.unique` is set whenever the
// in-header itself is sound, so even a refused message can be answered.
int decode_uring_request(const fuse_abi::UringReqHeader &header, std::span<const std::byte> payload,
                         UringRequest &out);

// A message read from /dev/fuse once the ring serves requests: INTERRUPT, FORGET, BATCH_FORGET,
// or anything else (answered ENOSYS). Returns 0, or -EPROTO when too short or inconsistent.
struct DevMessage {
    std::uint32_t opcode = 0;
    std::uint64_t unique = 0;
    std::uint64_t interrupted = 0; // INTERRUPT: the unique of the request to interrupt
};
int decode_dev_message(std::span<const std::byte> bytes, DevMessage &out);

} // namespace fusd::detail
