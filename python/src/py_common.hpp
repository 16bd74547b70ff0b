// SPDX-License-Identifier: MIT
//
// The pieces every part of the Python binding shares: Python references that may be dropped on
// any thread, and the token that says whether a Loop still exists.
//
// Why pybind11 and not cffi over the classic C API: the C++ API is the whole API (Requests kept
// and answered later from any thread, File readiness, Terminal, reply_retry), and its callbacks
// must take and drop the GIL at precise points (released while the loop waits and while a reply
// goes to the kernel, taken for a callback). pybind11 does that in C++ beside the calls; cffi
// would need a second, C-shaped API of libfusd kept in step with the C++ one.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <shared_mutex>

namespace fusd::python {

namespace py = pybind11;

// A Python object held by C++ code that may drop it on a thread without the GIL (the loop's
// thread, a library-owned File state freed after release): its destructor takes the GIL. During
// interpreter shutdown the object is leaked instead: taking the GIL then would hang.
struct PyRef {
    py::object obj;
    explicit PyRef(py::object o) : obj(std::move(o)) {}
    PyRef(const PyRef &) = delete;
    PyRef &operator=(const PyRef &) = delete;
    ~PyRef()
    {
        if (!obj)
            return;
        if (!Py_IsInitialized() || _Py_IsFinalizing()) {
            obj.release();
            return;
        }
        py::gil_scoped_acquire gil;
        obj = py::object();
    }
};

// Whether the Loop behind a Request, File or Device still exists: their accessors touch library
// state that dies with the Loop. Readers hold `mutex` shared; Loop.close() takes it exclusively.
struct LoopLife {
    std::shared_mutex mutex;
    bool alive = true;
};

// Raises fusd.Error(ENODEV) when the loop is gone; else holds the loop alive while in scope.
class AliveGuard {
public:
    explicit AliveGuard(LoopLife &life);
private:
    std::shared_lock<std::shared_mutex> lock_;
};

[[noreturn]] void throw_errno(int errnum, const std::string &what); // fusd.Error(errnum, what)

} // namespace fusd::python
