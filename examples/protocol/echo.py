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
answers = []        # the answers to the call being handled, sent after the readiness
readiness = None    # as last published


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(call, **members):
    answers.append({"id": call["id"], **members})


# Readiness first, then the answers: a caller that polls right after its call returns sees the
# readiness that call left.
def publish():
    global readiness
    now = ["in", "out"] if buffer else ["out"]
    if now != readiness:
        send({"readiness": now})
        readiness = now
    for a in answers:
        send(a)
    answers.clear()


def answer_read(call):
    data = bytes(buffer[: call["size"]])
    del buffer[: len(data)]
    answer(call, data=base64.b64encode(data).decode())


publish()  # before the first open: nothing to read yet
for line in sys.stdin:
    call = json.loads(line)
    op = call["op"]
    if op == "open":
        answer(call)
    elif op == "read":
        if buffer:
            answer_read(call)
        elif call["flags"] & os.O_NONBLOCK:
            answer(call, error="EAGAIN")
        else:
            waiting_reads.append(call)  # answered when a write brings data
    elif op == "write":
        buffer += base64.b64decode(call["data"])
        answer(call, written=call["size"])
        while waiting_reads and buffer:
            answer_read(waiting_reads.pop(0))
    elif op == "ioctl":
        if call["command"] == ECHO_PENDING:
            answer(call, data=base64.b64encode(struct.pack("=I", len(buffer))).decode())
        elif call["command"] == ECHO_CLEAR:
            buffer.clear()
            answer(call)
        else:
            answer(call, error="ENOTTY")
    elif op == "interrupt":  # the caller gave up: its read is not answered
        waiting_reads[:] = [c for c in waiting_reads if c["id"] != call["id"]]
    elif op == "release":  # nothing of this file can be waiting but interrupted calls
        waiting_reads[:] = [c for c in waiting_reads if c["file"] != call["file"]]
    publish()
