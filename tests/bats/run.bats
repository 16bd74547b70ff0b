#!/usr/bin/env bats
# fusdctl run: fake devices for one process tree in namespaces of its own, as uid 65534 and as
# root; a static busybox and a raw open(2) see them; pyserial talks to a --tty port; a --replay
# device replays a recording; PROGRAM's exit status passes through; nothing is left behind when
# PROGRAM ends, when PROGRAM is SIGKILLed, or when fusdctl is.

load helpers
bats_scope namespace

setup() {
	common_setup
	# This machine kind has no udev and leaves /dev/fuse at 0600; Debian's fuse3 udev rule makes
	# it 0666, as here (restored in teardown).
	FUSE_MODE=$(stat -c %a /dev/fuse)
	chmod 0666 /dev/fuse
	# A directory uid 65534 may enter and write (the test's own is root's only).
	U=$(mktemp -d /tmp/fusd-run-bats.XXXXXX)
	chmod 0777 "$U"
	# Every process of a run carries this word on its command line: fusdctl and its forks in
	# their argv, the commands and PROGRAM in their `sh -c` text.
	MARK=fusd-bats-run-$$-$BATS_TEST_NUMBER
}

teardown() {
	local leftovers=""
	if pgrep -f "$MARK" >/dev/null; then
		leftovers+=" processes: $(pgrep -af "$MARK" | tr '\n' ';')"
		pkill -KILL -f "$MARK" || true
	fi
	grep -q "$MARK" /proc/mounts && leftovers+=" mounts: $(grep "$MARK" /proc/mounts | tr '\n' ';')"
	[ -n "$FUSE_MODE" ] && chmod "$FUSE_MODE" /dev/fuse
	rm -rf "$U"
	common_teardown
	[ -z "$leftovers" ] || fail "left behind:$leftovers"
}

# fr ARGS...: fusdctl run as uid 65534, from $U, under the hang guard.
fr() { (cd "$U" && timeout "$GUARD" setpriv --reuid=65534 --regid=65534 --clear-groups "$FUSDCTL" run "$@"); }

# nothing_left: no process of this test, no mount of it in the host's view, nothing in the
# test's registry, no node in the host's /dev.
nothing_left() {
	wait_for "$GUARD" not pgrep -f "$MARK" || fail "still running: $(pgrep -af "$MARK")"
	not grep -q "$MARK" /proc/mounts
	not compgen -G "$T/runtime/*"
	not compgen -G "/dev/$MARK*"
}

# busybox's cat copies with sendfile(2), which on a FUSE device reads as empty on Linux 6.5 and
# later (the kernel's splice reads a FUSE file through its page cache, size 0, even with
# direct I/O: see fusdctl-run(1), BUGS); its head reads with read(2), as a static program would.
@test "run: a static busybox reads a --serve device at /dev/clock, as uid 65534" {
	file -L /bin/busybox | grep -q "statically linked" || fail "no static busybox (busybox-static)"
	run fr --serve "/dev/clock=: $MARK; date +%s" -- /bin/busybox head -n 1 /dev/clock
	assert_success
	[[ $output =~ (^|$'\n')[0-9]+($|$'\n') ]] || fail "not the date: $output"
	nothing_left
}

@test "run: a raw open(2) from python works; id says the user's own uid; the node is theirs" {
	run fr --serve "/dev/$MARK=echo hello" -- "$PY" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.read(fd, 100).decode().strip())
print(os.getuid(), os.getgid(), os.stat(sys.argv[1]).st_uid)
' "/dev/$MARK"
	assert_success
	assert_line hello
	assert_line "65534 65534 65534"
	run fr -- id
	assert_success
	assert_output "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
	nothing_left
}

@test "run: PROGRAM keeps the user's uid on the host's files" {
	run fr -- sh -c ": $MARK; touch '$U/made'"
	assert_success
	[ "$(stat -c %u:%g "$U/made")" = 65534:65534 ]
}

@test "run: pyserial talks to a --tty port, as uid 65534" {
	"$PY" -c 'import serial' 2>/dev/null || fail "no pyserial for $PY (scripts/bootstrap installs python3-serial)"
	cat >"$U/upper.py" <<'PY'
import os
while True:
    d = os.read(0, 1024)
    if not d:
        break
    os.write(1, d.replace(b"\r", b"").replace(b"\n", b"").upper() + b"\r\n")
PY
	run fr --tty "/dev/ttyFAKE0=: $MARK; exec $PY -u $U/upper.py" -- "$PY" -c '
import os, serial
p = serial.Serial("/dev/ttyFAKE0", 115200, timeout=30)
print("tty", os.isatty(p.fileno()))
p.write(b"hello\r")
print(p.read_until(b"\n").strip())
p.close()
'
	assert_success
	assert_line "tty True"
	assert_line "b'HELLO'"
	nothing_left
}

