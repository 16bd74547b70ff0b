#!/usr/bin/env bats
# fusdctl record and fusdctl replay: a pass-through device in front of a real one (a kernel
# device, a pseudo-terminal) writes a recording; replaying it gives the client program the same
# output; departures, --loose, --fast, hand-written and broken files, --in-place, stop signals
# and a caller that is not root.

load helpers
bats_scope every-backend

# record_bg REAL [OPTIONS...]: `fusdctl record REAL --as $DEV -o $T/rec` in the background until
# it serves; sets REC_PID and ON (the backend).
record_bg() {
	local real=$1
	shift
	track_dev "$DEV"
	rm -f "$T/record.err" # the wait below must not see an earlier run's line
	"$FUSDCTL" record "$real" --as "$DEV" -o "$T/rec" --backend "$FUSD_BACKEND" "$@" 2>"$T/record.err" 3>&- &
	REC_PID=$!
	track_pid "$REC_PID"
	wait_for "$GUARD" grep -q "recording .* on " "$T/record.err" || fail "record did not start: $(cat "$T/record.err")"
	ON=$(sed -n 's/.* on \([a-z]*\) into .*/\1/p' "$T/record.err")
}

# stop_record: SIGTERM; the recorder exits 0.
stop_record() {
	local rc=0
	kill -TERM "$REC_PID" || fail "record ended early: $(cat "$T/record.err")"
	wait "$REC_PID" || rc=$?
	[ "$rc" = 0 ] || fail "record exited $rc: $(cat "$T/record.err")"
}

# replay_bg FILE [OPTIONS...]: `fusdctl replay FILE --as $DEV-r` in the background until it
# serves; sets REP_PID and RDEV.
replay_bg() {
	local file=$1
	shift
	RDEV=$DEV-r
	track_dev "$RDEV"
	rm -f "$T/replay.err" # the wait below must not see an earlier run's line
	"$FUSDCTL" replay "$file" --as "$RDEV" --backend "$FUSD_BACKEND" "$@" 2>"$T/replay.err" 3>&- &
	REP_PID=$!
	track_pid "$REP_PID"
	wait_for "$GUARD" grep -q "serving .* on " "$T/replay.err" || fail "replay did not start: $(cat "$T/replay.err")"
}

# replay_status: waits (hang guard) for the replayer to end by itself; sets REP_RC.
replay_status() {
	wait_gone "$REP_PID" "$GUARD" || fail "replay did not end: $(cat "$T/replay.err")"
	REP_RC=0
	wait "$REP_PID" || REP_RC=$?
}

# start_modem: a pseudo-terminal held by a helper process that answers "OK <line>\r\n" to each
# line ending in \r, after 0.2 s; sets PTS (the slave) and MODEM.
start_modem() {
	cat >"$T/modem.py" <<'PY'
import os, pty, select, sys, time, tty
m, s = pty.openpty()
tty.setraw(s)
print(os.ttyname(s), flush=True)
buf = b""
end = time.time() + 60
while time.time() < end:
    if not select.select([m], [], [], 0.5)[0]:
        continue
    buf += os.read(m, 100)
    while b"\r" in buf:
        line, buf = buf.split(b"\r", 1)
        time.sleep(0.2)
        os.write(m, b"OK " + line + b"\r\n")
PY
	"$PY" "$T/modem.py" >"$T/modem.out" 2>&1 3>&- &
	MODEM=$!
	track_pid "$MODEM" # runs until teardown stops it
	wait_for "$GUARD" test -s "$T/modem.out" || fail "no pty: $(cat "$T/modem.out")"
	PTS=$(head -1 "$T/modem.out")
}

