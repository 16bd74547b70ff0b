// SPDX-License-Identifier: MIT
// The FUSE-over-io_uring transport's decoder (libfusd/src/uring_message.cpp): the input is a
// ring entry's header buffer followed by its payload (a payload buffer of the input's remaining
// size), then the same bytes as a /dev/fuse message. The kernel is trusted, but a decode that
// reads past either buffer, or hands on data outside the payload, must show here.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "uring_message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    using namespace fusd::detail;
    fuse_abi::UringReqHeader header{};
    std::memcpy(&header, data, std::min(size, sizeof header));
    // The payload in a buffer of its own, exactly its size: ASan sees any read past it.
    std::vector<std::byte> payload(size > sizeof header ? size - sizeof header : 0);
    if (!payload.empty())
        std::memcpy(payload.data(), data + sizeof header, payload.size());
    UringRequest r;
    int d = decode_uring_request(header, payload, r);
    if (d != 0 && d != -EPROTO && d != -ENOSYS)
        std::abort();
    if (d == 0) {
        const std::byte *begin = payload.data(), *end = payload.data() + payload.size();
        if (!r.data.empty() && (r.data.data() < begin || r.data.data() + r.data.size() > end))
            std::abort(); // data handed on lies within the payload
        if (r.opcode == fuse_abi::kRead && r.size > payload.size())
            std::abort(); // a read's answer must fit the entry
        if (r.unique == 0)
            std::abort();
        volatile std::byte sink{};
        for (std::byte b : r.data)
            sink = sink ^ b;
    }
    std::vector<std::byte> message(size);
    if (size)
        std::memcpy(message.data(), data, size);
    DevMessage m;
    if (decode_dev_message(message, m) == 0 && m.opcode == fuse_abi::kInterrupt &&
        size < sizeof(fuse_abi::InHeader) + sizeof(fuse_abi::InterruptIn))
        std::abort();
    return 0;
}
