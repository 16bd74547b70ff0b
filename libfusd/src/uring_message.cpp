// SPDX-License-Identifier: MIT
// Decoding FUSE-over-io_uring ring entries (see uring_message.hpp).
#include "uring_message.hpp"

#include <cerrno>
#include <cstring>

namespace fusd::detail {

namespace {

using namespace fuse_abi;

// The op header the kernel copied into op_in: it holds at most kUringOpInSize bytes.
template <class T> T op_in(const UringReqHeader &h)
{
    static_assert(sizeof(T) <= kUringOpInSize);
    T v;
    std::memcpy(&v, h.op_in, sizeof v);
    return v;
}

} // namespace

int decode_uring_request(const UringReqHeader &header, std::span<const std::byte> payload, UringRequest &out)
{
    static_assert(sizeof(InHeader) <= kUringInOutHeaderSize);
    InHeader in;
    std::memcpy(&in, header.in_out, sizeof in);
    UringEntInOut ent;
    std::memcpy(&ent, &header.ring_ent_in_out, sizeof ent);
    out = UringRequest{};
    if (in.unique == 0 || ent.commit_id != in.unique)
        return -EPROTO; // no answer possible: the kernel would not find the request
    out.opcode = in.opcode;
    out.unique = in.unique;
    out.uid = in.uid;
    out.gid = in.gid;
    out.pid = in.pid;
    if (in.len < sizeof(InHeader) || ent.payload_sz > payload.size())
        return -EPROTO;
    const std::size_t payload_sz = ent.payload_sz;
    switch (in.opcode) {
    case kGetattr:
        out.fh = op_in<GetattrIn>(header).fh;
        return 0;
    case kSetattr: {
        auto s = op_in<SetattrIn>(header);
        out.setattr_valid = s.valid;
        out.mode = s.mode;
        out.new_uid = s.uid;
        out.new_gid = s.gid;
        return 0;
    }
    case kOpen:
        out.flags = op_in<OpenIn>(header).flags;
        return 0;
    case kRead: {
        auto r = op_in<ReadIn>(header);
        if (r.size > payload.size())
            return -EPROTO; // the answer could not fit the entry
        out.fh = r.fh, out.offset = r.offset, out.size = r.size, out.flags = r.flags;
        return 0;
    }
    case kWrite: {
        auto w = op_in<WriteIn>(header);
        if (w.size != payload_sz)
            return -EPROTO;
        out.fh = w.fh, out.offset = w.offset, out.size = w.size, out.flags = w.flags;
        out.data = payload.first(payload_sz);
        return 0;
    }
    case kRelease: {
        auto r = op_in<ReleaseIn>(header);
        out.fh = r.fh, out.flags = r.flags;
        return 0;
    }
    case kFlush:
        out.fh = op_in<FlushIn>(header).fh;
        return 0;
    case kIoctl: {
        auto i = op_in<IoctlIn>(header);
        if (i.in_size != payload_sz || i.out_size > payload.size() - sizeof(IoctlOut))
            return -EPROTO;
        out.fh = i.fh, out.ioctl_flags = i.flags, out.ioctl_cmd = i.cmd, out.ioctl_arg = i.arg;
        out.size = i.out_size;
        out.data = payload.first(payload_sz);
        return 0;
    }
    case kPoll: {
        auto p = op_in<PollIn>(header);
        out.fh = p.fh, out.poll_kh = p.kh, out.poll_flags = p.flags;
        return 0;
    }
    case kDestroy:
        return 0;
    default:
        return -ENOSYS;
    }
}

int decode_dev_message(std::span<const std::byte> bytes, DevMessage &out)
{
    out = DevMessage{};
    InHeader in;
    if (bytes.size() < sizeof in)
        return -EPROTO;
    std::memcpy(&in, bytes.data(), sizeof in);
    if (in.len != bytes.size())
        return -EPROTO;
    out.opcode = in.opcode;
    out.unique = in.unique;
    if (in.opcode == kInterrupt) {
        InterruptIn i;
        if (bytes.size() < sizeof in + sizeof i)
            return -EPROTO;
        std::memcpy(&i, bytes.data() + sizeof in, sizeof i);
        out.interrupted = i.unique;
    }
    return 0;
}

} // namespace fusd::detail
