// SPDX-License-Identifier: MIT
#include "kernel_message.hpp"

#include <algorithm>
#include <cstring>

namespace fusd::detail {

KernelMessage parse_kernel_message(std::span<const std::byte> bytes)
{
    KernelMessage m;
    if (bytes.size() < sizeof m.hdr)
        return m;
    std::memcpy(&m.hdr, bytes.data(), sizeof m.hdr);
    if (m.hdr.size < sizeof m.hdr)
        return m;
    m.payload = bytes.subspan(sizeof m.hdr, std::min<std::size_t>(bytes.size(), m.hdr.size) - sizeof m.hdr);
    using Kind = KernelMessage::Kind;
    switch (m.hdr.opcode) {
    case FUSD_OP_OPEN: m.kind = Kind::open; break;
    case FUSD_OP_RELEASE: m.kind = Kind::release; break;
    case FUSD_OP_READ: m.kind = Kind::read; break;
    case FUSD_OP_WRITE: m.kind = Kind::write; break;
    case FUSD_OP_IOCTL: m.kind = Kind::ioctl; break;
    case FUSD_OP_INTERRUPT: m.kind = Kind::interrupt; break;
    case FUSD_OP_GONE: m.kind = Kind::gone; break;
    case FUSD_OP_MMAP:
        if (m.payload.size() != sizeof m.mmap) {
            m.kind = Kind::bad_call;
            break;
        }
        std::memcpy(&m.mmap, m.payload.data(), sizeof m.mmap);
        m.kind = Kind::mmap;
        break;
    default: m.kind = Kind::unknown; break;
    }
    return m;
}

} // namespace fusd::detail