@test "run: a --replay device replays a recording, as uid 65534" {
	cat >"$U/rec" <<'REC'
{"fusd-recording":1,"device":"/dev/sensor0"}
{"open":1,"call":"open","access":"r"}
{"t":0,"open":1,"call":"read","text":"21.5\n"}
{"t":0.1,"open":1,"call":"read","text":"21.7\n"}
{"t":0.1,"open":1,"call":"read","text":""}
{"open":1,"call":"close"}
REC
	run fr --replay "/dev/sensor0=$U/rec" -- sh -c ": $MARK; cat /dev/sensor0"
	assert_success
	assert_line 21.5
	assert_line 21.7
	nothing_left
}

@test "run: PROGRAM's exit status passes through, 128+signal when killed" {
	run fr --serve "/dev/$MARK=date" -- sh -c "exit 7"
	assert_failure 7
	run fr -- sh -c ": $MARK; kill -TERM \$\$"
	assert_failure 143
	local rc=0 # not through `run`, which warns about every 127
	fr -- /nonexistent-program 2>"$T/err" || rc=$?
	[ "$rc" = 127 ] || fail "status $rc for a missing PROGRAM"
	grep -q "/nonexistent-program" "$T/err"
	nothing_left
}

@test "run: nothing is left when PROGRAM is SIGKILLed" {
	(set +e; fr --serve "/dev/$MARK=: $MARK; exec sleep 1000" -- sh -c ": $MARK-prog; touch '$U/ready'; sleep 1000" \
		>"$T/out" 2>&1; echo $? >"$T/rc") 3>&- &
	wait_for "$GUARD" test -e "$U/ready" || fail "PROGRAM did not start: $(cat "$T/out")"
	local prog
	prog=$(pgrep -f "^sh -c : $MARK-prog") || fail "no PROGRAM: $(pgrep -af "$MARK")"
	kill -KILL "$prog"
	wait_for "$GUARD" test -s "$T/rc" || fail "fusdctl run did not end: prog=$prog $(pgrep -af "$MARK") $(cat "$T/out")"
	[ "$(cat "$T/rc")" = 137 ] || fail "status $(cat "$T/rc"): $(cat "$T/out")"
	nothing_left
}

@test "run: nothing is left when fusdctl itself is SIGKILLed" {
	cd "$U"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$FUSDCTL" run \
		--serve "/dev/$MARK=: $MARK; exec sleep 1000" --tty "/dev/ttyFAKE0=: $MARK; exec cat" \
		-- sh -c ": $MARK-prog; touch '$U/ready'; sleep 1000" >"$T/out" 2>&1 3>&- &
	local run_pid=$!
	wait_for "$GUARD" test -e "$U/ready" || fail "PROGRAM did not start: $(cat "$T/out")"
	pgrep -f "^sh -c : $MARK-prog" >/dev/null || fail "no PROGRAM: $(pgrep -af "$MARK")"
	kill -KILL "$run_pid"
	nothing_left
}

@test "run: as root, the devices are served and nothing is left" {
	run timeout "$GUARD" "$FUSDCTL" run --serve "/dev/$MARK=echo rooted" -- sh -c ": $MARK; id -u; cat /dev/$MARK"
	assert_success
	assert_line 0
	assert_line rooted
	nothing_left
}

@test "run: bad command lines are refused with status 2, nothing made" {
	run fr --serve "dev/x=date" -- true
	assert_failure 2
	assert_output --partial "PATH must be absolute"
	run fr --serve "/tmp/x=date" -- true
	assert_failure 2
	assert_output --partial "under /dev"
	run fr --serve "/dev/$MARK=date" --tty "/dev/$MARK=cat" -- true
	assert_failure 2
	assert_output --partial "named twice"
	run fr --serve "/dev/$MARK" -- true
	assert_failure 2
	assert_output --partial "expected PATH=COMMAND"
	run fr --serve "/dev/null=date" -- true
	assert_failure 2
	assert_output --partial "the host's"
	run fr --serve "/dev/$MARK=date"
	assert_failure 2
	assert_output --partial "PROGRAM is missing"
	run fr --no-such-option -- true
	assert_failure 2
	run fr --replay "/dev/$MARK=$U/no-such-recording" -- true
	assert_failure 1
	assert_output --partial "no-such-recording"
	nothing_left
}

@test "run: outside a run, a user's FUSE device is still refused clearly" {
	run timeout "$GUARD" setpriv --reuid=65534 --regid=65534 --clear-groups "$FUSDCTL" serve --backend fuse "/dev/$MARK" -- date
	assert_failure 1
	assert_output --partial "not root"
	assert_output --partial "fusdctl run"
	nothing_left
}

