// SPDX-License-Identifier: MIT
//
// The parts of <linux/fuse.h> that FUSE over io_uring uses and Debian's 6.1 headers lack, with
// the kernel version each comes from. Layouts are the kernel's ABI: the static_asserts keep them.
#pragma once

#include <cstdint>

namespace fusd::detail::fuse_abi {

// Linux 5.x and older (protocol 7.31 and before): the messages every FUSE transport knows.
constexpr std::uint32_t kForget = 2, kGetattr = 3, kSetattr = 4, kOpen = 14, kRead = 15, kWrite = 16,
                        kRelease = 18, kFlush = 25, kInit = 26, kInterrupt = 36, kDestroy = 38, kIoctl = 39,
                        kPoll = 40, kBatchForget = 42;
constexpr std::uint32_t kNotifyPoll = 1;               // fuse_notify_code FUSE_NOTIFY_POLL
constexpr std::uint32_t kInitExt = 1u << 30;           // FUSE_INIT_EXT (5.17)
constexpr std::uint32_t kMaxPages = 1u << 22;          // FUSE_MAX_PAGES (4.20)
constexpr std::uint32_t kFattrMode = 1, kFattrUid = 2, kFattrGid = 4;
constexpr std::uint32_t kFopenDirectIo = 1, kFopenNonseekable = 4, kFopenStream = 16, kFopenNoflush = 32,
                        kFopenParallelDirectWrites = 64;
constexpr std::uint32_t kIoctlCompat = 1, kIoctlUnrestricted = 2, kIoctlRetry = 4;
constexpr std::uint32_t kPollScheduleNotify = 1;

// Linux 6.14 (protocol 7.42): FUSE_OVER_IO_URING, bit 41 of the 64-bit INIT flags, so bit 9 of flags2.
constexpr std::uint32_t kOverIoUringFlags2 = 1u << (41 - 32);
constexpr std::uint32_t kUringCmdRegister = 1, kUringCmdCommitAndFetch = 2; // enum fuse_uring_cmd (6.14)

struct InHeader { // fuse_in_header
    std::uint32_t len, opcode;
    std::uint64_t unique, nodeid;
    std::uint32_t uid, gid, pid;
    std::uint16_t total_extlen, padding;
};
struct OutHeader { // fuse_out_header
    std::uint32_t len;
    std::int32_t error;
    std::uint64_t unique;
};
struct InitIn { // fuse_init_in (5.17 size)
    std::uint32_t major, minor, max_readahead, flags, flags2, unused[11];
};
struct InitOut { // fuse_init_out (6.13 size)
    std::uint32_t major, minor, max_readahead, flags;
    std::uint16_t max_background, congestion_threshold;
    std::uint32_t max_write, time_gran;
    std::uint16_t max_pages, map_alignment;
    std::uint32_t flags2, max_stack_depth;
    std::uint16_t request_timeout, unused[11];
};
struct Attr { // fuse_attr
    std::uint64_t ino, size, blocks, atime, mtime, ctime;
    std::uint32_t atimensec, mtimensec, ctimensec, mode, nlink, uid, gid, rdev, blksize, flags;
};
struct AttrOut { // fuse_attr_out
    std::uint64_t attr_valid;
    std::uint32_t attr_valid_nsec, dummy;
    Attr attr;
};
struct SetattrIn { // fuse_setattr_in
    std::uint32_t valid, padding;
    std::uint64_t fh, size, lock_owner, atime, mtime, ctime;
    std::uint32_t atimensec, mtimensec, ctimensec, mode, unused4, uid, gid, unused5;
};
struct GetattrIn { std::uint32_t getattr_flags, dummy; std::uint64_t fh; };
struct OpenIn { std::uint32_t flags, open_flags; };
struct OpenOut { std::uint64_t fh; std::uint32_t open_flags; std::int32_t backing_id; };
struct ReadIn { std::uint64_t fh, offset; std::uint32_t size, read_flags; std::uint64_t lock_owner; std::uint32_t flags, padding; };
struct WriteIn { std::uint64_t fh, offset; std::uint32_t size, write_flags; std::uint64_t lock_owner; std::uint32_t flags, padding; };
struct WriteOut { std::uint32_t size, padding; };
struct ReleaseIn { std::uint64_t fh; std::uint32_t flags, release_flags; std::uint64_t lock_owner; };
struct FlushIn { std::uint64_t fh; std::uint32_t unused, padding; std::uint64_t lock_owner; };
struct InterruptIn { std::uint64_t unique; };
struct IoctlIn { std::uint64_t fh; std::uint32_t flags, cmd; std::uint64_t arg; std::uint32_t in_size, out_size; };
struct IoctlOut { std::int32_t result; std::uint32_t flags, in_iovs, out_iovs; };
struct IoctlIovec { std::uint64_t base, len; };
struct PollIn { std::uint64_t fh, kh; std::uint32_t flags, events; };
struct PollOut { std::uint32_t revents, padding; };
struct NotifyPollWakeup { std::uint64_t kh; };

// Linux 6.14: the ring entry's header buffer (struct fuse_uring_req_header) and the command
// carried in a 128-byte SQE (struct fuse_uring_cmd_req).
struct UringEntInOut {
    std::uint64_t flags, commit_id;
    std::uint32_t payload_sz, padding;
    std::uint64_t reserved;
};
constexpr std::size_t kUringInOutHeaderSize = 128, kUringOpInSize = 128;
struct UringReqHeader {
    unsigned char in_out[kUringInOutHeaderSize]; // fuse_in_header in, fuse_out_header back
    unsigned char op_in[kUringOpInSize];         // the request's first argument (e.g. fuse_read_in)
    UringEntInOut ring_ent_in_out;
};
struct UringCmdReq {
    std::uint64_t flags, commit_id;
    std::uint16_t qid;
    std::uint8_t padding[6];
};

static_assert(sizeof(InHeader) == 40 && sizeof(OutHeader) == 16 && sizeof(InitIn) == 64 && sizeof(InitOut) == 64);
static_assert(sizeof(Attr) == 88 && sizeof(AttrOut) == 104 && sizeof(SetattrIn) == 88 && sizeof(ReadIn) == 40 &&
              sizeof(WriteIn) == 40 && sizeof(IoctlIn) == 32 && sizeof(PollIn) == 24 && sizeof(ReleaseIn) == 24);
static_assert(sizeof(UringEntInOut) == 32 && sizeof(UringReqHeader) == 288 && sizeof(UringCmdReq) == 24);

} // namespace fusd::detail::fuse_abi
