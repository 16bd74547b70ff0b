// SPDX-License-Identifier: MIT
//
// KernelReplyBatch: the replies a driver's callback makes on the loop thread, held until the
// callback returns, then written to the kernel channel; and write_now(), the one place a reply
// is written by write().
//
// Why hold them: on FUSE and CUSE a poll is answered by the loop thread, so it sees what the
// callback running before it published, whatever the order of reply and notify inside the
// callback. Here the module answers polls itself, from the mask we send; so a reply made inside
// a callback is written when the callback returns, after the READY messages of any notify() it
// made, and an open reply's mask (FUSD_REPLY_POLL) is read at that moment. And holding the last
// reply lets FUSD_IOC_EXCHANGE (protocol 1.1) write it and read the next request in one system call.
//
// The state: `messages_`, the replies back to back as the module takes them (each fusd_reply says
// its size), the last one at `last_`; `open_files_`, the file of each open reply, in order. It is
// empty between callbacks. The flush points, where it is emptied: exchange() (every reply written,
// the last one by the exchange itself), or flush() (each by write(): when the loop thread stops
// taking requests, or a callback threw).
//
// Loop thread only, except write_now(). collecting() (inside collect() on the calling thread) is
// what tells a reply made inside the callback from one made on another thread.
#pragma once

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core.hpp"
#include "kernel_channel.hpp"

namespace fusd::detail {

namespace kernel {

// Copies n bytes; up to 32 of them inline, without a call into libc (see RequestHead in fusd.hpp
// for why the request path avoids calls): the common answer is a few bytes.
[[gnu::always_inline]] inline void copy_payload(std::byte *to, const std::byte *from, std::size_t n)
{
    auto halves = [&](auto word) { // two copies of one word size that overlap in the middle
        std::memcpy(to, from, sizeof word);
        std::memcpy(to + n - sizeof word, from + n - sizeof word, sizeof word);
    };
    if (n > 32)
        std::memcpy(to, from, n);
    else if (n > 16)
        halves(std::array<std::byte, 16>{});
    else if (n >= 8)
        halves(std::uint64_t{});
    else if (n >= 4)
        halves(std::uint32_t{});
    else if (n) {
        to[0] = from[0];
        to[n / 2] = from[n / 2];
        to[n - 1] = from[n - 1];
    }
}

// A growable byte buffer that, unlike std::vector<std::byte>, does not zero what it appends.
class ByteBuffer {
public:
    std::size_t size() const { return size_; }
    std::byte *data() { return data_.get(); }
    void clear() { size_ = 0; }
    std::byte *append(std::size_t n)
    {
        if (size_ + n > capacity_)
            grow(size_ + n);
        std::byte *at = data_.get() + size_;
        size_ += n;
        return at;
    }

private:
    [[gnu::noinline]] void grow(std::size_t needed)
    {
        std::size_t capacity = std::max(needed, 2 * capacity_);
        auto bigger = std::make_unique_for_overwrite<std::byte[]>(capacity);
        if (size_)
            std::memcpy(bigger.get(), data_.get(), size_);
        data_ = std::move(bigger);
        capacity_ = capacity;
    }

    std::unique_ptr<std::byte[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

} // namespace kernel

class KernelReplyBatch {
public:
    KernelReplyBatch(KernelChannel &channel, const std::string &path) : channel_(channel), path_(path) {}

    // Runs `callback` (one driver callback) collecting the replies made on this thread to this
    // batch; leaving by an exception flushes what was collected. (Not an RAII scope: telling an
    // exit by exception would cost a call per request.)
    template <class Callback> [[gnu::always_inline]] void collect(Callback &&callback)
    {
        t_collecting = this;
        try {
            callback();
        } catch (...) {
            t_collecting = nullptr;
            flush();
            throw;
        }
        t_collecting = nullptr;
    }

    [[gnu::always_inline]] bool collecting() const { return t_collecting == this; }

    // Holds one reply (header and payload); `open_file` for an open reply, whose mask is read
    // when it is written.
    [[gnu::always_inline]] void add(const fusd_reply &head, std::span<const std::byte> payload,
                                    std::shared_ptr<FileState> open_file)
    {
        last_ = messages_.size();
        std::byte *msg = messages_.append(sizeof head + payload.size());
        std::memcpy(msg, &head, sizeof head);
        kernel::copy_payload(msg + sizeof head, payload.data(), payload.size());
        if (open_file)
            open_files_.push_back(std::move(open_file));
    }

    // Flush point: writes every held reply and receives the next request into `buf` (of
    // KernelChannel::kReceiveSize bytes) in one FUSD_IOC_EXCHANGE. With wait_fd (the loop's epoll
    // set) it sleeps in the module until a request comes or wait_fd is readable; without, it only
    // takes what is queued. Returns the request's size, or 0 for none now. The last reply goes
    // with the exchange unless it is an open reply: its mask is read under the file's poll_mutex,
    // which must not be held across a wait; then it, like those before the last, is written first.
    [[gnu::always_inline]] ssize_t exchange(std::byte *buf, int wait_fd)
    {
        const std::size_t end = messages_.size();
        const std::byte *msg = nullptr;
        std::uint32_t msg_size = 0;
        if (end) {
            fusd_reply last;
            std::memcpy(&last, messages_.data() + last_, sizeof last);
            const bool goes_along = !(last.flags & FUSD_REPLY_POLL);
            const std::size_t written_first = goes_along ? last_ : end; // by write()
            if (written_first)
                write_until(written_first);
            if (goes_along) {
                msg = messages_.data() + last_;
                msg_size = last.size;
            }
        }
        constexpr std::int32_t kUnsent = INT32_MIN;
        fusd_exchange ex{};
        ex.msg = std::uintptr_t(msg);
        ex.msg_size = msg_size;
        ex.msg_result = kUnsent;
        ex.buf = std::uintptr_t(buf);
        ex.buf_size = KernelChannel::kReceiveSize;
        ex.flags = wait_fd >= 0 ? FUSD_EXCHANGE_WAIT : 0;
        ex.wake_fd = wait_fd;
        int n = channel_.exchange(ex);
        const int err = n < 0 ? errno : 0;
        if (msg && ex.msg_result != kUnsent && ex.msg_result < 0)
            report_refused(msg, -ex.msg_result);
        if (n < 0 && err != EINTR)
            exchange_failed(err, msg && ex.msg_result == kUnsent ? msg : nullptr, msg_size);
        if (end)
            clear();
        return n > 0 ? n : 0;
    }

    // Flush point: writes every held reply, each by write().
    void flush();

    // Writes one reply `msg` of `size` bytes now; with `open_file`, stamped with its current
    // readiness first, under its poll_mutex, so that a notify() racing with it cannot be overtaken
    // by an older mask.
    void write_now(std::byte *msg, std::size_t size, FileState *open_file);

private:
    void write_until(std::size_t end);
    void clear()
    {
        messages_.clear();
        last_ = 0;
        open_files_.clear();
    }
    void report_refused(const std::byte *msg, int err);
    void exchange_failed(int err, const std::byte *unsent, std::size_t size);

    static inline thread_local KernelReplyBatch *t_collecting = nullptr;

    KernelChannel &channel_;
    const std::string &path_; // the device's, for messages
    kernel::ByteBuffer messages_;
    std::size_t last_ = 0;
    std::vector<std::shared_ptr<FileState>> open_files_;
};

} // namespace fusd::detail
