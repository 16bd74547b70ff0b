#!/usr/bin/env bats
# fusdctl serve --protocol json: one command answers every call as JSON lines (fusd-protocol(7)),
# through the shipped examples (examples/protocol/echo.py, counter.sh) and small drivers of the
# tests' own for what the examples do right (malformed answers, dying, interrupts).

load helpers
bats_scope every-backend

ECHO=$REPO/examples/protocol/echo.py
COUNTER=$REPO/examples/protocol/counter.sh
# _IOR('E', 1, uint32_t) and _IO('E', 2), as echo.py numbers them
ECHO_PENDING=$(((2 << 30) | (4 << 16) | (0x45 << 8) | 1))
ECHO_CLEAR=$(((0x45 << 8) | 2))

# driver NAME PYTHON: a protocol driver of the test's own at $T/NAME.py, run by /usr/bin/python3.
# It gets `send(obj)` and `calls()` (the calls, one dict each) and logs every call to $T/NAME.calls.
test_driver() {
	{
		cat <<PYEOF
#!$PY
import base64, json, os, sys, time
LOG = open("$T/$1.calls", "a", buffering=1)
def send(obj):
    sys.stdout.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
    sys.stdout.flush()
def calls():
    for line in sys.stdin:
        LOG.write(line)
        yield json.loads(line)
PYEOF
		cat
	} >"$T/$1.py"
	chmod +x "$T/$1.py"
}

@test "echo.py: what is written is read back; ioctls answer with data" {
	serve_d "$NAME" --protocol json -- "$ECHO"
	run py '
import os, sys, fcntl, struct, errno
fd = os.open(sys.argv[1], os.O_RDWR)
print(os.write(fd, b"hello protocol\n"))
b = bytearray(4)
fcntl.ioctl(fd, int(sys.argv[2]), b)
print("pending", struct.unpack("=I", b)[0])
print(os.read(fd, 6))
fcntl.ioctl(fd, int(sys.argv[3]))
fcntl.ioctl(fd, int(sys.argv[2]), b)
print("pending", struct.unpack("=I", b)[0])
try:
    fcntl.ioctl(fd, (2 << 30) | (4 << 16) | (0x45 << 8) | 9, b)
except OSError as e:
    print(errno.errorcode[e.errno])
os.close(fd)' "$DEV" "$ECHO_PENDING" "$ECHO_CLEAR"
	assert_success
	assert_output $'15\npending 15\nb\'hello \'\npending 0\nENOTTY'
}

@test "a read waits for its answer (delayed), a non-blocking one gets EAGAIN" {
	serve_d "$NAME" --protocol json -- "$ECHO"
	run py '
import os, sys, time, threading
dev = sys.argv[1]
fd = os.open(dev, os.O_RDONLY | os.O_NONBLOCK)
try:
    os.read(fd, 10)
except BlockingIOError:
    print("EAGAIN")
os.close(fd)
def later():
    time.sleep(0.5)
    w = os.open(dev, os.O_WRONLY)
    os.write(w, b"late")
    os.close(w)
r = os.open(dev, os.O_RDONLY)
t = threading.Thread(target=later)
start = time.monotonic()
t.start()
data = os.read(r, 10)
print(data, time.monotonic() - start >= 0.4)
t.join()' "$DEV"
	assert_success
	assert_output $'EAGAIN\nb\'late\' True'
}

@test "poll: readiness published by the command" {
	serve_d "$NAME" --protocol json -- "$ECHO"
	run py '
import os, sys, select, time
fd = os.open(sys.argv[1], os.O_RDWR)
p = select.poll()
p.register(fd, select.POLLIN | select.POLLOUT)
def becomes(events):  # what poll says, once it says events (or after a hang guard)
    deadline = time.monotonic() + 20
    while True:
        now = dict(p.poll(0)).get(fd, 0)
        if now == events or time.monotonic() > deadline:
            return now
        time.sleep(0.01)
print(becomes(select.POLLOUT) == select.POLLOUT)
os.write(fd, b"x")
print(becomes(select.POLLIN | select.POLLOUT) == select.POLLIN | select.POLLOUT)
os.read(fd, 1)
print(becomes(select.POLLOUT) == select.POLLOUT)
os.close(fd)' "$DEV"
	assert_success
	assert_output $'True\nTrue\nTrue'
}

