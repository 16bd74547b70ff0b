// fake_i2c: an I2C bus, as i2c-dev shows one (/dev/i2c-N), with two chips on it, at 0x48 and
// 0x50: each 256 byte registers and a register pointer that a write's first byte sets and every
// byte read or written moves on. i2cdetect, i2cget, i2cset, i2cdump and i2ctransfer use it as
// they would a real bus.
//   sudo ./fake_i2c /dev/i2c-9      then: i2cdetect -y 9; i2cset -y 9 0x50 0x10 0x42; i2cget -y 9 0x50 0x10
//
// I2C_SMBUS and I2C_RDWR pass structures that point to more of the caller's memory (the data
// byte or block; the messages and their buffers). The driver asks for it with
// Request::reply_retry(): the call comes back with those bytes, and the bytes of the final
// reply go back to the buffers the caller reads into. Each round is told apart by how much
// data came (the call carries no state of its own between rounds).
#include <array>
#include <cstring>
#include <fusd/fusd.hpp>
#include <iostream>
#include <map>
#include <vector>

#include <linux/i2c-dev.h>
#include <linux/i2c.h>

namespace {

struct Chip {
    std::array<std::uint8_t, 256> regs{};
    std::uint8_t pointer = 0;
};
using Bus = std::map<unsigned, Chip>;

constexpr unsigned long kFuncs = I2C_FUNC_I2C | I2C_FUNC_SMBUS_QUICK | I2C_FUNC_SMBUS_BYTE |
                                 I2C_FUNC_SMBUS_BYTE_DATA | I2C_FUNC_SMBUS_WORD_DATA | I2C_FUNC_SMBUS_I2C_BLOCK;

struct Open {
    unsigned address = 0; // I2C_SLAVE: per open file, as in i2c-dev
};

Bus &bus_of(fusd::Request &req) { return *std::static_pointer_cast<Bus>(req.device().state()); }
Open &open_of(fusd::Request &req) { return *std::static_pointer_cast<Open>(req.file().state()); }

template <class T> T at(std::span<const std::byte> data, std::size_t offset)
{
    T value{};
    std::memcpy(&value, data.data() + offset, sizeof value);
    return value;
}

template <class T> std::span<const std::byte> bytes_of(const T &value)
{
    return {reinterpret_cast<const std::byte *>(&value), sizeof value};
}

// ---- I2C_SMBUS -------------------------------------------------------------------------------

// How many bytes of the caller's i2c_smbus_data a transfer reads and writes, as i2c-dev does.
struct SmbusData {
    std::size_t size = 0;
    bool in = false, out = false;
};

SmbusData smbus_data(const i2c_smbus_ioctl_data &s)
{
    bool read = s.read_write == I2C_SMBUS_READ;
    if (s.size == I2C_SMBUS_QUICK || (s.size == I2C_SMBUS_BYTE && !read))
        return {};
    std::size_t n = s.size == I2C_SMBUS_BYTE || s.size == I2C_SMBUS_BYTE_DATA ? 1
                    : s.size == I2C_SMBUS_WORD_DATA || s.size == I2C_SMBUS_PROC_CALL ? 2
                                                                                      : sizeof(i2c_smbus_data);
    bool both = s.size == I2C_SMBUS_PROC_CALL || s.size == I2C_SMBUS_I2C_BLOCK_DATA;
    return {n, !read || both, read || s.size == I2C_SMBUS_PROC_CALL};
}

void smbus(fusd::Request req)
{
    const auto s = at<i2c_smbus_ioctl_data>(req.data(), 0);
    const SmbusData d = smbus_data(s);
    const std::size_t head = sizeof s;
    if (d.size && req.data().size() == head && req.size() == 0) { // round 1: ask for the data
        fusd::MemoryRange arg{req.ioctl_argument(), head}, data{std::uint64_t(std::uintptr_t(s.data)), d.size};
        std::vector<fusd::MemoryRange> in{arg};
        if (d.in)
            in.push_back(data);
        std::vector<fusd::MemoryRange> out;
        if (d.out)
            out.push_back(data);
        return req.reply_retry(in, out);
    }
    auto it = bus_of(req).find(open_of(req).address);
    if (it == bus_of(req).end())
        return req.reply_error(ENXIO); // no chip answers at that address
    Chip &chip = it->second;
    i2c_smbus_data data{};
    if (d.in)
        std::memcpy(&data, req.data().data() + head, d.size);
    bool read = s.read_write == I2C_SMBUS_READ;
    switch (s.size) {
    case I2C_SMBUS_QUICK:
        return req.reply_ok();
    case I2C_SMBUS_BYTE:
        if (read)
            data.byte = chip.regs[chip.pointer++];
        else
            chip.pointer = s.command;
        break;
    case I2C_SMBUS_BYTE_DATA:
        chip.pointer = s.command;
        if (read)
            data.byte = chip.regs[chip.pointer++];
        else
            chip.regs[chip.pointer++] = data.byte;
        break;
    case I2C_SMBUS_WORD_DATA:
        chip.pointer = s.command;
        if (read) {
            data.word = chip.regs[chip.pointer] | chip.regs[std::uint8_t(chip.pointer + 1)] << 8;
            chip.pointer += 2;
        } else {
            chip.regs[chip.pointer++] = data.word & 0xff;
            chip.regs[chip.pointer++] = data.word >> 8;
        }
        break;
    case I2C_SMBUS_I2C_BLOCK_DATA: {
        std::size_t n = std::min<std::size_t>(data.block[0], I2C_SMBUS_BLOCK_MAX);
        chip.pointer = s.command;
        for (std::size_t i = 1; i <= n; i++)
            if (read)
                data.block[i] = chip.regs[chip.pointer++];
            else
                chip.regs[chip.pointer++] = data.block[i];
        break;
    }
    default:
        return req.reply_error(EOPNOTSUPP); // not in kFuncs
    }
    req.reply_ioctl(0, d.out ? bytes_of(data).first(d.size) : std::span<const std::byte>{});
}

// ---- I2C_RDWR --------------------------------------------------------------------------------

void rdwr(fusd::Request req)
{
    const auto rw = at<i2c_rdwr_ioctl_data>(req.data(), 0);
    const std::size_t head = sizeof rw, table = rw.nmsgs * sizeof(i2c_msg);
    if (rw.nmsgs == 0 || rw.nmsgs > I2C_RDWR_IOCTL_MAX_MSGS)
        return req.reply_error(EINVAL);
    fusd::MemoryRange arg{req.ioctl_argument(), head}, msgs_range{std::uint64_t(std::uintptr_t(rw.msgs)), table};
    if (req.data().size() == head) // round 1: ask for the messages
        return req.reply_retry(std::vector{arg, msgs_range});
    std::vector<i2c_msg> msgs(rw.nmsgs);
    std::memcpy(msgs.data(), req.data().data() + head, table);
    std::vector<fusd::MemoryRange> in{arg, msgs_range}, out;
    std::size_t in_bytes = 0, out_bytes = 0;
    for (const i2c_msg &m : msgs) {
        if (m.len > 8192)
            return req.reply_error(EINVAL);
        if (m.len == 0)
            continue;
        ((m.flags & I2C_M_RD) ? out : in).push_back({std::uint64_t(std::uintptr_t(m.buf)), m.len});
        ((m.flags & I2C_M_RD) ? out_bytes : in_bytes) += m.len;
    }
    if (req.data().size() == head + table && req.size() == 0 && (in_bytes || out_bytes))
        return req.reply_retry(in, out); // round 2: ask for the buffers
    // Last round: the written bytes follow the messages, in order; the read bytes go back so.
    const std::byte *written = req.data().data() + head + table;
    std::vector<std::byte> read;
    for (const i2c_msg &m : msgs) {
        auto it = bus_of(req).find(m.addr);
        if (it == bus_of(req).end())
            return req.reply_error(ENXIO);
        Chip &chip = it->second;
        if (m.flags & I2C_M_RD) {
            for (unsigned i = 0; i < m.len; i++)
                read.push_back(std::byte(chip.regs[chip.pointer++]));
        } else if (m.len) {
            chip.pointer = std::uint8_t(written[0]);
            for (unsigned i = 1; i < m.len; i++)
                chip.regs[chip.pointer++] = std::uint8_t(written[i]);
            written += m.len;
        }
    }
    req.reply_ioctl(int(rw.nmsgs), read);
}

void ioctl(fusd::Request req)
{
    switch (req.ioctl_command()) {
    case I2C_FUNCS:
        if (req.size() < sizeof kFuncs) // FUSE: see libfusd(3)
            return req.reply_error(ENOTTY);
        return req.reply_ioctl(0, bytes_of(kFuncs));
    case I2C_SLAVE:
    case I2C_SLAVE_FORCE:
        if (req.ioctl_argument() > 0x7f)
            return req.reply_error(EINVAL);
        open_of(req).address = unsigned(req.ioctl_argument());
        return req.reply_ok();
    case I2C_TENBIT:
        return req.ioctl_argument() ? req.reply_error(EINVAL) : req.reply_ok(); // 7-bit addresses only
    case I2C_PEC:
    case I2C_RETRIES:
    case I2C_TIMEOUT:
        return req.reply_ok();
    case I2C_SMBUS:
    case I2C_RDWR:
        if (req.data().size() < 16) // FUSE: see libfusd(3)
            return req.reply_error(ENOTTY);
        return req.ioctl_command() == I2C_SMBUS ? smbus(std::move(req)) : rdwr(std::move(req));
    default:
        return req.reply_error(ENOTTY);
    }
}

} // namespace

int main(int argc, char **argv)
{
    fusd::Callbacks cb;
    cb.open = [](fusd::Request req) {
        req.file().state() = std::make_shared<Open>();
        req.reply_ok();
    };
    cb.ioctl = [](fusd::Request req) { ioctl(std::move(req)); };
    try {
        fusd::Loop loop;
        fusd::DeviceOptions options;
        options.name = argc > 1 ? argv[1] : "i2c-9";
        options.mode = 0666;
        fusd::Device &dev = loop.add(options, cb);
        auto bus = std::make_shared<Bus>();
        (*bus)[0x48];
        (*bus)[0x50];
        dev.state() = bus;
        std::cout << "serving " << dev.path() << " on " << fusd::to_string(dev.backend()) << std::endl;
        loop.run();
    } catch (const fusd::Error &e) {
        std::cerr << "fake_i2c: " << e.what() << "\n";
        return 1;
    }
}
