// SPDX-License-Identifier: MIT
//
// The Python faces of a Request, a File and a Device. Each keeps what it needs to be used safely
// from any Python thread, also after its call was answered or its Loop closed.
#pragma once

#include "py_common.hpp"

#include <fusd/fusd.hpp>

#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace fusd::python {

class PyLoop;

// One registered device as the callbacks know it: filled in when Loop::add returns.
struct DeviceInfo {
    fusd::Device *device = nullptr;
    std::string path;
    fusd::Backend backend = fusd::Backend::automatic;
};

class PyFile {
public:
    PyFile(std::shared_ptr<fusd::File> file, std::shared_ptr<LoopLife> life)
        : file_(std::move(file)), life_(std::move(life)) {}
    std::uint64_t id() const;
    unsigned flags() const;
    fusd::Caller opener() const;
    void notify(unsigned events);          // GIL released by the binding
    unsigned readiness() const;
    bool released() const;
    py::object state() const;
    void set_state(py::object value);
    const std::shared_ptr<fusd::File> &file() const { return file_; }

private:
    std::shared_ptr<fusd::File> file_;
    std::shared_ptr<LoopLife> life_;
};

class PyDevice {
public:
    PyDevice(std::shared_ptr<DeviceInfo> info, std::weak_ptr<PyLoop> loop) : info_(std::move(info)), loop_(std::move(loop)) {}
    const std::string &path() const { return info_->path; }
    std::string backend() const { return std::string(fusd::to_string(info_->backend)); }
    std::uint64_t calls() const;
    std::size_t open_files() const;
    void notify_all(unsigned events);
    bool removed() const;
    const std::shared_ptr<DeviceInfo> &info() const { return info_; }
    std::shared_ptr<PyLoop> loop() const;

    // Runs fn(device) on the loop's thread while the device is still registered; else fusd.Error(ENODEV).
    template <class F> auto with_device(F &&fn) const -> decltype(fn(std::declval<fusd::Device &>()));

private:
    std::shared_ptr<DeviceInfo> info_;
    std::weak_ptr<PyLoop> loop_;
};

// A Request in Python: the call's description is copied when it arrives (so it can be read from
// any thread, also once answered), the answer goes through the one fusd::Request under a mutex.
class PyRequest {
public:
    PyRequest(fusd::Request req, std::shared_ptr<DeviceInfo> device, std::weak_ptr<PyLoop> loop,
              std::shared_ptr<LoopLife> life);
    ~PyRequest();

    std::uint64_t id;
    fusd::Op op;
    unsigned flags;
    std::size_t size;
    py::bytes data() const { return py::bytes(data_); }
    std::string_view raw_data() const { return data_; }
    std::uint32_t ioctl_command;
    std::uint64_t ioctl_argument;
    std::uint64_t map_offset;
    int map_prot;
    int map_flags;
    fusd::Caller caller;

    bool answered() const;
    bool interrupted() const;
    bool traced() const;
    void trace_note(std::string note);
    PyFile file() const { return PyFile(file_, life_); }
    PyDevice device() const { return PyDevice(device_, loop_); }

    // The answers (the binding releases the GIL around them). Raises RuntimeError when already
    // answered; a refused answer (ValueError...) leaves the request unanswered.
    void reply_ok();
    void reply_error(int errnum);
    void reply_data(std::string_view bytes);
    void reply_written(std::size_t count);
    void reply_ioctl(int result, std::string_view out);
    void reply_map(int fd, std::uint64_t offset);
    void reply_retry(const std::vector<fusd::MemoryRange> &in, const std::vector<fusd::MemoryRange> &out);
    // An error answer only if nobody answered yet (after a callback failed).
    void fail_if_unanswered(int errnum);
    // Runs fn on the held fusd::Request (for fusd::Terminal::answer_ioctl), under the mutex.
    template <class F> auto with_request(F &&fn) -> decltype(fn(std::declval<fusd::Request &>()))
    {
        std::lock_guard lock(mutex_);
        if (!req_)
            throw_answered();
        return fn(req_);
    }

private:
    template <class F> void answer(F &&fn);
    [[noreturn]] static void throw_answered();
    mutable std::mutex mutex_;
    fusd::Request req_;
    std::string data_;
    std::shared_ptr<fusd::File> file_;
    std::shared_ptr<DeviceInfo> device_;
    std::weak_ptr<PyLoop> loop_;
    std::shared_ptr<LoopLife> life_;
};

} // namespace fusd::python
