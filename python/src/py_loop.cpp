// SPDX-License-Identifier: MIT
#include "py_loop.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>

namespace fusd::python {

namespace {

// The callbacks a device may have, by the keyword that names them in Loop.add().
constexpr std::pair<const char *, fusd::Op> kRequestCallbacks[] = {
    {"open", fusd::Op::open},   {"release", fusd::Op::release}, {"read", fusd::Op::read},
    {"write", fusd::Op::write}, {"ioctl", fusd::Op::ioctl},     {"mmap", fusd::Op::mmap},
};

// How often Loop.run() lets Python run its signal handlers while nothing happens.
constexpr int kSignalTickMs = 100;

bool interpreter_gone() { return !Py_IsInitialized() || _Py_IsFinalizing(); }

// Bytes from what a callback returned: bytes, bytearray, memoryview (any buffer) or str (UTF-8).
std::optional<std::string> as_bytes(py::handle value)
{
    if (py::isinstance<py::str>(value))
        return value.cast<std::string>();
    if (PyObject_CheckBuffer(value.ptr())) {
        py::bytes b = py::reinterpret_steal<py::bytes>(PyBytes_FromObject(value.ptr()));
        if (!b)
            throw py::error_already_set();
        return std::string(b);
    }
    return std::nullopt;
}

// A callback that returned a value instead of answering: that value is the answer (see fusd(3py)).
void answer_with(PyRequest &req, py::handle value)
{
    auto refuse = [&](const char *expected) {
        throw py::type_error(std::string("fusd: a ") + std::string(fusd::to_string(req.op)) + " callback returned " +
                             std::string(py::str(py::type::of(value).attr("__name__"))) + "; expected " + expected +
                             " (or None after answering the request, or keeping it to answer later)");
    };
    bool is_int = py::isinstance<py::int_>(value) && !py::isinstance<py::bool_>(value);
    switch (req.op) {
    case fusd::Op::open:
    case fusd::Op::release:
        if (!is_int || value.cast<long long>() != 0)
            refuse("0");
        {
            py::gil_scoped_release nogil;
            req.reply_ok();
        }
        return;
    case fusd::Op::read:
        if (auto bytes = as_bytes(value)) {
            bytes->resize(std::min(bytes->size(), req.size)); // as a file's read: at most what was asked
            py::gil_scoped_release nogil;
            req.reply_data(*bytes);
            return;
        }
        refuse("bytes or str");
    case fusd::Op::write:
        if (!is_int)
            refuse("the number of bytes taken (int)");
        {
            auto n = value.cast<std::size_t>();
            py::gil_scoped_release nogil;
            req.reply_written(n);
        }
        return;
    case fusd::Op::ioctl: {
        int result = 0;
        std::optional<std::string> out;
        if (is_int) {
            result = value.cast<int>();
        } else if (py::isinstance<py::tuple>(value) && py::len(value) == 2) {
            auto t = py::reinterpret_borrow<py::tuple>(value);
            result = t[0].cast<int>();
            if (!(out = as_bytes(t[1])))
                refuse("an int, bytes, or (int, bytes)");
        } else if (!(out = as_bytes(value))) {
            refuse("an int, bytes, or (int, bytes)");
        }
        py::gil_scoped_release nogil;
        req.reply_ioctl(result, out ? *out : std::string());
        return;
    }
    default:
        refuse("None");
    }
}

// errno of an OSError a callback raised to refuse its call, or 0.
int refusal_errno(py::error_already_set &e)
{
    if (!e.matches(PyExc_OSError))
        return 0;
    py::object err = e.value().attr("errno");
    if (!py::isinstance<py::int_>(err))
        return 0;
    int n = err.cast<int>();
    return n > 0 && n <= 4095 ? n : 0;
}

py::object exception_of(py::error_already_set &e)
{
    py::object value = e.value();
    if (e.trace())
        PyException_SetTraceback(value.ptr(), e.trace().ptr());
    return value;
}

} // namespace

void ErrorSink::report(py::object exception, const std::string &context)
{
    try {
        if (py::hasattr(exception, "add_note"))
            exception.attr("add_note")(context);
        if (!handler.obj.is_none()) {
            handler.obj(exception);
            return;
        }
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("fusd: the loop's on_error handler");
    }
    PyErr_SetObject(reinterpret_cast<PyObject *>(Py_TYPE(exception.ptr())), exception.ptr());
    PyErr_WriteUnraisable(py::str(context).ptr());
}

// One call reaching a Python callback: on the loop's thread, GIL not held.
static void invoke(const std::shared_ptr<PyRef> &fn, fusd::Request request, const std::shared_ptr<DeviceInfo> &info,
                   const std::weak_ptr<PyLoop> &loop, const std::shared_ptr<LoopLife> &life,
                   const std::shared_ptr<ErrorSink> &errors)
{
    if (interpreter_gone())
        return; // the Request answers EIO as it goes
    py::gil_scoped_acquire gil;
    std::string what = std::string(fusd::to_string(request.op())) + " callback of " + info->path;
    auto req = std::make_shared<PyRequest>(std::move(request), info, loop, life);
    py::object handle = py::cast(req);
    auto fail = [&](int errnum) {
        py::gil_scoped_release nogil;
        req->fail_if_unanswered(errnum);
    };
    try {
        py::object result = fn->obj(handle);
        if (!result.is_none()) {
            answer_with(*req, result);
        } else if (!req->answered() && handle.ref_count() <= 1) {
            errors->report(py::reinterpret_steal<py::object>(PyObject_CallFunction(
                               PyExc_RuntimeError, "s", "fusd: the callback returned without answering its request "
                                                        "or keeping it to answer later")),
                           "fusd: in the " + what + "; the caller got EIO");
            fail(EIO);
        }
    } catch (py::error_already_set &e) {
        int errnum = refusal_errno(e);
        if (errnum && !req->answered()) {
            fail(errnum); // raising OSError(errno, ...) is how a callback refuses a call
            return;
        }
        // Reported first: whoever waits for the caller's EIO then finds the report there.
        errors->report(exception_of(e), "fusd: in the " + what + "; the caller got EIO");
        fail(EIO);
    } catch (py::builtin_exception &e) { // TypeError for a wrong return value, ...
        e.set_error();
        py::error_already_set error;
        errors->report(exception_of(error), "fusd: in the " + what + "; the caller got EIO");
        fail(EIO);
    } catch (const std::exception &e) {
        errors->report(py::reinterpret_steal<py::object>(PyObject_CallFunction(PyExc_RuntimeError, "s", e.what())),
                       "fusd: in the " + what + "; the caller got EIO");
        fail(EIO);
    }
}

PyLoop::PyLoop(bool handle_signals) : loop_(std::make_unique<fusd::Loop>(handle_signals)) {}

PyLoop::~PyLoop()
{
    if (PyGILState_Check()) {
        py::gil_scoped_release nogil;
        close();
    } else {
        close();
    }
}

fusd::Loop &PyLoop::loop() const
{
    if (!loop_)
        throw_errno(ENODEV, "fusd: the loop is closed");
    return *loop_;
}

fusd::Callbacks PyLoop::callbacks(const py::dict &handlers, const std::shared_ptr<DeviceInfo> &info)
{
    fusd::Callbacks cb;
    std::weak_ptr<PyLoop> self = weak_from_this();
    auto life = life_;
    auto errors = errors_;
    for (auto [name, op] : kRequestCallbacks) {
        if (!handlers.contains(name) || handlers[name].is_none())
            continue; // the library's default answer
        auto fn = std::make_shared<PyRef>(py::reinterpret_borrow<py::object>(handlers[name]));
        std::function<void(fusd::Request)> call = [fn, info, self, life, errors](fusd::Request req) {
            invoke(fn, std::move(req), info, self, life, errors);
        };
        switch (op) {
        case fusd::Op::open: cb.open = call; break;
        case fusd::Op::release: cb.release = call; break;
        case fusd::Op::read: cb.read = call; break;
        case fusd::Op::write: cb.write = call; break;
        case fusd::Op::ioctl: cb.ioctl = call; break;
        default: cb.mmap = call; break;
        }
    }
    if (handlers.contains("interrupt") && !handlers["interrupt"].is_none()) {
        auto fn = std::make_shared<PyRef>(py::reinterpret_borrow<py::object>(handlers["interrupt"]));
        cb.interrupt = [fn, info, life, errors](fusd::File &file, std::uint64_t id) {
            if (interpreter_gone())
                return;
            py::gil_scoped_acquire gil;
            try {
                fn->obj(PyFile(file.keep(), life), id);
            } catch (py::error_already_set &e) {
                errors->report(exception_of(e), "fusd: in the interrupt callback of " + info->path);
            }
        };
    }
    for (auto item : handlers) {
        auto key = item.first.cast<std::string>();
        bool known = key == "interrupt";
        for (auto [name, op] : kRequestCallbacks)
            known = known || key == name;
        if (!known)
            throw py::type_error("fusd: Loop.add() got an unknown callback '" + key + "'");
    }
    return cb;
}

PyDevice PyLoop::add(const fusd::DeviceOptions &options, const py::dict &handlers)
{
    auto info = std::make_shared<DeviceInfo>();
    fusd::Callbacks cb = callbacks(handlers, info);
    {
        py::gil_scoped_release nogil;
        on_loop([&] {
            fusd::Device &dev = loop().add(options, std::move(cb));
            info->device = &dev;
            info->path = dev.path();
            info->backend = dev.backend();
            std::erase_if(infos_, [this](const auto &i) {
                auto live = loop().devices();
                return std::find(live.begin(), live.end(), i->device) == live.end();
            });
            infos_.push_back(info);
        });
    }
    return PyDevice(info, weak_from_this());
}

void PyLoop::remove(const PyDevice &device)
{
    on_loop([&] {
        for (fusd::Device *d : loop().devices())
            if (d == device.info()->device)
                loop().remove(*d);
        std::erase(infos_, device.info());
    });
}

std::vector<PyDevice> PyLoop::devices()
{
    std::vector<std::shared_ptr<DeviceInfo>> found;
    {
        py::gil_scoped_release nogil;
        on_loop([&] {
            for (fusd::Device *d : loop().devices())
                for (auto &i : infos_)
                    if (i->device == d)
                        found.push_back(i);
        });
    }
    std::vector<PyDevice> out;
    for (auto &i : found)
        out.emplace_back(i, weak_from_this());
    return out;
}

int PyLoop::fd() const { return loop().fd(); }

void PyLoop::dispatch()
{
    if (thread_.joinable() && !stopping_.load())
        throw std::runtime_error("fusd: Loop.dispatch() while the loop runs on its own thread (start())");
    loop().dispatch();
}

void PyLoop::serve(bool until_empty, bool check_signals)
{
    fusd::Loop &l = loop();
    for (;;) {
        if (stopping_.load() || l.stop_signal())
            return;
        if (until_empty && l.devices().empty())
            return;
        pollfd p{l.fd(), POLLIN, 0};
        // Python runs its signal handlers on the main thread only when asked: a signal delivered
        // to another of the process's threads does not interrupt this poll, so look every tick.
        int n = ::poll(&p, 1, check_signals ? kSignalTickMs : -1);
        if (n < 0 && errno != EINTR)
            throw_errno(errno, std::string("fusd: poll: ") + std::strerror(errno));
        if (check_signals && n <= 0) {
            py::gil_scoped_acquire gil;
            if (PyErr_CheckSignals() != 0)
                throw py::error_already_set(); // KeyboardInterrupt, or what a handler raised
            continue;
        }
        if (n > 0)
            l.dispatch();
    }
}

int PyLoop::run()
{
    if (thread_.joinable() && !stopping_.load())
        throw std::runtime_error("fusd: Loop.run() while the loop runs on its own thread (start())");
    stopping_.store(false);
    serve(true, true);
    return loop().stop_signal();
}

void PyLoop::thread_main()
{
    // Python handles signals on its main thread; this one takes none of them.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    try {
        serve(false, false);
    } catch (py::error_already_set &e) {
        py::gil_scoped_acquire gil;
        errors_->report(exception_of(e), "fusd: the loop's thread stopped");
    } catch (const std::exception &e) {
        if (!interpreter_gone()) {
            py::gil_scoped_acquire gil;
            errors_->report(py::reinterpret_steal<py::object>(PyObject_CallFunction(PyExc_RuntimeError, "s", e.what())),
                            "fusd: the loop's thread stopped");
        }
    }
    {
        std::lock_guard lock(thread_mutex_);
        stopping_.store(true);
    }
    try {
        loop().dispatch(); // what on_loop() posted before the stop
    } catch (...) {
    }
}

