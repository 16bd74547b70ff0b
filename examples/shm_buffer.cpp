// shm_buffer: a camera-like frame buffer that callers mmap(2). The driver keeps the frame in a
// memfd and answers mmap with it, so the caller's mapping and the driver's are the same memory.
//   ioctl(fd, SHM_BUFFER_CAPTURE)  the driver fills the next frame; returns its number
//   read(fd, ...)                  the note a caller left at SHM_BUFFER_NOTE, as the driver reads it
// With --anonymous the frame is MAP_SHARED | MAP_ANONYMOUS memory answered by its address
// (reply_map_memory), as a classic FUSD driver's mmap member answers.
// mmap works on the kernel backend only; on CUSE and FUSE it fails with ENODEV.
//   sudo ./shm-buffer [/dev/shm-buffer] [--backend NAME] [--anonymous]
//   then: python3 -c 'import mmap,os; f=os.open("/dev/shm-buffer",os.O_RDWR); print(mmap.mmap(f,8192)[:8])'
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fusd/fusd.hpp>
#include <iostream>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define SHM_BUFFER_CAPTURE _IO('S', 1)

namespace {

constexpr std::size_t kFrameSize = 2 * 4096; // a multiple of every page size up to 8 KiB
constexpr std::size_t kNoteOffset = 4096;     // where a caller leaves a note for the driver

// The frame: a memfd, mapped here too so that the driver can fill it; or anonymous shared memory.
class FrameBuffer {
public:
    explicit FrameBuffer(bool anonymous)
    {
        if (!anonymous) {
            fd_ = memfd_create("shm-buffer", MFD_CLOEXEC);
            if (fd_ < 0 || ftruncate(fd_, kFrameSize) < 0)
                throw fusd::Error(errno, "shm-buffer: memfd");
        }
        void *p = mmap(nullptr, kFrameSize, PROT_READ | PROT_WRITE, MAP_SHARED | (anonymous ? MAP_ANONYMOUS : 0),
                       fd_, 0);
        if (p == MAP_FAILED)
            throw fusd::Error(errno, "shm-buffer: mapping the memfd");
        frame_ = static_cast<char *>(p);
        capture();
    }
    ~FrameBuffer()
    {
        munmap(frame_, kFrameSize);
        if (fd_ >= 0)
            close(fd_);
    }
    FrameBuffer(const FrameBuffer &) = delete;
    FrameBuffer &operator=(const FrameBuffer &) = delete;

    int fd() const { return fd_; } // -1 for anonymous memory
    const char *data() const { return frame_; }
    // The next frame: a header line, then a pattern, up to the note area.
    int capture()
    {
        ++number_;
        int n = std::snprintf(frame_, kNoteOffset, "frame %d\n", number_);
        for (std::size_t i = std::size_t(n); i < kNoteOffset; ++i)
            frame_[i] = char('a' + (i + std::size_t(number_)) % 26);
        return number_;
    }
    std::string note() const { return std::string(frame_ + kNoteOffset, strnlen(frame_ + kNoteOffset, kFrameSize - kNoteOffset)); }

private:
    int fd_ = -1;
    char *frame_ = nullptr;
    int number_ = 0;
};

} // namespace

int main(int argc, char **argv)
{
    try {
        fusd::DeviceOptions options;
        options.name = "shm-buffer";
        options.mode = 0666;
        bool anonymous = false;
        for (int i = 1; i < argc; ++i) {
            std::string arg = argv[i];
            if (arg == "--anonymous") {
                anonymous = true;
            } else if (arg == "--backend" && i + 1 < argc) {
                auto b = fusd::parse_backend(argv[++i]);
                if (!b)
                    throw fusd::Error(EINVAL, std::string("shm-buffer: no backend ") + argv[i]);
                options.backend = *b;
            } else {
                options.name = arg;
            }
        }
        FrameBuffer buffer(anonymous);
        fusd::Callbacks cb;
        cb.mmap = [&buffer](fusd::Request req) {
            if (buffer.fd() < 0) // anonymous: by address, as a classic driver answers
                return req.reply_map_memory(buffer.data(), kFrameSize);
            // The module checks the range against the memfd (ENXIO past its end).
            req.reply_map(buffer.fd(), req.map_offset());
        };
        cb.ioctl = [&buffer](fusd::Request req) {
            if (req.ioctl_command() != SHM_BUFFER_CAPTURE)
                return req.reply_error(ENOTTY);
            req.reply_ioctl(buffer.capture());
        };
        cb.read = [&buffer](fusd::Request req) {
            std::string note = buffer.note() + "\n";
            req.reply_data(std::string_view(note).substr(0, req.size()));
        };
        fusd::Loop loop;
        fusd::Device &dev = loop.add(options, cb);
        std::cout << "serving " << dev.path() << " (" << fusd::to_string(dev.backend()) << ")" << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