# The terminal client: one open reads in a thread (blocked in the device until the answer
# comes) while a second open writes the commands.
modem_client() {
	py '
import os, sys, threading
r = os.open(sys.argv[1], os.O_RDONLY | os.O_NOCTTY)
w = os.open(sys.argv[1], os.O_WRONLY | os.O_NOCTTY)
got = []
def reader():
    buf = b""
    while buf.count(b"\n") < 2:
        buf += os.read(r, 64)
    got.append(buf)
t = threading.Thread(target=reader)
t.start()
os.write(w, b"AT\r")
os.write(w, b"ATI\r")
t.join(50)
print(got[0].decode().replace("\r", "").strip())
os.close(w)
os.close(r)
' "$1"
}

@test "record: a pseudo-terminal session replays with the same output" {
	start_modem
	record_bg "$PTS"
	run modem_client "$DEV"
	assert_success
	assert_output "$(printf 'OK AT\nOK ATI')"
	stop_record
	head -1 "$T/rec" | grep -q '^{"fusd-recording":1,'
	grep -q '"call":"write","data":"QVQN"' "$T/rec"
	gone "$DEV"
	replay_bg "$T/rec"
	run modem_client "$RDEV"
	assert_success
	assert_output "$(printf 'OK AT\nOK ATI')"
	replay_status
	assert_equal "$REP_RC" 0
	grep -q "rec: done, .* calls replayed, 0 not reached" "$T/replay.err" || fail "$(cat "$T/replay.err")"
	gone "$RDEV"
}

# One open, a reader thread blocked in a read while the main thread writes on the same file.
one_open_client() {
	py '
import os, sys, threading
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
got = []
def reader():
    buf = b""
    while buf.count(b"\n") < 2:
        buf += os.read(fd, 64)
    got.append(buf)
t = threading.Thread(target=reader)
t.start()
os.write(fd, b"AT\r")
os.write(fd, b"ATI\r")
t.join(50)
print(got[0].decode().replace("\r", "").strip())
os.close(fd)
' "$1"
}

@test "record: a read blocked on the real device holds up nothing, even on the same open" {
	start_modem
	record_bg "$PTS"
	run one_open_client "$DEV"
	assert_success
	assert_output "$(printf 'OK AT\nOK ATI')"
	stop_record
	replay_bg "$T/rec"
	run one_open_client "$RDEV"
	assert_success
	assert_output "$(printf 'OK AT\nOK ATI')"
	replay_status
	assert_equal "$REP_RC" 0
}

@test "record: /dev/zero and /dev/urandom read sizes and /dev/null writes replay the same" {
	cat >"$T/reads.py" <<'PY'
import hashlib, os, sys
import fcntl, struct
fd = os.open(sys.argv[1], os.O_RDONLY)
for n in (1, 10, 4096, 100):
    print(n, hashlib.sha256(os.read(fd, n)).hexdigest())
# RNDGETENTCNT, _IOR('R', 0, int): the data comes back through the ioctl's argument
print("entropy", struct.unpack("i", fcntl.ioctl(fd, 0x80045200, bytes(4)))[0] > 0)
os.close(fd)
PY
	record_bg /dev/urandom
	run py "$(cat "$T/reads.py")" "$DEV"
	assert_success
	assert_line "entropy True"
	local recorded=$output
	stop_record
	grep -q '"call":"ioctl","request":"0x80045200","out":"' "$T/rec"
	replay_bg "$T/rec" --fast
	run py "$(cat "$T/reads.py")" "$RDEV"
	assert_success
	assert_output "$recorded"
	replay_status
	assert_equal "$REP_RC" 0

	record_bg /dev/zero
	run timeout "$GUARD" head -c 10 "$DEV"
	assert_output "$(head -c 10 /dev/zero)"
	run timeout "$GUARD" sh -c 'dd if="$1" bs=7 count=2 2>/dev/null | od -An -c' _ "$DEV"
	recorded=$output
	stop_record
	replay_bg "$T/rec"
	timeout "$GUARD" head -c 10 "$RDEV" | cmp - <(head -c 10 /dev/zero)
	run timeout "$GUARD" sh -c 'dd if="$1" bs=7 count=2 2>/dev/null | od -An -c' _ "$RDEV"
	assert_output "$recorded"
	replay_status
	assert_equal "$REP_RC" 0

	record_bg /dev/null
	printf 'hello\n' >"$DEV"
	printf 'world' >"$DEV"
	stop_record
	grep -q '"open":2,"call":"write","data":"d29ybGQ=","result":5' "$T/rec"
	replay_bg "$T/rec"
	printf 'hello\n' >"$RDEV"
	printf 'world' >"$RDEV"
	replay_status
	assert_equal "$REP_RC" 0
}

