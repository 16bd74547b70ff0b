#!/usr/bin/env bats
# FUSD-era drivers (examples/classic/, written to the classic API in the style of the original
# FUSD distribution's examples) compile unchanged and behave as their comments say.

load helpers
bats_scope every-backend

BUILD=${FUSD_BUILD:-$REPO/build}
EX=$BUILD/examples/classic

@test "classic helloworld: a greeting per open, the forks' six-argument fusd_register" {
	driver "$DEV" -- "$EX/helloworld" "$NAME"
	run cat "$DEV"
	assert_success
	assert_output "hello from a classic fusd driver"
	run cat "$DEV"
	assert_output "hello from a classic fusd driver"
}

@test "classic echo: the last write is read back, in small reads too" {
	driver "$DEV" -- "$EX/echo" "$NAME"
	printf 'a line worth keeping\n' >"$DEV"
	run cat "$DEV"
	assert_output "a line worth keeping"
	run dd if="$DEV" bs=3 status=none
	assert_output "a line worth keeping"
}

@test "classic uid-filter: the caller's pid and uid; another user is refused with EPERM" {
	driver "$DEV" -- "$EX/uid-filter" "$NAME"
	run sh -c 'echo $$; exec cat "$1"' sh "$DEV"
	assert_success
	[ "${lines[1]}" = "pid ${lines[0]} uid $(id -u)" ] || fail "got: $output"
	run setpriv --reuid=65534 --regid=65534 --clear-groups cat "$DEV"
	assert_failure
	assert_output --partial "Operation not permitted"
}

@test "classic console-read: the reader gets the line typed on the driver's console" {
	mkfifo "$T/console"
	exec 6<>"$T/console"
	driver "$DEV" -- sh -c 'exec "$1" "$2" <"$3"' sh "$EX/console-read" "$NAME" "$T/console"
	timeout "$GUARD" cat "$DEV" >"$T/reader.out" &
	reader=$!
	wait_for "$GUARD" grep -q "answer?" "$T/driver.out"
	echo "typed on the console" >&6
	wait "$reader"
	exec 6>&-
	run cat "$T/reader.out"
	assert_output "typed on the console"
}

@test "classic drums: one driver, nested devices, device_info per device" {
	driver "$DEV/snare" "$DEV/kick" "$DEV/hihat" "$DEV/tom" -- "$EX/drums" "$DEV"
	track_dev "$DEV"
	run cat "$DEV/snare"
	assert_output "snare"
	run cat "$DEV/tom"
	assert_output "tom"
	kill -INT "$DRIVER"
	wait_gone "$DRIVER" "$GUARD"
	gone "$DEV/snare" "$DEV/kick" "$DEV/hihat" "$DEV/tom"
}

@test "classic drums2: private_data per open, state per device" {
	driver "$DEV/snare" "$DEV/kick" "$DEV/hihat" -- "$EX/drums2" "$DEV"
	track_dev "$DEV"
	run dd if="$DEV/snare" bs=128 count=1 status=none
	assert_output "listener 1 of snare"
	run dd if="$DEV/snare" bs=128 count=1 status=none
	assert_output "listener 2 of snare"
	run dd if="$DEV/kick" bs=128 count=1 status=none
	assert_output "listener 1 of kick"
}

@test "classic drums3: the driver's own select loop with the console; q ends it, nothing left" {
	mkfifo "$T/console"
	exec 6<>"$T/console"
	driver "$DEV/snare" "$DEV/kick" -- sh -c 'exec "$1" "$2" <"$3"' sh "$EX/drums3" "$DEV" "$T/console"
	track_dev "$DEV"
	run cat "$DEV/snare"
	assert_output "snare"
	echo 3 >&6
	wait_for "$GUARD" grep -q "loudness 3" "$T/driver.out"
	run cat "$DEV/kick"
	assert_output "KICK"
	echo q >&6
	wait_gone "$DRIVER" "$GUARD"
	exec 6>&-
	gone "$DEV/snare" "$DEV/kick"
}

