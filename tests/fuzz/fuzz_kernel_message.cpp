// SPDX-License-Identifier: MIT
// The kernel transport's messages (libfusd/src/kernel_message.cpp): what read(2) or
// FUSD_IOC_EXCHANGE returned from /dev/fusd, cut apart by parse_kernel_message(). The module is
// trusted, but a parse that reads past what was read, or takes a size from a field without
// bounding it, must show here.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "kernel_message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    using fusd::detail::KernelMessage;
    std::span<const std::byte> bytes(reinterpret_cast<const std::byte *>(data), size);
    KernelMessage m = fusd::detail::parse_kernel_message(bytes);
    bool short_message = size < sizeof(fusd_req_header) || m.hdr.size < sizeof(fusd_req_header);
    if (short_message != (m.kind == KernelMessage::Kind::bad_header))
        std::abort();
    if (short_message)
        return 0;
    const std::byte *end = bytes.data() + bytes.size();
    if (m.payload.data() != bytes.data() + sizeof(fusd_req_header) || m.payload.data() + m.payload.size() > end ||
        m.payload.size() > m.hdr.size - sizeof(fusd_req_header))
        std::abort(); // the payload lies within what was read and what the header claims
    if ((m.kind == KernelMessage::Kind::mmap) != (m.hdr.opcode == FUSD_OP_MMAP && m.payload.size() == sizeof(fusd_mmap_request)))
        std::abort();
    volatile std::byte sink{};
    for (std::byte b : m.payload) // every payload byte is readable (ASan)
        sink = sink ^ b;
    return 0;
}
