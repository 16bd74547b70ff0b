// SPDX-License-Identifier: MIT
//
// fusd.Terminal: fusd::Terminal for Python drivers, so that a device answered by Python is a
// serial port to stty, termios and pyserial (kernel backend and CUSE; FUSE cannot be a terminal).
#include "py_objects.hpp"

#include <fusd/terminal.hpp>

namespace fusd::python {

namespace {
// The hooks are Python functions called from inside answer_ioctl (GIL held there).
struct PyTerminal {
    fusd::Terminal terminal;
    py::object readable = py::none();    // readable(request) -> int
    py::object flush_input = py::none(); // flush_input(request)
    py::object changed = py::none();     // changed()
    std::shared_ptr<PyRequest> current;  // the request answer_ioctl is answering

    PyTerminal()
    {
        terminal.readable = [this](fusd::Request &) -> std::size_t {
            return readable.is_none() ? 0 : readable(current).cast<std::size_t>();
        };
        terminal.flush_input = [this](fusd::Request &) {
            if (!flush_input.is_none())
                flush_input(current);
        };
        terminal.changed = [this] {
            if (!changed.is_none())
                changed();
        };
    }
};
} // namespace

void bind_terminal(py::module_ &m)
{
    py::class_<PyTerminal>(m, "Terminal", "A serial port's settings and terminal ioctls (fusd::Terminal).")
        .def(py::init<>())
        .def("answer_ioctl", [](PyTerminal &t, std::shared_ptr<PyRequest> req) {
                 t.current = req;
                 struct Clear { PyTerminal &t; ~Clear() { t.current.reset(); } } clear{t};
                 return req->with_request([&](fusd::Request &r) { return t.terminal.answer_ioctl(r); });
             }, py::arg("request"), "Answers a terminal ioctl (True), else leaves the request alone (False).")
        .def("refuses", [](PyTerminal &t, std::shared_ptr<PyRequest> req) {
                 return req->with_request([&](fusd::Request &r) { return t.terminal.refuses(r); });
             }, py::arg("open_request"))
        .def_readwrite("readable", &PyTerminal::readable)
        .def_readwrite("flush_input", &PyTerminal::flush_input)
        .def_readwrite("changed", &PyTerminal::changed)
        .def_property_readonly("speed", [](const PyTerminal &t) { return t.terminal.speed(); })
        .def_property_readonly("data_bits", [](const PyTerminal &t) { return t.terminal.data_bits(); })
        .def_property_readonly("parity", [](const PyTerminal &t) { return std::string(1, t.terminal.parity()); })
        .def_property_readonly("stop_bits", [](const PyTerminal &t) { return t.terminal.stop_bits(); })
        .def_property_readonly("modem_lines", [](const PyTerminal &t) { return t.terminal.modem_lines(); })
        .def("set_inputs", [](PyTerminal &t, unsigned bits) { t.terminal.set_inputs(bits); }, py::arg("tiocm_bits"))
        .def_property_readonly("exclusive", [](const PyTerminal &t) { return t.terminal.exclusive(); })
        .def("describe", [](const PyTerminal &t) { return t.terminal.describe(); });
}

} // namespace fusd::python
