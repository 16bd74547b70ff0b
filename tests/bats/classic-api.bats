#!/usr/bin/env bats
# The classic FUSD C API's semantics (fusd.h, libfusd(3)) that FUSD drivers rely on, held by
# tests/classic/classic-regress.c and examples/classic/classic.c: offsets, -FUSD_NOREPLY,
# poll_diff, unblock, devices removed under the driver, signals, when fusd_run() returns.

load helpers
bats_scope every-backend

BUILD=${FUSD_BUILD:-$REPO/build}
EX=$BUILD/examples/classic
REGRESS=$BUILD/tests/classic-regress

@test "classic offsets: the position is what the driver left in *offset, moved once" {
	driver "$DEV" -- "$EX/classic" "$NAME"
	# two read(fd, buf, 5): the second goes on where the first ended
	run dd if="$DEV" bs=5 count=2 status=none
	assert_success
	assert_output "classic fu"
	run dd if="$DEV" bs=4 status=none
	assert_output "classic fusd"
}

@test "classic: a read answered inside its own callback, which then returns -FUSD_NOREPLY" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	exec 5<"$DEV"
	echo data >"$DEV-ctl"
	run timeout "$GUARD" dd bs=64 count=1 status=none <&5
	exec 5<&-
	assert_output "gen 1"
	alive "$DRIVER"
	run cat "$DEV-ctl"
	assert_line "violations 0"
}

@test "classic: kept reads answered with 0 bytes from another device's write end their readers (pager)" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	# as the original pager's check: cat (reads of 128 KiB) blocked, then its poll_diff and its
	# read answered from the write callback of another device, the read with 0 bytes
	timeout "$GUARD" cat "$DEV" >"$T/blocked" &
	reader=$!
	wait_for "$GUARD" grep -q "a read is pending" "$T/driver.out"
	# and an open whose read comes only after that write: answered inside its own callback
	exec 5<"$DEV"
	echo eof >"$DEV-ctl"
	local status=0
	wait "$reader" || status=$?
	[ "$status" = 0 ] || fail "the blocked cat ended with status $status (124: still blocked after $GUARD s)"
	run timeout "$GUARD" cat <&5
	exec 5<&-
	assert_success
	assert_output ""
	run cat "$T/blocked"
	assert_output ""
	alive "$DRIVER"
	run cat "$DEV-ctl"
	assert_line "violations 0"
}

@test "classic: poll_diff runs on the loop's thread, never inside another callback" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	for how in data thread; do
		exec 5<"$DEV-direct"
		timeout "$GUARD" dd bs=64 count=1 status=none <&5 >"$T/read-$how" &
		reader=$!
		wait_for "$GUARD" grep -q "a read is pending" "$T/driver.out"
		: >"$T/driver.out"
		echo "$how" >"$DEV-ctl"
		wait "$reader"
		exec 5<&-
		run cat "$T/read-$how"
		assert_output --regexp "^gen [0-9]+$"
	done
	alive "$DRIVER"
	run cat "$DEV-ctl"
	assert_line "violations 0"
}

@test "classic: FUSD_NOTIFY_EXCEPT is what select() reports as an exceptional condition" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	run timeout "$GUARD" "$PY" -c '
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
before = select.select([], [], [fd], 0)[2]
with open(sys.argv[2], "w") as f:
    f.write("except")
after = select.select([], [], [fd], float(sys.argv[3]))[2]
print("before", bool(before), "after", bool(after))
' "$DEV" "$DEV-ctl" "$GUARD"
	assert_output "before False after True"
}

@test "classic: unblock gets a call of its own; the interrupted read is the driver's to end" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	exec 5<"$DEV"
	timeout "$GUARD" dd bs=64 count=1 status=none <&5 >/dev/null &
	reader=$!
	wait_for "$GUARD" grep -q "a read is pending" "$T/driver.out"
	kill -INT "$reader"
	wait "$reader" || true
	# the driver is alive and the same open still reads
	echo data >"$DEV-ctl"
	run timeout "$GUARD" dd bs=64 count=1 status=none <&5
	exec 5<&-
	assert_output "gen 1"
	alive "$DRIVER"
}

@test "classic: fusd_unregister of a device the library removed (fusdctl rm) is harmless" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	run "$FUSDCTL" rm "$DEV"
	assert_success
	wait_for "$GUARD" test ! -e "$DEV"
	echo unregister >"$DEV-ctl"
	alive "$DRIVER"
	run cat "$DEV-ctl"
	assert_line "violations 0"
}

@test "classic: a kept poll_diff answered after its device was removed under an open file" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	exec 5<"$DEV"
	run "$FUSDCTL" rm "$DEV"
	assert_success
	wait_for "$GUARD" test ! -e "$DEV"
	echo data >"$DEV-ctl"
	exec 5<&-
	alive "$DRIVER"
	run cat "$DEV-ctl"
	assert_line "violations 0"
}

@test "classic signals: SIGINT and SIGTERM are not blocked in the driver (nor in its children)" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	blocked=$(awk '/^SigBlk:/ { print $2 }' "/proc/$DRIVER/status")
	(((0x$blocked & 0x4002) == 0)) || fail "SigBlk $blocked has SIGINT or SIGTERM"
}

