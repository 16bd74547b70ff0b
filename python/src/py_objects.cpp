// SPDX-License-Identifier: MIT
#include "py_loop.hpp"

#include <cerrno>

namespace fusd::python {

AliveGuard::AliveGuard(LoopLife &life) : lock_(life.mutex)
{
    if (!life.alive)
        throw_errno(ENODEV, "fusd: the loop is closed");
}

// ---- File -------------------------------------------------------------------------------------

std::uint64_t PyFile::id() const { AliveGuard g(*life_); return file_->id(); }
unsigned PyFile::flags() const { AliveGuard g(*life_); return file_->flags(); }
fusd::Caller PyFile::opener() const { AliveGuard g(*life_); return file_->opener(); }
void PyFile::notify(unsigned events) { AliveGuard g(*life_); file_->notify(events); }
unsigned PyFile::readiness() const { AliveGuard g(*life_); return file_->readiness(); }
bool PyFile::released() const
{
    std::shared_lock lock(life_->mutex);
    return !life_->alive || file_->released();
}

py::object PyFile::state() const
{
    AliveGuard g(*life_);
    const std::shared_ptr<void> &s = file_->state();
    return s ? static_cast<PyRef *>(s.get())->obj : py::none();
}

void PyFile::set_state(py::object value)
{
    AliveGuard g(*life_);
    // The library drops it after release, on the loop's thread: PyRef takes the GIL for that.
    file_->state() = std::shared_ptr<void>(new PyRef(std::move(value)), [](void *p) { delete static_cast<PyRef *>(p); });
}

// ---- Device -----------------------------------------------------------------------------------

std::shared_ptr<PyLoop> PyDevice::loop() const { return loop_.lock(); }
std::uint64_t PyDevice::calls() const { return with_device([](fusd::Device &d) { return d.calls(); }); }
std::size_t PyDevice::open_files() const { return with_device([](fusd::Device &d) { return d.open_files(); }); }
void PyDevice::notify_all(unsigned events) { with_device([events](fusd::Device &d) { d.notify_all(events); }); }
bool PyDevice::removed() const
{
    try {
        with_device([](fusd::Device &) {});
        return false;
    } catch (const fusd::Error &) {
        return true;
    }
}

// ---- Request ----------------------------------------------------------------------------------

PyRequest::PyRequest(fusd::Request req, std::shared_ptr<DeviceInfo> device, std::weak_ptr<PyLoop> loop,
                     std::shared_ptr<LoopLife> life)
    : id(req.id()), op(req.op()), flags(req.flags()), size(req.size()), ioctl_command(req.ioctl_command()),
      ioctl_argument(req.ioctl_argument()), map_offset(req.map_offset()), map_prot(req.map_prot()),
      map_flags(req.map_flags()), caller(req.caller()), data_(req.text()), file_(req.file().keep()),
      device_(std::move(device)), loop_(std::move(loop)), life_(std::move(life))
{
    req_ = std::move(req);
}

PyRequest::~PyRequest()
{
    // Unanswered: the fusd::Request answers EIO as it goes. That reaches the backend, so not
    // with the GIL held (another thread may hold a library lock and wait for the GIL).
    fusd::Request last;
    {
        std::lock_guard lock(mutex_);
        last = std::move(req_);
    }
    if (last && PyGILState_Check()) {
        py::gil_scoped_release nogil;
        last = fusd::Request();
    }
}

void PyRequest::throw_answered() { throw std::runtime_error("fusd: this request was already answered"); }

bool PyRequest::answered() const
{
    std::lock_guard lock(mutex_);
    return !req_;
}

bool PyRequest::interrupted() const
{
    std::lock_guard lock(mutex_);
    std::shared_lock alive(life_->mutex);
    return req_ && life_->alive && req_.interrupted();
}

bool PyRequest::traced() const
{
    std::lock_guard lock(mutex_);
    std::shared_lock alive(life_->mutex);
    return req_ && life_->alive && req_.traced();
}

void PyRequest::trace_note(std::string note)
{
    std::lock_guard lock(mutex_);
    std::shared_lock alive(life_->mutex);
    if (req_ && life_->alive)
        req_.trace_note(std::move(note));
}

template <class F> void PyRequest::answer(F &&fn)
{
    fusd::Request r;
    {
        std::lock_guard lock(mutex_);
        if (!req_)
            throw_answered();
        r = std::move(req_);
    }
    try {
        fn(r);
    } catch (...) {
        if (r) { // refused before it was sent: still the caller's to answer
            std::lock_guard lock(mutex_);
            req_ = std::move(r);
        }
        throw;
    }
}

void PyRequest::reply_ok() { answer([](fusd::Request &r) { r.reply_ok(); }); }
void PyRequest::reply_error(int errnum) { answer([errnum](fusd::Request &r) { r.reply_error(errnum); }); }
void PyRequest::reply_data(std::string_view bytes) { answer([bytes](fusd::Request &r) { r.reply_data(bytes); }); }
void PyRequest::reply_written(std::size_t count) { answer([count](fusd::Request &r) { r.reply_written(count); }); }
void PyRequest::reply_ioctl(int result, std::string_view out)
{
    answer([&](fusd::Request &r) {
        r.reply_ioctl(result, std::span(reinterpret_cast<const std::byte *>(out.data()), out.size()));
    });
}
void PyRequest::reply_map(int fd, std::uint64_t offset) { answer([=](fusd::Request &r) { r.reply_map(fd, offset); }); }
void PyRequest::reply_retry(const std::vector<fusd::MemoryRange> &in, const std::vector<fusd::MemoryRange> &out)
{
    answer([&](fusd::Request &r) { r.reply_retry(in, out); });
}

void PyRequest::fail_if_unanswered(int errnum)
{
    fusd::Request r;
    {
        std::lock_guard lock(mutex_);
        r = std::move(req_);
    }
    if (r)
        r.reply_error(errnum);
}

} // namespace fusd::python