@test "replay: a departure gets EIO, both calls are named, exit 1; --loose carries on" {
	record_bg /dev/null
	printf 'hello' >"$DEV"
	stop_record
	replay_bg "$T/rec"
	run py '
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, b"hellx")
except OSError as e:
    print(errno.errorcode[e.errno])
' "$RDEV"
	assert_output EIO
	replay_status
	assert_equal "$REP_RC" 1
	run cat "$T/replay.err"
	assert_output --partial "rec:3: open 1: expected write \"hello\" (5 bytes), came write \"hellx\" (5 bytes)"
	assert_output --partial "departures from the recording"
	gone "$RDEV"

	replay_bg "$T/rec" --loose
	run timeout "$GUARD" sh -c 'printf hellx >"$1"' _ "$RDEV"
	assert_success
	replay_status
	assert_equal "$REP_RC" 0
	run cat "$T/replay.err"
	assert_output --partial "came write \"hellx\" (5 bytes) (--loose: carried on)"

	# an ioctl with another number: EIO, both named
	cat >"$T/ioctl.rec" <<'EOF2'
{"fusd-recording":1}
{"open":1,"call":"open","access":"r"}
{"open":1,"call":"ioctl","request":"0x80045200","out":"AQAAAA==","result":0}
{"open":1,"call":"close"}
EOF2
	replay_bg "$T/ioctl.rec"
	run py '
import errno, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.ioctl(fd, 0x80045201, bytes(4))
except OSError as e:
    print(errno.errorcode[e.errno])
print(struct.unpack("i", fcntl.ioctl(fd, 0x80045200, bytes(4)))[0])
' "$RDEV"
	assert_output "$(printf 'EIO\n1')"
	replay_status
	assert_equal "$REP_RC" 1
	grep -q "ioctl.rec:3: open 1: expected ioctl 0x80045200, came ioctl 0x80045201" "$T/replay.err" || fail "$(cat "$T/replay.err")"
}

@test "replay: a hand-written file; reads wait their turn unless --fast; poll says when" {
	cat >"$T/sensor.rec" <<'EOF2'
{"fusd-recording":1}
# a sensor: one reading at once, the next after 600 s, then end of file
{"open":1,"call":"open","access":"r"}
{"t":0,"open":1,"call":"read","text":"21.5\n"}
{"t":600,"open":1,"call":"read","text":"21.7\n"}
{"t":600,"open":1,"call":"read","text":""}
{"open":1,"call":"close"}
EOF2
	replay_bg "$T/sensor.rec"
	run py '
import errno, os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
print(os.read(fd, 100))
p = select.poll(); p.register(fd, select.POLLIN)
print("ready" if p.poll(200) else "not ready")
try:
    os.read(fd, 100)
except BlockingIOError:
    print("EAGAIN")
' "$RDEV"
	assert_success
	assert_output "$(printf "b'21.5\\\\n'\nnot ready\nEAGAIN")"
	# the caller closed before the end: a departure; the recording's only open is done, so is replay
	replay_status
	assert_equal "$REP_RC" 1
	grep -q "sensor.rec:5: open 1: expected read, came close" "$T/replay.err" || fail "$(cat "$T/replay.err")"
	gone "$RDEV"

	replay_bg "$T/sensor.rec" --fast
	run timeout "$GUARD" cat "$RDEV"
	assert_success
	assert_output "$(printf '21.5\n21.7')"
	replay_status
	assert_equal "$REP_RC" 0
}