@test "classic signals: Ctrl-C ends a driver with its own select loop, nothing left behind" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" --own-loop "$DEV"
	run cat "$DEV-ctl"
	assert_line "violations 0"
	kill -INT "$DRIVER"
	wait_gone "$DRIVER" "$GUARD"
	status=0
	wait "$DRIVER" || status=$?
	[ "$status" = 130 ] || fail "exit status $status, not 130 (killed by SIGINT)"
	gone "$DEV" "$DEV-ctl" "$DEV-direct"
}

@test "classic signals: the driver's own SIGINT handler runs; exit() leaves nothing behind" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" --own-loop --handler "$T/handled" "$DEV"
	kill -INT "$DRIVER"
	wait_gone "$DRIVER" "$GUARD"
	run cat "$T/handled"
	assert_output "handler ran"
	gone "$DEV" "$DEV-ctl" "$DEV-direct"
}

@test "classic signals: SIGTERM ends a fusd_run driver by that signal, nothing left behind" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	kill -TERM "$DRIVER"
	wait_gone "$DRIVER" "$GUARD"
	status=0
	wait "$DRIVER" || status=$?
	[ "$status" = 143 ] || fail "exit status $status, not 143 (killed by SIGTERM)"
	gone "$DEV" "$DEV-ctl" "$DEV-direct"
}

@test "classic fusd_run: returns (exit 0) once the last device is gone" {
	driver "$DEV" -- "$EX/classic" "$NAME"
	run "$FUSDCTL" rm "$DEV"
	assert_success
	wait_gone "$DRIVER" "$GUARD"
	status=0
	wait "$DRIVER" || status=$?
	[ "$status" = 0 ] || fail "exit status $status"
	gone "$DEV"
}

@test "classic fusd_run: with no device registered it says so and exits 1" {
	run timeout "$GUARD" "$EX/drums" "/dev/../tmp/not-under-dev"
	assert_failure 1
	assert_line "fusd_run: no device is registered"
}

@test "classic signals: Ctrl-C ends a driver blocked in a callback (console-read), nothing left" {
	mkfifo "$T/console"
	exec 6<>"$T/console"
	driver "$DEV" -- sh -c 'exec "$1" "$2" <"$3"' sh "$EX/console-read" "$NAME" "$T/console"
	timeout "$GUARD" cat "$DEV" >"$T/reader.out" 2>&1 &
	reader=$!
	wait_for "$GUARD" grep -q "answer?" "$T/driver.out"
	kill -INT "$DRIVER"
	wait_gone "$DRIVER" "$GUARD"
	status=0
	wait "$DRIVER" || status=$?
	exec 6>&-
	[ "$status" = 130 ] || fail "exit status $status, not 130 (killed by SIGINT)"
	wait "$reader" || true
	gone "$DEV"
}

@test "classic fusd_unparse_flags: a poll state as RWE" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	run cat "$DEV-ctl"
	assert_line "unparse R-E -W-"
}

@test "classic: a terminal ioctl (TCGETS, no size in its number) gets a buffer of its table size" {
	driver "$DEV" "$DEV-ctl" "$DEV-direct" -- "$REGRESS" "$DEV"
	backend=$("$FUSDCTL" ls --json | "$PY" -c '
import json, sys
print([d["backend"] for d in json.load(sys.stdin) if d["device"] == sys.argv[1]][0])' "$DEV-direct")
	run timeout "$GUARD" stty -F "$DEV-direct" speed
	if [ "$backend" = fuse ]; then
		assert_failure # a regular file carries no terminal ioctls (libfusd(3))
		assert_output --partial "Inappropriate ioctl for device"
	else
		assert_success
		assert_output "9600"
	fi
	alive "$DRIVER"
}

LABELS=$BUILD/tests/classic-labels

backend_of() { # backend_of NODE: the backend `fusdctl ls` says serves NODE
	"$FUSDCTL" ls --json | "$PY" -c '
import json, sys
print(next(d["backend"] for d in json.load(sys.stdin) if d["device"] == sys.argv[1]))' "$1"
}

@test "classic fusd_register: class and devname are sysfs labels on the kernel backend, kept nowhere else" {
	driver "$DEV" -- "$LABELS" "$DEV" misc "$NAME!x"
	run cat "$DEV"
	assert_output "labeled"
	run backend_of "$DEV"
	assert_success
	if [ "$output" = kernel ]; then
		run cat "/sys/class/fusd/$NAME/clazz" "/sys/class/fusd/$NAME/devname"
		assert_output "misc
$NAME!x"
	else
		[ ! -e "/sys/class/fusd/$NAME" ] || fail "/sys/class/fusd/$NAME on backend $output"
	fi
}

@test "classic fusd_register: a bad class or devname fails alike on every backend, nothing made" {
	local long
	long=$(printf 'c%.0s' {1..48})
	for args in "my class|x" "misc|a/b" "misc|new
line" "$long|x" "misc|$long"; do
		run timeout "$GUARD" "$LABELS" "$DEV" "${args%%|*}" "${args#*|}"
		assert_failure 1
		if [ "${#args}" -gt 40 ]; then
			assert_line "fusd_register: File name too long"
		else
			assert_line "fusd_register: Invalid argument"
		fi
		[ ! -e "$DEV" ] || fail "$DEV made for '$args'"
	done
	# the longest: 47 characters
	driver "$DEV" -- "$LABELS" "$DEV" "${long:1}" "$NAME"
	run cat "$DEV"
	assert_output "labeled"
}