void PyLoop::start()
{
    std::lock_guard lock(thread_mutex_);
    loop();
    if (thread_.joinable()) {
        if (!stopping_.load())
            throw std::runtime_error("fusd: Loop.start(): the loop already runs on its own thread");
        thread_.join();
    }
    stopping_.store(false);
    thread_ = std::thread([this] { thread_main(); });
    thread_id_ = thread_.get_id();
}

void PyLoop::stop()
{
    {
        std::lock_guard lock(thread_mutex_);
        stopping_.store(true);
    }
    if (loop_)
        loop_->stop();
}

void PyLoop::close()
{
    if (!loop_)
        return;
    if (thread_.joinable() && std::this_thread::get_id() == thread_id_)
        throw std::runtime_error("fusd: Loop.close() from one of its callbacks");
    stop();
    if (thread_.joinable())
        thread_.join();
    {
        std::unique_lock lock(life_->mutex); // waits for a File or Request accessor to finish
        life_->alive = false;
    }
    loop_.reset(); // unregisters every device; waiting callers get EPIPE
    infos_.clear();
}

void PyLoop::watch(int fd, std::uint32_t events, py::object handler)
{
    auto fn = std::make_shared<PyRef>(std::move(handler));
    auto errors = errors_;
    py::gil_scoped_release nogil;
    on_loop([&] {
        loop().watch(fd, events, [fn, errors, fd](std::uint32_t got) {
            if (interpreter_gone())
                return;
            py::gil_scoped_acquire gil;
            try {
                fn->obj(got);
            } catch (py::error_already_set &e) {
                errors->report(exception_of(e), "fusd: in the watch handler of fd " + std::to_string(fd));
            }
        });
    });
}

void PyLoop::modify(int fd, std::uint32_t events) { on_loop([&] { loop().modify(fd, events); }); }
void PyLoop::unwatch(int fd) { on_loop([&] { loop().unwatch(fd); }); }

void PyLoop::post(py::object fn)
{
    auto ref = std::make_shared<PyRef>(std::move(fn));
    auto errors = errors_;
    loop().post([ref, errors] {
        if (interpreter_gone())
            return;
        py::gil_scoped_acquire gil;
        try {
            ref->obj();
        } catch (py::error_already_set &e) {
            errors->report(exception_of(e), "fusd: in a function given to Loop.post()");
        }
    });
}

} // namespace fusd::python
