# SPDX-License-Identifier: MIT
# The fusd package's promises, each a test that fails if it broke: errors carry errno both
# ways, answers may come later from another thread, a callback's exception answers EIO and
# is reported, caller identity, readiness, asyncio, per-open state.
import asyncio
import errno
import os
import select
import threading

import pytest

import fusd

# Hang guard for waits in these tests (seconds): far above any time seen, never a speed target.
GUARD = 120


def read_in_thread(path, size=100):
    """Read from path on another thread; returns (thread, result dict)."""
    result = {}

    def run():
        fd = os.open(path, os.O_RDONLY)
        try:
            result["data"] = os.read(fd, size)
        except OSError as e:
            result["errno"] = e.errno
        finally:
            os.close(fd)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def test_oserror_raised_by_a_callback_is_the_callers_errno(fake_device, devname):
    def read(req):
        raise OSError(errno.EBUSY, "sensor busy")

    def write(req):
        req.reply_error(errno.ENOSPC)

    dev = fake_device(devname, read=read, write=write)
    fd = os.open(dev.path, os.O_RDWR)
    try:
        with pytest.raises(OSError) as e:
            os.read(fd, 10)
        assert e.value.errno == errno.EBUSY
        with pytest.raises(OSError) as e:
            os.write(fd, b"x")
        assert e.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert fake_device.errors == []  # a refusal is an answer, not a failure


def test_library_errors_are_oserrors_with_errno(fake_device, devname):
    fake_device(devname)
    with pytest.raises(fusd.Error) as e:
        fake_device(devname)
    assert isinstance(e.value, OSError) and e.value.errno == errno.EEXIST
    with pytest.raises(OSError) as e:
        fake_device("/dev/../etc/passwd")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        fake_device(devname + "-b", backend="no-such-backend")
    assert e.value.errno == errno.EINVAL
    assert not os.path.lexists(devname + "-b")


def test_a_read_answered_later_from_another_thread(fake_device, devname):
    kept = []
    arrived = threading.Event()

    def read(req):
        kept.append(req)  # keep it: the answer comes from the worker below
        arrived.set()

    dev = fake_device(devname, read=read)
    reader, result = read_in_thread(dev.path)
    assert arrived.wait(GUARD)
    assert "data" not in result  # still waiting for its answer
    answered_on = []

    def worker():
        answered_on.append(threading.get_ident())
        kept[0].reply_data(b"later")

    w = threading.Thread(target=worker)
    w.start()
    w.join(GUARD)
    reader.join(GUARD)
    assert result == {"data": b"later"}
    assert answered_on and answered_on[0] != threading.get_ident()
    assert kept[0].answered
    with pytest.raises(RuntimeError):
        kept[0].reply_data(b"twice")


