// SPDX-License-Identifier: MIT
//
// fusd._fusd: the Python module over libfusd's C++ API (see fusd(3py) in man/fusd-python.3).
// What it adds to the C++ API: a Loop that runs on a thread of its own, callbacks that may
// answer by returning a value or raising OSError, and errors as OSError subclasses with errno.
#include "py_loop.hpp"

#include <fusd/terminal.hpp>

#include <pybind11/functional.h>
#include <pybind11/stl.h>

namespace py = pybind11;
using namespace fusd::python;

namespace fusd::python {
static PyObject *g_error_type = nullptr;

[[noreturn]] void throw_errno(int errnum, const std::string &what) { throw fusd::Error(errnum, what); }
} // namespace fusd::python

static fusd::Backend backend_of(const std::string &name)
{
    auto b = fusd::parse_backend(name);
    if (!b)
        throw fusd::Error(EINVAL, "fusd: unknown backend '" + name + "' (one of " + fusd::backend_names() + ")");
    return *b;
}

static std::vector<fusd::MemoryRange> ranges_of(const std::vector<std::pair<std::uint64_t, std::size_t>> &pairs)
{
    std::vector<fusd::MemoryRange> out;
    for (auto [address, length] : pairs)
        out.push_back({address, length});
    return out;
}

namespace fusd::python {
void bind_terminal(py::module_ &m); // py_terminal.cpp
}

