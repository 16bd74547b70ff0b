// SPDX-License-Identifier: MIT
//
// fusd.Loop: a fusd::Loop driven from Python, three ways: run() on the calling thread (Ctrl-C
// works), start() on a thread of its own, or fd() + dispatch() from the caller's event loop
// (asyncio's add_reader). The GIL is released while the loop waits and taken for each callback.
#pragma once

#include "py_objects.hpp"

#include <atomic>
#include <future>
#include <thread>

namespace fusd::python {

// Where a callback's failure goes (GIL held): handler(exception) if set, else
// sys.unraisablehook. The exception carries a note naming the callback and what the caller got.
// Shared by the Loop and its callbacks, which may outlive it.
struct ErrorSink {
    PyRef handler{py::none()};
    void report(py::object exception, const std::string &context);
};

class PyLoop : public std::enable_shared_from_this<PyLoop> {
public:
    explicit PyLoop(bool handle_signals);
    ~PyLoop();

    PyDevice add(const fusd::DeviceOptions &options, const py::dict &handlers);
    void remove(const PyDevice &device);
    std::vector<PyDevice> devices();
    int fd() const;
    void dispatch();
    int run();
    void start();
    void stop();
    void close();
    bool closed() const { return !loop_; }
    bool running() const { return thread_.joinable() && !stopping_.load(); }
    void watch(int fd, std::uint32_t events, py::object handler);
    void modify(int fd, std::uint32_t events);
    void unwatch(int fd);
    void post(py::object fn);

    // Where a callback's failure goes: see ErrorSink.
    const std::shared_ptr<ErrorSink> &errors() const { return errors_; }

    // Runs fn on the loop's thread (or here, when no thread runs it or this is it); the caller
    // holds no GIL. Exceptions come back to the caller.
    template <class F> auto on_loop(F &&fn) -> decltype(fn());
    fusd::Loop &loop() const;
    const std::shared_ptr<LoopLife> &life() const { return life_; }

private:
    void serve(bool until_empty, bool check_signals);
    fusd::Callbacks callbacks(const py::dict &handlers, const std::shared_ptr<DeviceInfo> &info);
    void thread_main();
    std::shared_ptr<ErrorSink> errors_ = std::make_shared<ErrorSink>();
    std::unique_ptr<fusd::Loop> loop_;
    std::shared_ptr<LoopLife> life_ = std::make_shared<LoopLife>();
    std::thread thread_;
    std::thread::id thread_id_;
    std::mutex thread_mutex_;          // posting to the thread vs. the thread stopping
    std::atomic<bool> stopping_{false};
    std::vector<std::shared_ptr<DeviceInfo>> infos_; // loop thread only
};

template <class F> auto PyLoop::on_loop(F &&fn) -> decltype(fn())
{
    using R = decltype(fn());
    std::unique_lock lock(thread_mutex_);
    if (thread_.joinable() && std::this_thread::get_id() != thread_id_) {
        if (!stopping_.load()) {
            std::packaged_task<R()> task(std::forward<F>(fn));
            auto result = task.get_future();
            loop().post([&task] { task(); });
            lock.unlock();
            return result.get(); // the thread drains what was posted before it stops
        }
        thread_.join(); // stopped: once it is done, act here
    }
    lock.unlock();
    return fn();
}

template <class F> auto PyDevice::with_device(F &&fn) const -> decltype(fn(std::declval<fusd::Device &>()))
{
    std::shared_ptr<PyLoop> loop = loop_.lock();
    if (!loop || loop->closed())
        throw_errno(ENODEV, info_->path + ": its loop is closed");
    return loop->on_loop([&]() -> decltype(fn(std::declval<fusd::Device &>())) {
        for (fusd::Device *d : loop->loop().devices())
            if (d == info_->device)
                return fn(*d);
        throw_errno(ENODEV, info_->path + ": removed");
    });
}

} // namespace fusd::python