def test_an_exception_in_a_callback_answers_eio_and_is_reported(fake_device, devname):
    def read(req):
        raise ValueError("a bug in the test's fake")

    dev = fake_device(devname, read=read)
    fd = os.open(dev.path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as e:
            os.read(fd, 10)
        assert e.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert len(fake_device.errors) == 1
    err = fake_device.errors.pop()
    assert isinstance(err, ValueError) and "a bug in the test's fake" in str(err)
    assert any("read callback of " + dev.path in n for n in err.__notes__)


def test_a_callback_that_neither_answers_nor_keeps_its_request(fake_device, devname):
    dev = fake_device(devname, read=lambda req: None)
    fd = os.open(dev.path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as e:
            os.read(fd, 10)
        assert e.value.errno == errno.EIO
    finally:
        os.close(fd)
    err = fake_device.errors.pop()
    assert isinstance(err, RuntimeError) and "without answering" in str(err)


def test_a_wrong_return_value_is_reported(fake_device, devname):
    dev = fake_device(devname, read=lambda req: 42)
    fd = os.open(dev.path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as e:
            os.read(fd, 10)
        assert e.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert isinstance(fake_device.errors.pop(), TypeError)


def test_caller_identity(fake_device, devname):
    seen = {}

    def open_(req):
        seen["open"] = req.caller
        return 0

    def read(req):
        seen["read"] = req.caller
        seen["opener"] = req.file.opener
        return b"x"

    dev = fake_device(devname, open=open_, read=read)
    with open(dev.path, "rb", buffering=0) as f:
        f.read(1)
    for c in seen.values():
        assert (c.pid, c.uid, c.gid) == (os.getpid(), os.geteuid(), os.getegid())
        assert (c.real_uid, c.real_gid) == (os.getuid(), os.getgid())


def test_readiness_wakes_poll(fake_device, devname):
    files = []

    def open_(req):
        req.file.notify(fusd.WRITABLE)  # nothing to read yet
        files.append(req.file)
        return 0

    dev = fake_device(devname, open=open_, read=lambda req: b"ready")
    fd = os.open(dev.path, os.O_RDONLY)
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        assert p.poll(0) == []
        assert files[0].readiness == fusd.WRITABLE
        threading.Timer(0.2, files[0].notify, [fusd.READABLE | fusd.WRITABLE]).start()
        assert p.poll(GUARD * 1000) == [(fd, select.POLLIN)]
        assert os.read(fd, 10) == b"ready"
    finally:
        os.close(fd)


def test_ioctl_in_out_and_value(fake_device, devname):
    import fcntl
    iowr = (3 << 30) | (8 << 16) | (ord("Q") << 8) | 2   # _IOWR('Q', 2, 8 bytes)
    io = (ord("Q") << 8) | 3                               # _IO('Q', 3): the argument is a value
    seen = []

    def ioctl(req):
        seen.append((req.ioctl_command, req.size, req.data, req.ioctl_argument))
        if req.ioctl_command == iowr:
            return 5, req.data[::-1]
        return 7

    dev = fake_device(devname, ioctl=ioctl)
    shape = fusd.ioctl_shape(iowr)
    assert (shape.size, shape.legacy) == (8, False)
    with open(dev.path, "rb", buffering=0) as f:
        buf = bytearray(b"abcdefgh")
        assert fcntl.ioctl(f.fileno(), iowr, buf, True) == 5
        assert bytes(buf) == b"hgfedcba"
        assert fcntl.ioctl(f.fileno(), io, 1234) == 7
    assert seen[0][:3] == (iowr, 8, b"abcdefgh")
    assert seen[1][0] == io and seen[1][3] == 1234


def test_per_open_state(fake_device, devname):
    def open_(req):
        req.file.state = []
        return 0

    def write(req):
        req.file.state.append(req.data)
        return len(req.data)

    def read(req):
        return b"".join(req.file.state)

    dev = fake_device(devname, open=open_, write=write, read=read)
    a = os.open(dev.path, os.O_RDWR)
    b = os.open(dev.path, os.O_RDWR)
    try:
        os.write(a, b"one")
        os.write(b, b"two")
        assert os.read(a, 10) == b"one"
        assert os.read(b, 10) == b"two"
    finally:
        os.close(a)
        os.close(b)


def test_loop_in_asyncio(devname):
    async def main():
        with fusd.Loop() as loop:
            dev = loop.add(devname, mode=0o666, read=lambda req: b"from asyncio")
            aio = asyncio.get_running_loop()
            aio.add_reader(loop.fd(), loop.dispatch)
            try:
                def read():
                    with open(dev.path, "rb", buffering=0) as f:
                        return f.read(100)
                return await asyncio.wait_for(aio.run_in_executor(None, read), GUARD)
            finally:
                aio.remove_reader(loop.fd())

    assert asyncio.run(main()) == b"from asyncio"
    assert not os.path.lexists(devname)


def test_loop_run_ends_when_stopped_and_close_removes_the_node(devname):
    loop = fusd.Loop()
    dev = loop.add(devname, mode=0o666)
    assert [d.path for d in loop.devices] == [devname]
    threading.Timer(0.2, loop.stop).start()
    assert loop.run() == 0
    assert [d.path for d in loop.devices] == [devname]  # stopped, not removed (and not served:
    loop.close()                                          # on FUSE even a stat() would wait)
    assert not os.path.lexists(devname)
    assert dev.removed
    with pytest.raises(fusd.Error) as e:
        dev.calls
    assert e.value.errno == errno.ENODEV


def test_a_request_kept_past_the_loop_is_harmless(devname):
    kept = []
    arrived = threading.Event()

    def read(req):
        kept.append(req)
        arrived.set()

    loop = fusd.Loop()
    dev = loop.add(devname, mode=0o666, read=read)
    loop.start()
    reader, result = read_in_thread(dev.path)
    assert arrived.wait(GUARD)
    loop.close()
    reader.join(GUARD)
    assert not reader.is_alive()
    assert result.get("errno") in (errno.EPIPE, errno.ENODEV, errno.ECONNABORTED, errno.ENOTCONN)
    kept[0].reply_data(b"too late")  # a no-op, never a crash
    with pytest.raises(fusd.Error):
        kept[0].file.notify(fusd.READABLE)
