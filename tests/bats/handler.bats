#!/usr/bin/env bats
# fusdctl serve --handler SCRIPT: one run of SCRIPT per call, its exit status the answer (0, 1 with
# an errno name on stderr, 3 for the default), a state directory per open file, through the
# shipped examples/handler/sensor.sh and scripts of the tests' own.

load helpers
bats_scope every-backend

SENSOR=$REPO/examples/handler/sensor.sh

# handler NAME: the script on stdin, as $T/NAME (bash); it may log to $T/NAME.log.
handler() {
	{
		echo '#!/bin/bash'
		echo "LOG=$T/$1.log"
		cat
	} >"$T/$1"
	chmod +x "$T/$1"
}

@test "sensor.sh: a line per open, a write sets the unit, an ioctl answers with data" {
	serve_d "$NAME" --handler "$SENSOR"
	run timeout "$GUARD" cat "$DEV"
	assert_success
	assert_output "23.5"
	run py '
import os, sys, fcntl, struct
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"fahrenheit")
print(os.read(fd, 100), os.read(fd, 100))
b = bytearray(4)
fcntl.ioctl(fd, 0x80045301, b)
print(struct.unpack("=i", b)[0])
try:
    os.write(fd, b"kelvin")
except OSError as e:
    print(e.strerror)
try:
    fcntl.ioctl(fd, 0x80045302, b)
except OSError as e:
    print(e.strerror)
os.close(fd)' "$DEV"
	assert_success
	assert_output $'b\'74\\n\' b\'\'\n23500\nInvalid argument\nInappropriate ioctl for device'
}

@test "the arguments, the data on stdin and the caller in the environment" {
	handler args <<'EOF2'
{ echo "$* uid=$FUSD_CALLER_UID pid=$FUSD_CALLER_PID"; [ "$1" != write ] || { echo -n "data="; cat; echo; }; } >>"$LOG"
[ "$1" = read ] && { echo -n 0123456789; exit 0; }
[ "$1" = ioctl ] && { cat >/dev/null; printf 'out!'; exit 0; }
exit 0
EOF2
	serve_d "$NAME" --mode 0666 --handler "$T/args"
	run as_nobody timeout "$GUARD" "$PY" -c '
import os, sys, fcntl
fd = os.open(sys.argv[1], os.O_RDWR)
print(os.getpid())
print(os.read(fd, 10))
print(os.write(fd, b"hello"))
b = bytearray(b"in..")
fcntl.ioctl(fd, (3 << 30) | (4 << 16) | (0x54 << 8) | 7, b)
print(bytes(b))
os.close(fd)' "$DEV"
	assert_success
	caller=${lines[0]}
	assert_line "b'0123456789'"
	assert_line 5
	assert_line "b'out!'"
	wait_for "$GUARD" grep -q '^release' "$T/args.log"
	run cat "$T/args.log"
	assert_line "open uid=65534 pid=$caller"
	assert_line "read 10 uid=65534 pid=$caller"
	assert_line "write 5 uid=65534 pid=$caller"
	assert_line "data=hello"
	assert_line "ioctl 0xc0045407 4 uid=65534 pid=$caller"
	assert_line "release uid=65534 pid=$caller"
}

@test "exit 1 with an errno name on stderr: that errno; other stderr lines are logged" {
	handler errs <<'EOF2'
case $1 in
open) [ "$FUSD_CALLER_UID" = 0 ] || { echo "refusing uid $FUSD_CALLER_UID" >&2; echo EACCES >&2; exit 1; } ;;
read) echo EAGAIN >&2; exit 1 ;;
write) echo "not a name" >&2; exit 1 ;;
ioctl) exit 2 ;;
esac
EOF2
	serve_d "$NAME" --mode 0666 --log "$T/log" --handler "$T/errs"
	run as_nobody timeout "$GUARD" cat "$DEV"
	assert_failure
	assert_output --partial "Permission denied"
	run py '
import os, sys, fcntl
fd = os.open(sys.argv[1], os.O_RDWR)
for f in (lambda: os.read(fd, 1), lambda: os.write(fd, b"x"), lambda: fcntl.ioctl(fd, 0x80045301, bytearray(4))):
    try:
        f()
    except OSError as e:
        print(e.strerror)
os.close(fd)' "$DEV"
	assert_success
	assert_output $'Resource temporarily unavailable\nInput/output error\nInput/output error'
	run cat "$T/log"
	assert_line "refusing uid 65534"
	refute_line EACCES
	assert_line "not a name"
	assert_line --partial "errs write: exited with status 1 and no errno name"
	assert_line --partial "errs ioctl: exited with status 2"
}

