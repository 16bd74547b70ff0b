# SPDX-License-Identifier: MIT
# examples/python/echo.py, run as a user runs it: a blocking read answered by a later write,
# O_NONBLOCK, and the node gone after SIGTERM.
import errno
import os
import subprocess
import sys
import threading

GUARD = 120  # hang guard, seconds
ECHO = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "echo.py")


def test_echo_example(devname):
    proc = subprocess.Popen([sys.executable, ECHO, devname], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == f"serving {devname}\n"
        fd = os.open(devname, os.O_RDWR)
        try:
            got = {}
            reader = threading.Thread(target=lambda: got.setdefault("data", os.read(fd, 100)))
            reader.start()
            reader.join(0.3)
            assert reader.is_alive()  # nothing written yet: the read waits
            os.write(fd, b"hi\n")
            reader.join(GUARD)
            assert got["data"] == b"hi\n"
            os.set_blocking(fd, False)
            try:
                os.read(fd, 10)
                assert False, "a nonblocking read with nothing to read returned"
            except OSError as e:
                assert e.errno == errno.EAGAIN
        finally:
            os.close(fd)
        proc.terminate()
        assert proc.wait(GUARD) == 0
        assert not os.path.lexists(devname)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(GUARD)
