// fake_input: an evdev input device (a keyboard with the keys A, B and Enter), as the kernel's
// input layer shows one in /dev/input/eventN. Each open file is a client with its own queue of
// events; what a client writes (struct input_event records, as on a real evdev node) is stamped
// with the time and goes to every client, the writer included. evtest, python3-evdev and
// libevdev read it as they would a real device: the EVIOCG* ioctls are _IOC-encoded, so every
// backend that carries ioctls brings them with their sizes.
//   sudo ./fake_input /dev/fake-event0      then: evtest /dev/fake-event0
#include <algorithm>
#include <cstring>
#include <deque>
#include <fusd/fusd.hpp>
#include <iostream>
#include <string_view>
#include <vector>

#include <linux/input.h>
#include <time.h>

namespace {

constexpr std::string_view kName = "fusd fake keyboard";
constexpr std::string_view kPhys = "fusd/input0";

struct Client {
    std::deque<input_event> events;
    std::deque<fusd::Request> readers; // reads waiting for events
    std::shared_ptr<fusd::File> file;
};

struct Keyboard {
    std::vector<std::shared_ptr<Client>> clients;
};

Keyboard &keyboard_of(fusd::Request &req) { return *std::static_pointer_cast<Keyboard>(req.device().state()); }
Client &client_of(fusd::Request &req) { return *std::static_pointer_cast<Client>(req.file().state()); }

void serve_readers(Client &c)
{
    while (!c.readers.empty() && !c.events.empty()) {
        fusd::Request &r = c.readers.front();
        std::size_t n = std::min(r.size() / sizeof(input_event), c.events.size());
        std::vector<input_event> out(c.events.begin(), c.events.begin() + std::ptrdiff_t(n));
        c.events.erase(c.events.begin(), c.events.begin() + std::ptrdiff_t(n));
        r.reply_data({reinterpret_cast<const std::byte *>(out.data()), n * sizeof(input_event)});
        c.readers.pop_front();
    }
    c.file->notify(fusd::ready::writable | (c.events.empty() ? 0 : fusd::ready::readable));
}

// A bitmap of `bits` bits, in longs as evdev hands them out, with `set` set; at most `len` bytes.
std::vector<std::byte> bitmap(std::size_t bits, std::initializer_list<unsigned> set, std::size_t len)
{
    std::vector<std::byte> map((bits + 63) / 64 * 8);
    for (unsigned b : set)
        map[b / 8] |= std::byte(1u << (b % 8));
    map.resize(std::min(map.size(), len));
    return map;
}

// An answer of evdev's kind for variable-length reads: the bytes, and their count as the result.
void reply_bytes(fusd::Request &req, std::span<const std::byte> bytes)
{
    auto n = std::min(bytes.size(), req.size());
    req.reply_ioctl(int(n), bytes.first(n));
}

void reply_string(fusd::Request &req, std::string_view s)
{
    std::vector<std::byte> bytes(s.size() + 1); // with its NUL
    std::memcpy(bytes.data(), s.data(), s.size());
    reply_bytes(req, bytes);
}

void ioctl(fusd::Request req)
{
    const std::uint32_t cmd = req.ioctl_command();
    if (_IOC_TYPE(cmd) != 'E')
        return req.reply_error(ENOTTY);
    switch (cmd) {
    case EVIOCGVERSION: {
        int version = EV_VERSION;
        return req.reply_ioctl(0, {reinterpret_cast<const std::byte *>(&version), sizeof version});
    }
    case EVIOCGID: {
        input_id id{BUS_VIRTUAL, 0xf5d0, 0x0001, 0x0100};
        return req.reply_ioctl(0, {reinterpret_cast<const std::byte *>(&id), sizeof id});
    }
    case EVIOCGEFFECTS: { // force-feedback effects it can hold at once
        int none = 0;
        return req.reply_ioctl(0, {reinterpret_cast<const std::byte *>(&none), sizeof none});
    }
    case EVIOCGRAB:
    case EVIOCSCLOCKID:
        return req.reply_ok();
    }
    if (_IOC_DIR(cmd) != _IOC_READ)
        return req.reply_error(EINVAL);
    const unsigned nr = _IOC_NR(cmd);
    const std::size_t len = _IOC_SIZE(cmd);
    switch (nr) {
    case _IOC_NR(EVIOCGNAME(0)): return reply_string(req, kName);
    case _IOC_NR(EVIOCGPHYS(0)): return reply_string(req, kPhys);
    case _IOC_NR(EVIOCGUNIQ(0)): return req.reply_error(ENOENT); // none, as for most devices
    case _IOC_NR(EVIOCGPROP(0)): return reply_bytes(req, bitmap(INPUT_PROP_CNT, {}, len));
    case _IOC_NR(EVIOCGKEY(0)): return reply_bytes(req, bitmap(KEY_CNT, {}, len)); // no key held
    case _IOC_NR(EVIOCGLED(0)): return reply_bytes(req, bitmap(LED_CNT, {}, len));
    case _IOC_NR(EVIOCGSND(0)): return reply_bytes(req, bitmap(SND_CNT, {}, len));
    case _IOC_NR(EVIOCGSW(0)): return reply_bytes(req, bitmap(SW_CNT, {}, len));
    }
    if (nr >= _IOC_NR(EVIOCGBIT(0, 0)) && nr < _IOC_NR(EVIOCGBIT(EV_MAX + 1, 0))) {
        switch (nr - _IOC_NR(EVIOCGBIT(0, 0))) {
        case 0: return reply_bytes(req, bitmap(EV_CNT, {EV_SYN, EV_KEY}, len));
        case EV_KEY: return reply_bytes(req, bitmap(KEY_CNT, {KEY_A, KEY_B, KEY_ENTER}, len));
        case EV_REL: return reply_bytes(req, bitmap(REL_CNT, {}, len));
        case EV_ABS: return reply_bytes(req, bitmap(ABS_CNT, {}, len));
        case EV_MSC: return reply_bytes(req, bitmap(MSC_CNT, {}, len));
        case EV_SW: return reply_bytes(req, bitmap(SW_CNT, {}, len));
        case EV_LED: return reply_bytes(req, bitmap(LED_CNT, {}, len));
        case EV_SND: return reply_bytes(req, bitmap(SND_CNT, {}, len));
        case EV_FF: return reply_bytes(req, bitmap(FF_CNT, {}, len));
        default: return req.reply_error(EINVAL);
        }
    }
    req.reply_error(EINVAL); // EVIOCGABS and the rest: no absolute axes, no force feedback
}

} // namespace

