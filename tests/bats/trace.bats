#!/usr/bin/env bats
# fusdctl trace: the calls made on devices, as text or JSON lines.

load helpers
bats_scope every-backend

# start_trace OUTFILE ARGS...: a background tracer; waits until it sees traffic (proof that the
# subscription is live) by opening and closing the device until a line appears.
start_trace() {
	local out=$1
	shift
	"$FUSDCTL" trace "$@" >"$out" 2>"$T/trace.err" 3>&- &
	TRACER=$!
	track_pid "$TRACER"
	local i
	for ((i = 0; i < 100; i++)); do
		py 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDONLY))' "$DEV" >/dev/null 2>&1 || true
		[ -s "$out" ] && return 0
		sleep 0.1
	done
	fail "trace never showed any traffic: $(cat "$T/trace.err")"
}

@test "trace --json: one object per call, for a known sequence" {
	serve_d "$NAME" -- cat
	start_trace "$T/trace.json" --json "$DEV"
	run py '
import os, sys, errno, time
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"hello")
os.read(fd, 100)
nb = os.open(sys.argv[1], os.O_RDWR | os.O_NONBLOCK)
try:
    os.read(nb, 7)
except BlockingIOError:
    pass
os.close(nb)
os.close(fd)
print(os.getpid())' "$DEV"
	assert_success
	me=$output
	# wait for the last close, then check every line is JSON and our calls come in order
	wait_for "$GUARD" bash -c "[ \$(grep -c '\"pid\": *$me\|\"close\"' '$T/trace.json') -ge 7 ]"
	sleep 0.3
	run "$PY" -c '
import json, sys
me = int(sys.argv[2])
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for e in events:
    for k in ("time", "device", "pid", "comm", "op", "size", "offset", "ioctl", "result", "errno", "latency_us"):
        assert k in e, (k, e)
    assert e["device"] == sys.argv[3]
mine = [e for e in events if e["pid"] == me and e["op"] != "close"]
print(" ".join("%s:%s:%s" % (e["op"], e["size"], e["result"]) for e in mine))
print(mine[0]["comm"])
err = [e for e in mine if e["result"] < 0]
print(err[0]["errno"] if err else "no error")
closes = [e for e in events if e["op"] == "close"]
print(len(closes) >= 2)' "$T/trace.json" "$me" "$DEV"
	assert_success
	assert_line --index 0 "open:0:0 write:5:5 read:100:5 open:0:0 read:7:-11"
	assert_line --index 1 --regexp "^python3"
	assert_line --index 2 "EAGAIN"
	assert_line --index 3 "True"
}

@test "trace: text lines with time, device, pid, command, operation, result and latency" {
	serve_d "$NAME" -- echo hi
	start_trace "$T/trace.txt" "$NAME"
	# a caller that stays a moment after its calls, so that its command name can be looked up
	run py '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.read(fd, 100).decode().strip(), os.read(fd, 100) == b"", os.getpid())
time.sleep(1)
os.close(fd)' "$DEV"
	assert_success
	[[ $output =~ ^hi\ True\ ([0-9]+)$ ]]
	me=${BASH_REMATCH[1]}
	wait_for "$GUARD" grep -qE " $DEV [0-9]+ [^ ]+ close = 0 " "$T/trace.txt" || fail "no close traced: $(cat "$T/trace.txt")"
	run grep -E "^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6} $DEV $me python3[^ ]* open = 0 [0-9]+us$" "$T/trace.txt"
	assert_success
	run grep -E "^[0-9:.]+ $DEV $me python3[^ ]* read size=100 offset=[0-9]+ = 3 [0-9]+us$" "$T/trace.txt"
	assert_success
	run grep -E "^[0-9:.]+ $DEV $me python3[^ ]* read size=100 offset=[0-9]+ = 0 [0-9]+us$" "$T/trace.txt"
	assert_success
}

@test "trace -n COUNT: exits 0 after COUNT calls" {
	serve_d "$NAME" -- echo hi
	( for i in $(seq 50); do timeout "$GUARD" cat "$DEV" >/dev/null 2>&1; sleep 0.1; done ) 3>&- &
	traffic=$!
	run timeout "$GUARD" "$FUSDCTL" trace -n 3 "$DEV"
	kill "$traffic" 2>/dev/null || true
	wait "$traffic" 2>/dev/null || true
	assert_success
	[ "${#lines[@]}" -eq 3 ]
}

@test "trace with no device: every device, including ours" {
	serve_d "$NAME" -- echo hi
	start_trace "$T/all.txt"
	run grep -c " $DEV " "$T/all.txt"
	assert_success
}

@test "trace works for devices of any libfusd program, not only serve" {
	hello=$(dirname "$(dirname "$FUSDCTL")")/examples/hello
	[ -x "$hello" ] || skip "no examples/hello next to fusdctl"
	"$hello" "$NAME" --backend "$FUSD_BACKEND" >/dev/null 2>&1 3>&- &
	track_pid $!
	track_dev "$DEV"
	wait_for "$GUARD" bash -c "'$FUSDCTL' ls -q | grep -qx '$DEV'" || skip "examples/hello takes no device name"
	start_trace "$T/hello.txt" "$DEV"
	run timeout "$GUARD" cat "$DEV"
	assert_output "Hello, world!"
	wait_for "$GUARD" grep -qE " $DEV [0-9]+ cat read .* = 14 " "$T/hello.txt"
}

@test "trace: SIGINT ends it with status 0" {
	"$FUSDCTL" trace "$DEV" >/dev/null 2>&1 3>&- &
	tracer=$!
	track_pid "$tracer"
	sleep 0.5
	kill -INT "$tracer"
	wait_gone "$tracer" "$GUARD"
	wait "$tracer" # exit status 0
}

@test "trace of another user's device: refused, exit 1, the device named on stderr" {
	serve_d "$NAME" -- echo hi
	run as_nobody timeout "$GUARD" "$FUSDCTL" trace -n 1 "$DEV"
	assert_failure 1
	assert_output --partial "$DEV"
	assert_output --partial "root or the daemon's user"
}