# opened_at_least DEVICE N: its daemon reports at least N open files of it (fusdctl ls).
opened_at_least() {
	local n
	n=$("$FUSDCTL" ls --json | "$PY" -c '
import json, sys
print(sum(d["open_files"] for d in json.load(sys.stdin) if d["device"] == sys.argv[1]))' "$1")
	[ "$n" -ge "$2" ]
}

@test "classic pager: blocked reads and poll_diff answered later with fusd_return" {
	driver "$DEV/input" "$DEV/notify" -- "$EX/pager" "$DEV"
	track_dev "$DEV"
	timeout "$GUARD" dd if="$DEV/notify" bs=128 count=1 status=none >"$T/r1" &
	r1=$!
	timeout "$GUARD" dd if="$DEV/notify" bs=128 count=1 status=none >"$T/r2" &
	r2=$!
	# a page is for the opens made before it: both readers must have opened notify first
	wait_for "$GUARD" opened_at_least "$DEV/notify" 2
	# select() says "not readable" until a page comes, then readable
	run timeout "$GUARD" "$PY" -c '
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
before = select.select([fd], [], [], 0)[0]
with open(sys.argv[2], "w") as f:
    f.write("page\n")
after = select.select([fd], [], [], float(sys.argv[3]))[0]
print("before", bool(before), "after", bool(after))
' "$DEV/notify" "$DEV/input" "$GUARD"
	assert_output "before False after True"
	wait "$r1"
	wait "$r2"
	run cat "$T/r1" "$T/r2"
	assert_output "page 1
page 1"
	run bash -c 'echo nonsense >"$1"' bash "$DEV/input"
	assert_failure
	assert_output --partial "Invalid argument"
}

@test "classic logring: a ring of the last bytes, blocking and O_NONBLOCK reads" {
	driver "$DEV" -- "$EX/logring" 8 "$DEV"
	printf 0123456789 >"$DEV"
	run timeout "$GUARD" dd if="$DEV" bs=64 count=1 status=none
	assert_output "23456789"
	# at the end of the stream: O_NONBLOCK fails EAGAIN, a blocking read waits for the next write
	run timeout "$GUARD" "$PY" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
os.read(fd, 64)
try:
    os.read(fd, 64)
    print("no EAGAIN")
except BlockingIOError:
    print("EAGAIN")
' "$DEV"
	assert_output "EAGAIN"
	exec 5<"$DEV"
	dd bs=64 count=1 status=none <&5 >/dev/null
	timeout "$GUARD" dd bs=64 count=1 status=none <&5 >"$T/later" &
	reader=$!
	printf abc >"$DEV"
	wait "$reader"
	exec 5<&-
	run cat "$T/later"
	assert_output "abc"
}

@test "classic ioctl: the self-checking ioctl test passes; a call in flight when the driver exits gets EPIPE" {
	track_dev "$DEV"
	run timeout "$GUARD" "$EX/ioctl" "$DEV"
	assert_success
	assert_line "0 errors"
	# EPIPE, as FUSD answered the callers of a daemon that died: exit() ends the loop, whose
	# devices go with it
	assert_line "a call in flight when the driver exits: -1, Broken pipe"
	gone "$DEV"
}

@test "classic mmap-test: a driver with the forks' mmap member compiles and serves reads" {
	driver "$DEV" -- "$EX/mmap-test" "$NAME"
	run sh -c 'wc -c <"$1"; tr -d Z <"$1" | wc -c' sh "$DEV"
	assert_output "4096
0"
}

listed_backend() { # the backend fusdctl ls gives for $1; fails while it is not listed
	"$FUSDCTL" ls --json | "$PY" -c '
import json, sys
b = [d["backend"] for d in json.load(sys.stdin) if d["device"] == sys.argv[1]]
print(b[0]) if b else sys.exit(1)' "$1"
}

@test "classic mmap-test: the mmap member maps the driver's page on the kernel backend, ENODEV elsewhere" {
	driver "$DEV" -- "$EX/mmap-test" "$NAME"
	# the node may appear before the registry entry that ls reads
	wait_for "$GUARD" listed_backend "$DEV"
	backend=$(listed_backend "$DEV")
	run "$PY" -c '
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
except OSError as e:
    sys.exit("mmap: " + os.strerror(e.errno))
except ValueError as e:  # Python refuses to map past the end of a regular file (FUSE: size 0)
    sys.exit("mmap: " + str(e))
assert m[:4] == b"ZZZZ", m[:4]
m[0:5] = b"hello"
m.close()
again = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ)
print(again[:6].decode())' "$DEV"
	case $backend in
	kernel)
		assert_success
		assert_output "helloZ"
		# the driver's own page: read() serves what the caller wrote through the mapping
		run head -c 6 "$DEV"
		assert_output "helloZ"
		;;
	cuse)
		assert_failure
		assert_output "mmap: No such device"
		;;
	fuse)
		assert_failure
		assert_output --regexp '^mmap: (No such device|mmap length is greater than file size)$'
		;;
	*) fail "unknown backend '$backend'" ;;
	esac
}
