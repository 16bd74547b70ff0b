// SPDX-License-Identifier: MIT
//
// fusdctl serve: OutputBuffer, the command output a Session holds until a reader takes it.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>

namespace fusdctl::serve {

// One fixed block: taken from the front, filled at the back. When full, the command waits in
// write(2) until a reader takes some (its stdout is no longer watched).
class OutputBuffer {
public:
    static constexpr std::size_t capacity = 64 * 1024;

    OutputBuffer() : data_(std::make_unique<std::byte[]>(capacity)) {}

    std::size_t size() const { return end_ - begin_; }
    bool full() const { return size() == capacity; }

    // The room at the back (what is left moves to the front first when the back is used up);
    // empty when full. commit() what was written into it.
    std::span<std::byte> space() {
        if (end_ == capacity && begin_ > 0) {
            std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        return {data_.get() + end_, capacity - end_};
    }
    void commit(std::size_t n) { end_ += n; }

    // Up to max bytes from the front; consume() what was used of them.
    std::span<const std::byte> front(std::size_t max) const {
        return {data_.get() + begin_, max < size() ? max : size()};
    }
    void consume(std::size_t n) {
        begin_ += n;
        if (begin_ == end_)
            clear();
    }
    void clear() { begin_ = end_ = 0; }

private:
    std::unique_ptr<std::byte[]> data_;
    std::size_t begin_ = 0, end_ = 0;
};

} // namespace fusdctl::serve