@test "record --in-place: the real node is moved aside and put back on SIGTERM and on SIGINT" {
	track_dev "$DEV"
	mknod -m 0666 "$DEV" c 1 3 # a /dev/null of our own
	for sig in TERM INT; do
		rm -f "$T/record.err"
		env --default-signal=INT,TERM "$FUSDCTL" record "$DEV" --in-place -o "$T/rec" --backend "$FUSD_BACKEND" 2>"$T/record.err" 3>&- &
		REC_PID=$!
		track_pid "$REC_PID"
		wait_for "$GUARD" grep -q "recording .* on " "$T/record.err" || fail "$(cat "$T/record.err")"
		listed "$DEV"
		[ -e "/dev/.$NAME.fusd-record" ]
		printf 'in place' >"$DEV"
		kill -"$sig" "$REC_PID"
		wait "$REC_PID"
		[ -c "$DEV" ] || fail "$DEV is not the character device again"
		assert_equal "$(stat -c %t:%T "$DEV")" "1:3"
		[ ! -e "/dev/.$NAME.fusd-record" ]
		not listed "$DEV"
		grep -q '"call":"write","data":"aW4gcGxhY2U=","result":8' "$T/rec"
	done
	rm -f "$DEV"
}

@test "record and replay stop on SIGTERM with a caller blocked in a read; nothing is left" {
	start_modem
	record_bg "$PTS"
	py 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NOCTTY); print(os.read(fd, 10))' "$DEV" >"$T/client.out" 2>&1 &
	local client=$!
	track_cmd "$client"
	wait_for "$GUARD" grep -q '"call":"open"' "$T/rec"
	sleep 0.2
	stop_record
	wait_gone "$client" "$GUARD"
	gone "$DEV"
	cat >"$T/wait.rec" <<'EOF2'
{"fusd-recording":1}
{"open":1,"call":"open","access":"r"}
{"t":600,"open":1,"call":"read","text":"late"}
EOF2
	replay_bg "$T/wait.rec"
	py 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); print(os.read(fd, 10))' "$RDEV" >"$T/client.out" 2>&1 &
	client=$!
	track_cmd "$client"
	sleep 0.3
	kill -TERM "$REP_PID"
	replay_status
	wait_gone "$client" "$GUARD"
	gone "$RDEV"
	grep -q "stopped by SIGTERM" "$T/replay.err" || fail "$(cat "$T/replay.err")"
}

@test "record and replay: a caller that is not root" {
	record_bg /dev/zero --mode 0666
	run as_nobody timeout "$GUARD" head -c 5 "$DEV"
	assert_success
	assert_equal "$(printf '%s' "$output" | wc -c)" 0 # NULs: bash drops them; the length is checked below
	as_nobody timeout "$GUARD" head -c 5 "$DEV" | cmp - <(head -c 5 /dev/zero)
	stop_record
	replay_bg "$T/rec" --mode 0666
	as_nobody timeout "$GUARD" head -c 5 "$RDEV" | cmp - <(head -c 5 /dev/zero)
	as_nobody timeout "$GUARD" head -c 5 "$RDEV" | cmp - <(head -c 5 /dev/zero)
	replay_status
	assert_equal "$REP_RC" 0
}

@test "record and replay: terminal ioctls (stty) where ioctls reach the daemon; a clean failure on FUSE" {
	start_modem
	record_bg "$PTS"
	if [ "$ON" = fuse ]; then
		run timeout "$GUARD" stty -F "$DEV" speed
		assert_failure
		assert_output --partial "Inappropriate ioctl for device"
		stop_record
		skip "FUSE carries no terminal ioctls (a regular file): stty fails with ENOTTY, as checked"
	fi
	run timeout "$GUARD" stty -F "$DEV" -a
	assert_success
	local recorded=$output
	assert_output --partial "speed 38400 baud"
	stop_record
	grep -q '"call":"ioctl","request":"0x5401"' "$T/rec" # TCGETS
	replay_bg "$T/rec"
	run timeout "$GUARD" stty -F "$RDEV" -a
	assert_success
	assert_output "$recorded"
	replay_status
	assert_equal "$REP_RC" 0
}

