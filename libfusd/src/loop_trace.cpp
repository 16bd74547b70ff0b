// SPDX-License-Identifier: MIT
//
// Tracing (fusdctl trace): the core's side. While the control server counts a subscriber
// (LoopImpl::tracing()), deliver() stamps each request with its arrival time and the caller's
// command; complete() and the transports' poll paths hand a record here, from any thread; the
// records queue under trace_mutex_ and the loop thread passes them to the control server, which
// sends them to its subscribers.
#include "control.hpp"
#include "loop_impl.hpp"

namespace fusd::detail {

void LoopImpl::trace(const RequestSlot &slot, int result)
{
    TraceRecord rec;
    rec.time_ns = realtime_ns();
    rec.device = slot.file->device->path;
    rec.pid = slot.caller.pid;
    rec.comm = slot.comm;
    rec.op = slot.interrupted.load() ? Op::interrupt : slot.op;
    rec.size = slot.op == Op::write ? slot.data_size : slot.size;
    rec.offset = slot.op == Op::mmap ? slot.map_offset : slot.offset;
    rec.ioctl = slot.ioctl_command;
    rec.result = result;
    rec.latency_us = std::uint64_t(monotonic_ns() - slot.start_ns) / 1000;
    rec.note = slot.trace_note;
    {
        std::lock_guard lock(trace_mutex_);
        if (trace_queue_.size() < 65536)
            trace_queue_.push_back(std::move(rec));
    }
    post([this] { flush_trace(); });
}

void LoopImpl::trace_poll(DeviceState &dev, const Caller &caller, unsigned events)
{
    if (!tracing())
        return;
    TraceRecord rec;
    rec.time_ns = realtime_ns();
    rec.device = dev.path;
    rec.pid = caller.pid;
    char comm[16] = {};
    read_comm(caller.pid, comm);
    rec.comm = comm;
    rec.op = Op::poll;
    rec.result = int(events);
    {
        std::lock_guard lock(trace_mutex_);
        trace_queue_.push_back(std::move(rec));
    }
    post([this] { flush_trace(); });
}

void LoopImpl::flush_trace()
{
    std::vector<TraceRecord> batch;
    {
        std::lock_guard lock(trace_mutex_);
        batch.swap(trace_queue_);
    }
    if (control_)
        for (auto &rec : batch)
            control_->emit(rec);
}

} // namespace fusd::detail