@test "binary data: all 256 byte values, both ways" {
	serve_d "$NAME" --protocol json -- "$ECHO"
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
data = bytes(range(256)) * 4
os.write(fd, data)
got = b""
while len(got) < len(data):
    got += os.read(fd, len(data) - len(got))
print(got == data)
os.close(fd)' "$DEV"
	assert_success
	assert_output True
}

@test "large writes arrive whole (4 MiB through echo.py)" {
	serve_d "$NAME" --protocol json -- "$ECHO"
	run py '
import os, sys, hashlib
fd = os.open(sys.argv[1], os.O_RDWR)
data = os.urandom(4 << 20)
n = 0
while n < len(data):
    n += os.write(fd, data[n:n + (1 << 20)])
got = bytearray()
while len(got) < len(data):
    got += os.read(fd, 1 << 20)
print(n, bytes(got) == data)
os.close(fd)' "$DEV"
	assert_success
	assert_output "4194304 True"
}

@test "counter.sh (bash and jq): one line per open, write reset, EINVAL for the rest" {
	serve_d "$NAME" --protocol json -- "$COUNTER"
	run timeout "$GUARD" cat "$DEV"
	assert_output "count 1"
	run timeout "$GUARD" cat "$DEV"
	assert_output "count 2"
	echo reset >"$DEV"
	run timeout "$GUARD" cat "$DEV"
	assert_output "count 1"
	run timeout "$GUARD" bash -c "echo other >'$DEV'"
	assert_failure
	assert_output --partial "Invalid argument"
}

@test "the caller is named in every call; a caller that is not root" {
	test_driver who <<'PYEOF'
told = set()
for c in calls():
    if c["op"] == "read":
        text = "" if c["file"] in told else "%d %d %d\n" % (c["pid"], c["uid"], c["gid"])
        told.add(c["file"])
        send({"id": c["id"], "text": text})
    elif c["op"] == "open":
        send({"id": c["id"]})
PYEOF
	serve_d "$NAME" --mode 0666 --protocol json -- "$T/who.py"
	run as_nobody timeout "$GUARD" cat "$DEV"
	assert_success
	[[ $output =~ ^[0-9]+\ 65534\ 65534$ ]] || fail "got: $output"
	grep -q '"op":"open"' "$T/who.calls"
}

@test "malformed answers fail their call with EIO and are logged; the device goes on" {
	test_driver bad <<'PYEOF'
n = 0
for c in calls():
    if c["op"] == "open":
        send({"id": c["id"]})
    elif c["op"] == "read":
        n += 1
        if n == 1:
            send('{"id": %d, "data": "not base64!"}' % c["id"])
        elif n == 2:
            send('this is not json, "id": %d' % c["id"])
        elif n == 3:
            send({"id": c["id"], "data": base64.b64encode(b"x" * (c["size"] + 1)).decode()})
        elif n == 4:
            send({"id": c["id"], "colour": "blue"})
        elif n == 5:
            send({"id": 987654321, "data": ""})
            send({"id": c["id"], "error": 5})
        else:
            send({"id": c["id"], "text": "fine\n"})
PYEOF
	serve_d "$NAME" --log "$T/log" --protocol json -- "$T/bad.py"
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for _ in range(6):
    try:
        print(os.read(fd, 8))
    except OSError as e:
        print(e.strerror)
os.close(fd)' "$DEV"
	assert_success
	assert_output $'Input/output error\nInput/output error\nInput/output error\nInput/output error\nInput/output error\nb\'fine\\n\''
	run cat "$T/log"
	assert_line --partial '"data" is not valid base64'
	assert_line --partial 'not JSON): this is not json'
	assert_line --partial 'bytes for a read of 8'
	assert_line --partial 'unexpected key "colour"'
	assert_line --partial 'no call 987654321 is waiting'
}

