#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# echo.py - a fusd device driver in Python through `fusdctl serve --protocol json`
# (the protocol: fusd-protocol(7)).
#
#   fusdctl serve /dev/echo --protocol json -- examples/protocol/echo.py
#
# What is written to the device can be read back, by any open file, in order (one buffer for the
# whole device). A read with nothing to give waits until something is written (its answer comes
# later, by its id); a non-blocking one gets EAGAIN. poll() says readable while the buffer holds
# data. Two ioctls, as a C driver would number them:
#   ECHO_PENDING  _IOR('E', 1, uint32_t)   the number of bytes waiting to be read
#   ECHO_CLEAR    _IO('E', 2)              drops them
# Every other ioctl gets ENOTTY.
import base64
import json
import os
import struct
import sys

ECHO_PENDING = (2 << 30) | (4 << 16) | (ord("E") << 8) | 1  # _IOR('E', 1, uint32_t)
ECHO_CLEAR = (ord("E") << 8) | 2                             # _IO('E', 2)

buffer = bytearray()
waiting_reads = []  # read calls kept until data comes, oldest first


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def publish_readiness():
    send({"readiness": ["in", "out"] if buffer else ["out"]})


def answer_read(call):
    data = bytes(buffer[: call["size"]])
    del buffer[: len(data)]
    send({"id": call["id"], "data": base64.b64encode(data).decode()})


def serve_waiting_reads():
    while waiting_reads and buffer:
        answer_read(waiting_reads.pop(0))


for line in sys.stdin:
    call = json.loads(line)
    op = call["op"]
    if op == "open":
        send({"id": call["id"]})
    elif op == "read":
        if buffer:
            answer_read(call)
        elif call["flags"] & os.O_NONBLOCK:
            send({"id": call["id"], "error": "EAGAIN"})
        else:
            waiting_reads.append(call)  # answered when a write brings data
    elif op == "write":
        buffer += base64.b64decode(call["data"])
        send({"id": call["id"], "written": call["size"]})
        serve_waiting_reads()
    elif op == "ioctl":
        if call["command"] == ECHO_PENDING:
            send({"id": call["id"], "data": base64.b64encode(struct.pack("=I", len(buffer))).decode()})
        elif call["command"] == ECHO_CLEAR:
            buffer.clear()
            send({"id": call["id"]})
        else:
            send({"id": call["id"], "error": "ENOTTY"})
    elif op == "interrupt":  # the caller gave up: its read is not answered
        waiting_reads[:] = [c for c in waiting_reads if c["id"] != call["id"]]
    elif op == "release":  # nothing of this file can be waiting but interrupted calls
        waiting_reads[:] = [c for c in waiting_reads if c["file"] != call["file"]]
    publish_readiness()