int main(int argc, char **argv)
{
    fusd::Callbacks cb;
    cb.open = [](fusd::Request req) {
        auto c = std::make_shared<Client>();
        c->file = req.file().keep();
        keyboard_of(req).clients.push_back(c);
        req.file().state() = c;
        req.file().notify(fusd::ready::writable);
        req.reply_ok();
    };
    cb.release = [](fusd::Request req) {
        auto c = std::static_pointer_cast<Client>(req.file().state());
        std::erase(keyboard_of(req).clients, c);
        c->file.reset(); // it held its own File
        req.reply_ok();
    };
    cb.read = [](fusd::Request req) {
        Client &c = client_of(req);
        if (req.size() < sizeof(input_event))
            return req.reply_error(EINVAL);
        if (c.events.empty() && req.nonblocking())
            return req.reply_again();
        c.readers.push_back(std::move(req));
        serve_readers(c);
    };
    cb.write = [](fusd::Request req) { // whole events, stamped now, to every client
        const std::size_t n = req.data().size() / sizeof(input_event);
        if (n == 0)
            return req.reply_error(EINVAL);
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        Keyboard &kb = keyboard_of(req);
        for (std::size_t i = 0; i < n; i++) {
            input_event ev;
            std::memcpy(&ev, req.data().data() + i * sizeof ev, sizeof ev);
            ev.input_event_sec = now.tv_sec;
            ev.input_event_usec = now.tv_nsec / 1000;
            for (auto &c : kb.clients)
                c->events.push_back(ev);
        }
        req.reply_written(n * sizeof(input_event));
        for (auto &c : kb.clients)
            serve_readers(*c);
    };
    cb.ioctl = [](fusd::Request req) { ioctl(std::move(req)); };
    cb.interrupt = [](fusd::File &file, std::uint64_t id) {
        auto &c = *std::static_pointer_cast<Client>(file.state());
        std::erase_if(c.readers, [id](const fusd::Request &r) { return !r || r.id() == id; });
    };
    try {
        fusd::Loop loop;
        fusd::DeviceOptions options;
        options.name = argc > 1 ? argv[1] : "fake-event0";
        options.mode = 0666;
        fusd::Device &dev = loop.add(options, cb);
        dev.state() = std::make_shared<Keyboard>();
        std::cout << "serving " << dev.path() << " on " << fusd::to_string(dev.backend()) << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << "fake_input: " << e.what() << "\n";
        return 1;
    }
}