@test "exit 3 (not implemented): open and release succeed, read is end of file, write takes all, ioctl ENOTTY" {
	handler none <<'EOF2'
echo "$1" >>"$LOG"
exit 3
EOF2
	serve_d "$NAME" --handler "$T/none"
	run py '
import os, sys, fcntl
fd = os.open(sys.argv[1], os.O_RDWR)
print(os.read(fd, 10), os.write(fd, b"abc"))
try:
    fcntl.ioctl(fd, 0x80045301, bytearray(4))
except OSError as e:
    print(e.strerror)
os.close(fd)' "$DEV"
	assert_success
	assert_output $'b\'\' 3\nInappropriate ioctl for device'
	wait_for "$GUARD" grep -q release "$T/none.log"
	run cat "$T/none.log"
	assert_output $'open\nread\nwrite\nioctl\nrelease'
}

@test "a state directory per open file, removed after release" {
	handler state <<'EOF2'
case $1 in
open) echo "$FUSD_STATE_DIR" >>"$LOG"; echo "$FUSD_FILE" >"$FUSD_STATE_DIR/me" ;;
read) [ -e "$FUSD_STATE_DIR/done" ] && exit 0; touch "$FUSD_STATE_DIR/done"; cat "$FUSD_STATE_DIR/me" ;;
esac
exit 0
EOF2
	serve_d "$NAME" --handler "$T/state"
	run py '
import os, sys
a = os.open(sys.argv[1], os.O_RDONLY)
b = os.open(sys.argv[1], os.O_RDONLY)
print(os.read(a, 100) != os.read(b, 100), os.read(a, 100), os.read(b, 100))
os.close(a)
os.close(b)' "$DEV"
	assert_success
	assert_output "True b'' b''"
	mapfile -t dirs <"$T/state.log"
	[ "${#dirs[@]}" = 2 ] && [ "${dirs[0]}" != "${dirs[1]}" ] || fail "state dirs: ${dirs[*]}"
	for d in "${dirs[@]}"; do wait_for "$GUARD" test ! -e "$d" || fail "$d is left"; done
}

@test "a slow script holds only its own call; an interrupted caller's script is killed" {
	handler slow <<'EOF2'
case $1 in
read)
	if [ "$2" = 1 ]; then echo $$ >>"$LOG"; exec sleep 600; fi
	echo quick ;;
esac
exit 0
EOF2
	serve_d "$NAME" --handler "$T/slow"
	timeout "$GUARD" "$PY" -c 'import os, sys; os.read(os.open(sys.argv[1], os.O_RDONLY), 1)' "$DEV" &
	slow=$!
	wait_for "$GUARD" test -s "$T/slow.log" || fail "the read's script did not start"
	track_cmd "$(cat "$T/slow.log")"
	run py 'import os, sys; print(os.read(os.open(sys.argv[1], os.O_RDONLY), 100))' "$DEV"
	assert_success
	assert_output "b'quick\\n'"
	kill -INT "$slow"
	status=0
	wait "$slow" || status=$?
	[ "$status" != 0 ] || fail "the interrupted read succeeded"
	wait_gone "$(cat "$T/slow.log")" "$GUARD"
}

@test "SIGTERM with a file open: the scripts, the state and the node go" {
	handler held <<'EOF2'
[ "$1" = open ] && echo "$FUSD_STATE_DIR" >"$LOG"
[ "$1" = read ] && exec sleep 600
exit 0
EOF2
	serve_d "$NAME" --grace 0.2 --handler "$T/held"
	py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    print(repr(os.read(fd, 10)))
except OSError as e:
    print(e.strerror)' "$DEV" >"$T/out" &
	reader=$!
	wait_for "$GUARD" test -s "$T/held.log"
	dir=$(cat "$T/held.log")
	sleep 0.2
	kill -TERM "$SERVER_PID"
	wait_gone "$SERVER_PID" "$GUARD"
	wait "$reader" || true
	[ -s "$T/out" ] || fail "the reader was not answered"
	[ ! -e "$dir" ] || fail "$dir is left"
	gone "$DEV"
}

@test "SIGKILL of the server: its scripts and their state directories go too, with no fusd command run" {
	handler held <<'EOF2'
[ "$1" = open ] && echo "$FUSD_STATE_DIR" >"$LOG"
[ "$1" = read ] && { echo $$ >"$LOG.read"; exec sleep 600; }
exit 0
EOF2
	serve_d "$NAME" --handler "$T/held"
	py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    print(repr(os.read(fd, 10)))
except OSError as e:
    print(e.strerror)' "$DEV" >"$T/out" 2>&1 &
	reader=$!
	wait_for "$GUARD" test -s "$T/held.log.read"
	local dir script
	dir=$(cat "$T/held.log")
	script=$(cat "$T/held.log.read")
	track_cmd "$script"
	[ -d "$dir" ]
	kill -KILL "$SERVER_PID"
	wait_gone "$SERVER_PID" "$GUARD"
	wait_gone "$script" "$GUARD" # PR_SET_PDEATHSIG
	wait_for "$GUARD" not test -e "$dir" # fusd-cleaner
	wait_for "$GUARD" not test -e "$DEV"
	wait "$reader" || true
}