@test "an answer line over 64 MiB is logged and skipped whole; the answers after it are taken" {
	test_driver long <<'PYEOF'
for c in calls():
    if c["op"] == "open":
        send({"id": c["id"]})
    elif c["op"] == "read":
        # 64 MiB and one byte of a would-be answer, in pieces, then the real answer
        sys.stdout.write('{"id": %d, "text": "' % c["id"])
        for _ in range(64):
            sys.stdout.write("x" * (1 << 20))
        sys.stdout.write('"}\n')
        send({"id": c["id"], "text": "after\n"})
PYEOF
	serve_d "$NAME" --log "$T/log" --protocol json -- "$T/long.py"
	run py 'import os, sys; print(os.read(os.open(sys.argv[1], os.O_RDONLY), 100))' "$DEV"
	assert_success
	assert_output "b'after\\n'"
	run cat "$T/log"
	assert_line --partial "a line longer than $((64 << 20)) bytes"
	[ "$(grep -c 'bad answer' "$T/log")" = 1 ] || fail "the long line was reported more than once: $output"
}

@test "an interrupted read: the command is told, its late answer is dropped" {
	test_driver slow <<'PYEOF'
held = []
for c in calls():
    if c["op"] == "open":
        send({"id": c["id"]})
    elif c["op"] == "read":
        held.append(c["id"])
    elif c["op"] == "interrupt":
        for i in held:
            send({"id": i, "text": "too late"})
PYEOF
	serve_d "$NAME" --log "$T/log" --protocol json -- "$T/slow.py"
	timeout "$GUARD" cat "$DEV" >"$T/out" 2>&1 &
	reader=$!
	wait_for "$GUARD" grep -q '"op":"read"' "$T/slow.calls" || fail "no read came: $(ls -l "$T"; cat "$T/log")"
	kill -INT "$reader"
	status=0
	wait "$reader" || status=$?
	[ "$status" != 0 ] || fail "the interrupted read succeeded: $(cat "$T/out")"
	wait_for "$GUARD" grep -q '"op":"interrupt"' "$T/slow.calls" || fail "no interrupt: $(cat "$T/slow.calls")"
	wait_for "$GUARD" grep -q '"op":"release"' "$T/slow.calls" || fail "no release: $(cat "$T/slow.calls")"
	run cat "$T/log"
	refute_output --partial "bad answer"
}

@test "readiness of one file: only that file polls readable; an unknown file is logged" {
	test_driver perfile <<'PYEOF'
n = 0
for c in calls():
    if c["op"] == "open":
        n += 1
        if n == 1:
            send({"readiness": ["out"]})
        send({"id": c["id"]})
        if n == 2:
            send({"readiness": ["in", "out"], "file": c["file"]})
            send({"readiness": ["in"], "file": 999999})
    elif c["op"] == "read":
        send({"id": c["id"], "text": "x"})
PYEOF
	serve_d "$NAME" --log "$T/log" --protocol json -- "$T/perfile.py"
	run py '
import os, sys, select
a = os.open(sys.argv[1], os.O_RDONLY)
b = os.open(sys.argv[1], os.O_RDONLY)
p = select.poll()
p.register(a, select.POLLIN)
p.register(b, select.POLLIN)
ready = dict(p.poll(10000))
print(a in ready, b in ready)' "$DEV"
	assert_success
	assert_output "False True"
	run cat "$T/log"
	assert_line --partial "file 999999 is not open"
}

