# SPDX-License-Identifier: MIT
# Tests written the way a user of the fake_device fixture writes them: plain file I/O, ioctl,
# and pyserial against a fake serial port.
import array
import errno
import fcntl
import os
import struct

import pytest

import fusd

# _IOWR('S', 1, int): a made-up "scale a number" command of a sensor.
SENSOR_SCALE = (3 << 30) | (4 << 16) | (ord("S") << 8) | 1


def test_a_sensor_read_written_and_asked_by_ioctl(fake_device, devname):
    state = {"threshold": b""}

    def write(req):
        state["threshold"] = req.data
        return len(req.data)

    def ioctl(req):
        if req.ioctl_command != SENSOR_SCALE:
            raise OSError(errno.ENOTTY, "unknown command")
        (value,) = struct.unpack("i", req.data)
        return struct.pack("i", value * 10)

    dev = fake_device(devname, read=lambda req: b"21.5\n", write=write, ioctl=ioctl)
    with open(dev.path, "rb", buffering=0) as f:
        assert f.read(100) == b"21.5\n"
    with open(dev.path, "wb", buffering=0) as f:
        f.write(b"30")
    assert state["threshold"] == b"30"
    with open(dev.path, "rb", buffering=0) as f:
        buf = array.array("i", [7])
        assert fcntl.ioctl(f.fileno(), SENSOR_SCALE, buf, True) == 0
        assert buf[0] == 70
        with pytest.raises(OSError) as e:
            fcntl.ioctl(f.fileno(), SENSOR_SCALE + 1, buf, True)
        assert e.value.errno == errno.ENOTTY


def test_pyserial_talks_to_a_fake_modem(fake_device, devname, backend):
    if backend == "fuse":
        pytest.skip("a FUSE node is a regular file, never a terminal (see fusd(3py))")
    serial = pytest.importorskip("serial")
    tty = fusd.Terminal()
    pending = bytearray()  # what the modem has said, not read yet (pyserial reads byte by byte)

    def open_(req):
        req.file.notify(fusd.WRITABLE)  # nothing to read yet: select() waits
        return 0

    def write(req):
        if req.data.strip() == b"AT":
            pending.extend(b"OK\r\n")
            req.file.notify(fusd.READABLE | fusd.WRITABLE)
        return len(req.data)

    def read(req):
        if not pending:
            raise OSError(errno.EAGAIN, "nothing to read")
        out = bytes(pending[:req.size])
        del pending[:req.size]
        req.file.notify(fusd.WRITABLE | (fusd.READABLE if pending else 0))
        return out

    def ioctl(req):
        if not tty.answer_ioctl(req):
            raise OSError(errno.ENOTTY, "not a terminal ioctl")

    dev = fake_device(devname, open=open_, read=read, write=write, ioctl=ioctl)
    with serial.Serial(dev.path, 115200, timeout=1) as port:
        port.write(b"AT\r\n")
        assert port.readline() == b"OK\r\n"
    assert tty.speed == 115200
