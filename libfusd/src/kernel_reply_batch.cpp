// SPDX-License-Identifier: MIT
//
// KernelReplyBatch's slow half: replies written one by one by write() (flush(), the replies
// before the one that goes with an exchange, a reply made outside a callback), and what is said
// when the module refuses one. The exchange itself is inline in the header, on the request path.
#include "kernel_reply_batch.hpp"

#include "loop_impl.hpp"

namespace fusd::detail {

void KernelReplyBatch::flush()
{
    write_until(messages_.size());
    clear();
}

// Writes the held replies before offset `end`, each by write().
void KernelReplyBatch::write_until(std::size_t end)
{
    std::size_t opens = 0;
    for (std::size_t at = 0; at < end && channel_.is_open();) { // closed: removed inside the callback
        std::byte *msg = messages_.data() + at;
        fusd_reply head;
        std::memcpy(&head, msg, sizeof head);
        at += head.size;
        write_now(msg, head.size, head.flags & FUSD_REPLY_POLL ? open_files_[opens++].get() : nullptr);
    }
}

void KernelReplyBatch::write_now(std::byte *msg, std::size_t size, FileState *open_file)
{
    int err;
    if (open_file) {
        std::lock_guard lock(open_file->poll_mutex);
        fusd_reply head;
        std::memcpy(&head, msg, sizeof head);
        head.poll_mask = open_file->readiness.load() & FUSD_POLL_ALL;
        std::memcpy(msg, &head, sizeof head);
        err = channel_.write_message(msg, size);
    } else {
        err = channel_.write_message(msg, size);
    }
    if (err)
        report_refused(msg, err);
}

// The module refused our reply `msg` with `err`. ENOENT is harmless: the caller left (a signal,
// or its device was removed meanwhile).
void KernelReplyBatch::report_refused(const std::byte *msg, int err)
{
    if (err == ENOENT)
        return;
    fusd_reply head;
    std::memcpy(&head, msg, sizeof head);
    LoopImpl::log_error(path_ + ": the fusd module refused a reply (request " + std::to_string(head.id) +
                        ", result " + std::to_string(head.result) + "): " + std::strerror(err));
}

// FUSD_IOC_EXCHANGE failed with `err`, `unsent` (if any) not written. Cannot happen with a sane
// module; answer the old way from now on rather than lose the reply.
void KernelReplyBatch::exchange_failed(int err, const std::byte *unsent, std::size_t size)
{
    LoopImpl::log_error(path_ + ": FUSD_IOC_EXCHANGE failed (" + std::strerror(err) + "); using read() and write()");
    channel_.stop_exchange();
    if (unsent)
        if (int refused = channel_.write_message(unsent, size))
            report_refused(unsent, refused);
}

} // namespace fusd::detail
