# SPDX-License-Identifier: MIT
"""fusd: answer the system calls made on a file in /dev from Python.

    import fusd
    with fusd.Loop() as loop:
        loop.add("/dev/hello", mode=0o444, read=lambda req: b"hello\\n")
        loop.run()                 # or loop.start(): served from a thread of its own

A callback gets a fusd.Request and answers it once, now or later, from any thread:
req.reply_data(...), req.reply_written(n), req.reply_ioctl(result, out), req.reply_error(errno),
or by returning the answer (bytes/str for read, an int for write, an int, bytes or (int, bytes)
for ioctl, 0 for open/release), or by raising OSError(errno, ...): the caller gets that errno.
Any other exception answers EIO and goes to Loop.on_error (default: sys.unraisablehook).
The whole reference: man 3 fusd-python.
"""
from ._fusd import (  # noqa: F401
    Caller, Device, Error, File, IoctlShape, Loop, Op, Request, Terminal, BackendStatus,
    READABLE, WRITABLE, ERROR, HANGUP, RETRY_RANGES_MAX, RETRY_BYTES_MAX,
    device_path, ioctl_shape, probe_backends,
)

__all__ = [
    "Caller", "Device", "Error", "File", "IoctlShape", "Loop", "Op", "Request", "Terminal",
    "BackendStatus", "READABLE", "WRITABLE", "ERROR", "HANGUP", "RETRY_RANGES_MAX",
    "RETRY_BYTES_MAX", "device_path", "ioctl_shape", "probe_backends",
]