# A nonblocking client that waits in poll(): not readable before the modem answers, readable after.
poll_client() {
	py '
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
p = select.poll()
p.register(fd, select.POLLIN)
print("before:", "readable" if p.poll(300) else "not readable")
os.write(fd, b"AT\r")
buf = b""
while not buf.endswith(b"\n"):
    if not p.poll(30000):
        break
    try:
        buf += os.read(fd, 64)
    except BlockingIOError:
        pass
print("after:", buf.decode().strip())
os.close(fd)
' "$1"
}

@test "record and replay: poll readiness passes through and is replayed" {
	start_modem
	record_bg "$PTS"
	run poll_client "$DEV"
	assert_success
	assert_output "$(printf 'before: not readable\nafter: OK AT')"
	stop_record
	replay_bg "$T/rec"
	run poll_client "$RDEV"
	assert_success
	assert_output "$(printf 'before: not readable\nafter: OK AT')"
	replay_status
	assert_equal "$REP_RC" 0
}

@test "record: an ioctl blocked in the real device ends when its caller is interrupted, and on SIGTERM" {
	# The real device: a fusd device whose ioctl waits (its script sleeps) until it is interrupted.
	local real=$DEV-real
	cat >"$T/slow" <<EOF2
#!/bin/bash
[ "\$1" = ioctl ] && { cat >/dev/null; echo \$\$ >>"$T/slow.ioctls"; exec sleep 600; }
[ "\$1" = read ] && { printf ok; exit 0; }
exit 0
EOF2
	chmod +x "$T/slow"
	serve_d "$real" --handler "$T/slow"
	record_bg "$real"
	# fusdctl record's own ioctl on the real device waits there; an interrupted caller must end it.
	# SIGUSR2 stands for any signal the caller handles (a background job ignores SIGINT).
	local ioctl_caller='
import fcntl, os, signal, sys
def stop(*_):
    raise KeyboardInterrupt
signal.signal(signal.SIGUSR2, stop)
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.ioctl(fd, (2 << 30) | (4 << 16) | (0x78 << 8) | 1, bytearray(4))  # _IOR(x, 1, int)
    print("answered")
except KeyboardInterrupt:
    print("interrupted")
except OSError as e:
    print(e.strerror)'
	"$PY" -c "$ioctl_caller" "$DEV" >"$T/caller1.out" 2>&1 & # not py: $! must be the caller itself
	local caller=$!
	track_cmd "$caller"
	wait_for "$GUARD" test -s "$T/slow.ioctls" || fail "the ioctl did not reach the real device"
	kill -USR2 "$caller"
	wait_gone "$caller" "$GUARD" || fail "the interrupted caller is still waiting"
	wait "$caller" || true
	assert_equal "$(cat "$T/caller1.out")" interrupted
	wait_gone "$(head -1 "$T/slow.ioctls")" "$GUARD" # the real device's call was interrupted too
	# The recorder still serves.
	run py 'import os, sys; print(os.read(os.open(sys.argv[1], os.O_RDONLY), 10))' "$DEV"
	assert_success
	assert_output "b'ok'"
	# SIGTERM while another ioctl waits in the real device: the recorder ends, the caller gets an error.
	"$PY" -c "$ioctl_caller" "$DEV" >"$T/caller2.out" 2>&1 &
	caller=$!
	track_cmd "$caller"
	two_ioctls() { [ "$(wc -l <"$T/slow.ioctls")" -ge 2 ]; }
	wait_for "$GUARD" two_ioctls || fail "the second ioctl did not reach the real device"
	stop_record
	wait_gone "$caller" "$GUARD" || fail "the caller is still waiting after the recorder stopped"
	wait "$caller" || true
	[ "$(cat "$T/caller2.out")" != answered ] || fail "the ioctl was answered"
	gone "$DEV"
}