PYBIND11_MODULE(_fusd, m)
{
    m.doc() = "fusd: answer the system calls made on a file in /dev from Python (see fusd(3py))";

    g_error_type = PyErr_NewExceptionWithDoc(
        "fusd.Error", "A libfusd failure: an OSError whose errno says why (EEXIST, EACCES, ENODEV...).",
        PyExc_OSError, nullptr);
    m.attr("Error") = py::handle(g_error_type);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p)
                std::rethrow_exception(p);
        } catch (const fusd::Error &e) {
            py::object args = py::make_tuple(e.code().value(), e.what());
            PyErr_SetObject(g_error_type, args.ptr());
        } catch (const std::system_error &e) {
            py::object args = py::make_tuple(e.code().value(), e.what());
            PyErr_SetObject(PyExc_OSError, args.ptr());
        } catch (const std::logic_error &e) {
            if (dynamic_cast<const std::length_error *>(&e) || dynamic_cast<const std::invalid_argument *>(&e))
                PyErr_SetString(PyExc_ValueError, e.what());
            else
                PyErr_SetString(PyExc_RuntimeError, e.what());
        }
    });

    py::enum_<fusd::Op>(m, "Op", "The system call a Request stands for.")
        .value("open", fusd::Op::open)
        .value("release", fusd::Op::release)
        .value("read", fusd::Op::read)
        .value("write", fusd::Op::write)
        .value("ioctl", fusd::Op::ioctl)
        .value("poll", fusd::Op::poll)
        .value("interrupt", fusd::Op::interrupt)
        .value("mmap", fusd::Op::mmap);

    m.attr("READABLE") = fusd::ready::readable;
    m.attr("WRITABLE") = fusd::ready::writable;
    m.attr("ERROR") = fusd::ready::error;
    m.attr("HANGUP") = fusd::ready::hangup;
    m.attr("RETRY_RANGES_MAX") = fusd::kRetryRangesMax;
    m.attr("RETRY_BYTES_MAX") = fusd::kRetryBytesMax;

    py::class_<fusd::Caller>(m, "Caller", "Who made a call: pid, uid, gid (filesystem ids), real_uid, real_gid.")
        .def_readonly("pid", &fusd::Caller::pid)
        .def_readonly("uid", &fusd::Caller::uid)
        .def_readonly("gid", &fusd::Caller::gid)
        .def_readonly("real_uid", &fusd::Caller::real_uid)
        .def_readonly("real_gid", &fusd::Caller::real_gid)
        .def("__repr__", [](const fusd::Caller &c) {
            return "Caller(pid=" + std::to_string(c.pid) + ", uid=" + std::to_string(c.uid) +
                   ", gid=" + std::to_string(c.gid) + ")";
        });

    py::class_<fusd::IoctlShape>(m, "IoctlShape")
        .def_readonly("dir", &fusd::IoctlShape::dir)
        .def_readonly("size", &fusd::IoctlShape::size)
        .def_readonly("legacy", &fusd::IoctlShape::legacy);
    m.def("ioctl_shape", &fusd::ioctl_shape, py::arg("command"),
          "How an ioctl command's argument travels: dir (_IOC_READ/_IOC_WRITE bits), size, legacy.");
    m.def("device_path", &fusd::device_path, py::arg("name"), "'clock' -> '/dev/clock'; fusd.Error for a bad name.");

    py::class_<fusd::BackendStatus>(m, "BackendStatus")
        .def_property_readonly("backend", [](const fusd::BackendStatus &s) { return std::string(fusd::to_string(s.backend)); })
        .def_readonly("usable", &fusd::BackendStatus::usable)
        .def_readonly("reason", &fusd::BackendStatus::reason)
        .def_readonly("differences", &fusd::BackendStatus::differences);
    m.def("probe_backends", &fusd::probe_backends, "What each backend can do on this machine.");

    py::class_<PyFile>(m, "File", "One open file of a device.")
        .def_property_readonly("id", &PyFile::id)
        .def_property_readonly("flags", &PyFile::flags)
        .def_property_readonly("opener", &PyFile::opener)
        .def("notify", &PyFile::notify, py::arg("events"), py::call_guard<py::gil_scoped_release>(),
             "Publish readiness (fusd.READABLE | fusd.WRITABLE ...): wakes poll/select. Any thread.")
        .def_property_readonly("readiness", &PyFile::readiness)
        .def_property_readonly("released", &PyFile::released)
        .def_property("state", &PyFile::state, &PyFile::set_state, "Per-open state for the driver: any object.")
        .def("__eq__", [](const PyFile &a, const PyFile &b) { return a.file() == b.file(); })
        .def("__hash__", [](const PyFile &f) { return std::hash<void *>()(f.file().get()); });

    py::class_<PyDevice>(m, "Device", "One node in /dev served by a Loop.")
        .def_property_readonly("path", &PyDevice::path)
        .def_property_readonly("backend", &PyDevice::backend)
        .def_property_readonly("calls", [](const PyDevice &d) {
            py::gil_scoped_release nogil; // a property ignores call_guard; it waits for the loop's thread
            return d.calls();
        })
        .def_property_readonly("open_files", [](const PyDevice &d) {
            py::gil_scoped_release nogil; // a property ignores call_guard; it waits for the loop's thread
            return d.open_files();
        })
        .def_property_readonly("removed", [](const PyDevice &d) {
            py::gil_scoped_release nogil; // a property ignores call_guard; it waits for the loop's thread
            return d.removed();
        })
        .def("notify_all", &PyDevice::notify_all, py::arg("events"), py::call_guard<py::gil_scoped_release>())
        .def("__repr__", [](const PyDevice &d) { return "<fusd.Device " + d.path() + " (" + d.backend() + ")>"; });

    py::class_<PyRequest, std::shared_ptr<PyRequest>>(m, "Request",
        "One system call in flight: answer it exactly once, now or later, from any thread.")
        .def_readonly("id", &PyRequest::id)
        .def_readonly("op", &PyRequest::op)
        .def_readonly("flags", &PyRequest::flags)
        .def_property_readonly("nonblocking", [](const PyRequest &r) { return (r.flags & O_NONBLOCK) != 0; })
        .def_readonly("size", &PyRequest::size)
        .def_property_readonly("data", &PyRequest::data)
        .def_readonly("ioctl_command", &PyRequest::ioctl_command)
        .def_readonly("ioctl_argument", &PyRequest::ioctl_argument)
        .def_readonly("map_offset", &PyRequest::map_offset)
        .def_readonly("map_prot", &PyRequest::map_prot)
        .def_readonly("map_flags", &PyRequest::map_flags)
        .def_readonly("caller", &PyRequest::caller)
        .def_property_readonly("file", &PyRequest::file)
        .def_property_readonly("device", &PyRequest::device)
        .def_property_readonly("answered", &PyRequest::answered)
        .def_property_readonly("interrupted", &PyRequest::interrupted)
        .def_property_readonly("traced", &PyRequest::traced)
        .def("trace_note", &PyRequest::trace_note, py::arg("note"))
        .def("reply_ok", &PyRequest::reply_ok, py::call_guard<py::gil_scoped_release>())
        .def("reply_error", &PyRequest::reply_error, py::arg("errno"), py::call_guard<py::gil_scoped_release>())
        .def("reply_again", [](PyRequest &r) { r.reply_error(EAGAIN); }, py::call_guard<py::gil_scoped_release>())
        .def("reply_data", [](PyRequest &r, py::object data) {
                 std::string bytes = py::isinstance<py::str>(data) ? data.cast<std::string>()
                                                                   : std::string(py::bytes(data));
                 py::gil_scoped_release nogil;
                 r.reply_data(bytes);
             }, py::arg("data"))
        .def("reply_written", &PyRequest::reply_written, py::arg("count"), py::call_guard<py::gil_scoped_release>())
        .def("reply_ioctl", [](PyRequest &r, int result, py::bytes out) {
                 std::string bytes = out;
                 py::gil_scoped_release nogil;
                 r.reply_ioctl(result, bytes);
             }, py::arg("result") = 0, py::arg("out") = py::bytes())
        .def("reply_map", &PyRequest::reply_map, py::arg("fd"), py::arg("offset") = 0,
             py::call_guard<py::gil_scoped_release>())
        .def("reply_retry", [](PyRequest &r, const std::vector<std::pair<std::uint64_t, std::size_t>> &in,
                               const std::vector<std::pair<std::uint64_t, std::size_t>> &out) {
                 auto i = ranges_of(in), o = ranges_of(out);
                 py::gil_scoped_release nogil;
                 r.reply_retry(i, o);
             }, py::arg("in_ranges"), py::arg("out_ranges") = std::vector<std::pair<std::uint64_t, std::size_t>>())
        .def("__repr__", [](const PyRequest &r) {
            return "<fusd.Request " + std::to_string(r.id) + " " + std::string(fusd::to_string(r.op)) +
                   " size=" + std::to_string(r.size) + (r.answered() ? " answered>" : ">");
        });

    py::class_<ErrorSink, std::shared_ptr<ErrorSink>>(m, "_ErrorSink");

    py::class_<PyLoop, std::shared_ptr<PyLoop>>(m, "Loop", "One event loop serving devices (see fusd(3py)).")
        .def(py::init<bool>(), py::arg("handle_signals") = false)
        .def("add", [](PyLoop &l, const std::string &name, mode_t mode, std::optional<uid_t> owner,
                       std::optional<gid_t> group, const std::string &backend, const std::string &command_line,
                       const std::string &classic_class, const std::string &classic_devname, py::kwargs callbacks) {
                 fusd::DeviceOptions o;
                 o.name = name;
                 o.mode = mode;
                 o.owner = owner;
                 o.group = group;
                 o.backend = backend_of(backend);
                 o.command_line = command_line;
                 o.classic_class = classic_class;
                 o.classic_devname = classic_devname;
                 return l.add(o, callbacks);
             }, py::arg("name"), py::kw_only(), py::arg("mode") = 0660, py::arg("owner") = py::none(),
             py::arg("group") = py::none(), py::arg("backend") = "auto", py::arg("command_line") = "",
             py::arg("classic_class") = "", py::arg("classic_devname") = "",
             "add(name, *, mode=0o660, backend='auto', open=, release=, read=, write=, ioctl=, mmap=, interrupt=)")
        .def("remove", &PyLoop::remove, py::arg("device"), py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("devices", &PyLoop::devices)
        .def("fd", &PyLoop::fd)
        .def("dispatch", &PyLoop::dispatch, py::call_guard<py::gil_scoped_release>())
        .def("run", &PyLoop::run, py::call_guard<py::gil_scoped_release>())
        .def("start", &PyLoop::start)
        .def("stop", &PyLoop::stop)
        .def("close", &PyLoop::close, py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("closed", &PyLoop::closed)
        .def_property_readonly("running", &PyLoop::running)
        .def("watch", &PyLoop::watch, py::arg("fd"), py::arg("events"), py::arg("handler"))
        .def("modify", &PyLoop::modify, py::arg("fd"), py::arg("events"), py::call_guard<py::gil_scoped_release>())
        .def("unwatch", &PyLoop::unwatch, py::arg("fd"), py::call_guard<py::gil_scoped_release>())
        .def("post", &PyLoop::post, py::arg("fn"))
        .def_property("on_error", [](const PyLoop &l) { return l.errors()->handler.obj; },
                      [](PyLoop &l, py::object fn) { l.errors()->handler.obj = std::move(fn); })
        .def("__enter__", [](py::object self) { return self; })
        .def("__exit__", [](PyLoop &l, py::args) {
            py::gil_scoped_release nogil;
            l.close();
        });

    bind_terminal(m);
}