@test "the command dies: waiting callers get EIO, serve ends with status 1, nothing left" {
	test_driver dies <<'PYEOF'
for c in calls():
    if c["op"] == "open":
        send({"id": c["id"]})
        print(os.getpid(), file=open(os.environ["PIDFILE"], "w"))
    elif c["op"] == "read":
        sys.exit(4)
PYEOF
	track_dev "$DEV"
	PIDFILE=$T/driver.pid "$FUSDCTL" serve --backend "$FUSD_BACKEND" --pidfile "$T/fg.pid" "$NAME" \
		--protocol json -- "$T/dies.py" 2>"$T/fg.err" 3>&- &
	SERVER_PID=$!
	track_pid "$SERVER_PID"
	wait_for "$GUARD" test -s "$T/fg.pid"
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.read(fd, 10)
except OSError as e:
    print(e.strerror)' "$DEV"
	assert_output "Input/output error"
	wait_gone "$SERVER_PID" "$GUARD"
	status=0
	wait "$SERVER_PID" || status=$?
	[ "$status" = 1 ] || fail "serve exited with status $status"
	track_cmd "$(cat "$T/driver.pid")"
	run cat "$T/fg.err"
	assert_output --partial "exited with status 4"
	gone "$DEV"
}

@test "the command ends with status 0: serve ends with status 0, the node goes" {
	test_driver quits <<'PYEOF'
for c in calls():
    if c["op"] == "open":
        send({"id": c["id"]})
    elif c["op"] == "read":
        sys.exit(0)
PYEOF
	track_dev "$DEV"
	"$FUSDCTL" serve --backend "$FUSD_BACKEND" --pidfile "$T/fg.pid" "$NAME" \
		--protocol json -- "$T/quits.py" 2>"$T/fg.err" 3>&- &
	SERVER_PID=$!
	track_pid "$SERVER_PID"
	wait_for "$GUARD" test -s "$T/fg.pid"
	run timeout "$GUARD" cat "$DEV"
	assert_failure
	wait_gone "$SERVER_PID" "$GUARD"
	status=0
	wait "$SERVER_PID" || status=$?
	[ "$status" = 0 ] || fail "serve exited with status $status: $(cat "$T/fg.err")"
	gone "$DEV"
}

@test "--restart: a new command after the old one died; files of the old one get EIO" {
	test_driver once <<'PYEOF'
for c in calls():
    if c["op"] == "open":
        send({"id": c["id"]})
    elif c["op"] == "read":
        if c["size"] == 3:
            sys.exit(1)
        send({"id": c["id"], "text": "pid %d\n" % os.getpid()})
PYEOF
	serve_d "$NAME" --log "$T/log" --restart --restart-delay 0.1 --protocol json -- "$T/once.py"
	run py '
import os, sys, time
dev = sys.argv[1]
old = os.open(dev, os.O_RDONLY)
a = os.read(old, 100)
try:
    os.read(old, 3)
except OSError as e:
    print(e.strerror)
for _ in range(200):
    try:
        fd = os.open(dev, os.O_RDONLY)
        b = os.read(fd, 100)
        os.close(fd)
        break
    except OSError:
        time.sleep(0.05)
print(a != b and b.startswith(b"pid "))
try:
    os.read(old, 100)
except OSError as e:
    print(e.strerror)
os.close(old)' "$DEV"
	assert_success
	assert_output $'Input/output error\nTrue\nInput/output error'
}

@test "SIGTERM: a waiting reader gets end of file, the node and the command go" {
	serve_d "$NAME" --protocol json -- "$ECHO"
	cmd=$(pgrep -P "$SERVER_PID" -f echo.py)
	track_cmd "$cmd"
	py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
open(sys.argv[2], "w").close()
print(repr(os.read(fd, 10)))' "$DEV" "$T/opened" >"$T/out" &
	reader=$!
	wait_for "$GUARD" test -e "$T/opened"
	kill -TERM "$SERVER_PID"
	wait "$reader"
	[ "$(cat "$T/out")" = "b''" ] || fail "the reader got: $(cat "$T/out")"
	wait_gone "$SERVER_PID" "$GUARD"
	wait_gone "$cmd" "$GUARD"
	gone "$DEV"
}