@test "doctor: says whether fusdctl run is usable for this user, and why not" {
	run timeout "$GUARD" setpriv --reuid=65534 --regid=65534 --clear-groups "$FUSDCTL" doctor
	assert_line "fusdctl run: usable by uid 65534 (FUSE in namespaces of its own)"
	chmod 0600 /dev/fuse # as without udev; teardown restores the mode
	run timeout "$GUARD" setpriv --reuid=65534 --regid=65534 --clear-groups "$FUSDCTL" doctor
	assert_line --regexp "^fusdctl run: not usable by uid 65534: /dev/fuse: Permission denied"
	run timeout "$GUARD" setpriv --reuid=65534 --regid=65534 --clear-groups "$FUSDCTL" doctor --json
	echo "$output" | "$PY" -c 'import json,sys; r=json.load(sys.stdin)["run"]; assert not r["usable"] and "/dev/fuse" in r["reason"], r'
	# and fusdctl run itself says so, with nothing made
	run fr --serve "/dev/$MARK=date" -- true
	assert_failure 1
	assert_output --partial "/dev/fuse"
	nothing_left
}

@test "run --drivers: a libfusd driver that PROGRAM starts serves its own device, as uid 65534; without, refused" {
	local serve="\"$FUSDCTL\" serve --detach --backend fuse /dev/$MARK -- echo served >/dev/null && cat /dev/$MARK"
	run fr --drivers -- sh -c ": $MARK; $serve"
	assert_success
	assert_line served
	run fr -- sh -c ": $MARK; $serve"
	assert_failure
	assert_output --partial "not root"
	assert_output --partial "fusdctl run --drivers"
	nothing_left
}

@test "run: SIGTERM sent to fusdctl reaches PROGRAM, whose status is run's" {
	(set +e; cd "$U" && setpriv --reuid=65534 --regid=65534 --clear-groups "$FUSDCTL" run --serve "/dev/$MARK=: $MARK; exec sleep 1000" \
		-- sh -c ": $MARK-prog; trap 'exit 42' TERM; touch '$U/ready'; while :; do sleep 0.1; done" >"$T/out" 2>&1
	echo $? >"$T/rc") 3>&- &
	wait_for "$GUARD" test -e "$U/ready" || fail "PROGRAM did not start: $(cat "$T/out")"
	local run_pid
	run_pid=$(pgrep -o -f "^$FUSDCTL run --serve /dev/$MARK=") || fail "no fusdctl run: $(pgrep -af "$MARK")"
	kill -TERM "$run_pid"
	wait_for "$GUARD" test -s "$T/rc" || fail "fusdctl run did not end: $(cat "$T/out")"
	[ "$(cat "$T/rc")" = 42 ] || fail "status $(cat "$T/rc"): $(cat "$T/out")"
	nothing_left
}

# in_limited_userns COMMAND...: COMMAND as uid 65534 inside a user namespace (uids 0-65535 mapped
# onto the host's) where user.max_user_namespaces is 0: no user namespace for anybody in it, as
# on a machine that forbids them (without touching the host's sysctl). Output in $T/limited.
in_limited_userns() {
	rm -f "$T/go"
	mkfifo "$T/go"
	# The first sh lost its capabilities at its exec, before the maps made it uid 0; the second,
	# exec'ed as uid 0 of the namespace, has them all there.
	unshare -U sh -c 'read _ <"$1"; shift; exec sh -c '"'"'echo 0 >/proc/sys/user/max_user_namespaces || exit 3
		exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"'"'"' _ "$@"' _ "$T/go" "$@" >"$T/limited" 2>&1 3>&- &
	local pid=$! ours
	ours=$(readlink /proc/self/ns/user)
	wait_for "$GUARD" test "$(readlink "/proc/$pid/ns/user" 2>/dev/null || echo "$ours")" != "$ours"
	echo "0 0 65536" >"/proc/$pid/uid_map"
	echo "0 0 65536" >"/proc/$pid/gid_map"
	echo go >"$T/go"
	local rc=0
	wait_gone "$pid" "$GUARD" || fail "still running: $(cat "$T/limited")"
	wait "$pid" || rc=$?
	return "$rc"
}

@test "run: where user namespaces are forbidden, doctor and run say so; nothing made" {
	in_limited_userns "$FUSDCTL" doctor || true
	grep -q "^fusdctl run: not usable by uid 65534: no user namespace for you: .*(user.max_user_namespaces is 0)" "$T/limited" ||
		fail "$(cat "$T/limited")"
	local rc=0
	in_limited_userns "$FUSDCTL" run --serve "/dev/$MARK=date" -- true || rc=$?
	[ "$rc" = 1 ] || fail "status $rc: $(cat "$T/limited")"
	grep -q "cannot make a user namespace: .*user.max_user_namespaces" "$T/limited" || fail "$(cat "$T/limited")"
	nothing_left
}
