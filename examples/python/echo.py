#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""echo: what one open writes, the same open reads back, as examples/echo.cpp, in Python.

A read with nothing to read waits (O_NONBLOCK: EAGAIN) until that open writes; poll() says
readable when there is data. The waiting read is kept and answered later by the write.

    sudo PYTHONPATH=build/python ./examples/python/echo.py /dev/echo
    exec 3<>/dev/echo; echo hi >&3; head -1 <&3
"""
import errno
import signal
import sys

import fusd


class EchoFile:
    def __init__(self):
        self.data = b""
        self.readers = []  # reads waiting for data


def publish(file, echo):
    file.notify(fusd.WRITABLE | (fusd.READABLE if echo.data else 0))


def serve_readers(file, echo):
    while echo.readers and echo.data:
        req = echo.readers.pop(0)
        n = min(req.size, len(echo.data))
        req.reply_data(echo.data[:n])
        echo.data = echo.data[n:]
    publish(file, echo)


def on_open(req):
    req.file.state = EchoFile()
    publish(req.file, req.file.state)
    return 0


def on_read(req):
    echo = req.file.state
    if not echo.data and req.nonblocking:
        raise OSError(errno.EAGAIN, "nothing to read")
    echo.readers.append(req)  # kept: answered by a later write
    serve_readers(req.file, echo)


def on_write(req):
    echo = req.file.state
    echo.data += req.data
    serve_readers(req.file, echo)
    return len(req.data)


def on_interrupt(file, request_id):
    echo = file.state
    echo.readers = [r for r in echo.readers if r.id != request_id]


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "echo"
    with fusd.Loop() as loop:
        try:
            dev = loop.add(name, mode=0o666, open=on_open, read=on_read, write=on_write, interrupt=on_interrupt)
        except fusd.Error as e:
            print(f"echo.py: {e}", file=sys.stderr)
            return 1
        signal.signal(signal.SIGTERM, lambda *_: loop.stop())
        print(f"serving {dev.path}", flush=True)
        loop.run()  # until SIGTERM, or Ctrl-C (KeyboardInterrupt); leaving `with` removes the node
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
