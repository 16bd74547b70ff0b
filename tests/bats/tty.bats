#!/usr/bin/env bats
# examples/fake_tty, a terminal served by a driver: the terminal ioctls (TCGETS and friends,
# whose numbers carry no size) reach it with their real sizes, so stty and pyserial use it as
# they would /dev/ttyUSB0. FUSE cannot carry them (the node is a regular file): there the test
# checks that they fail cleanly.

load helpers
bats_scope every-backend

# start_tty: runs examples/fake_tty on $DEV; sets ON to the backend serving it.
start_tty() { start_example fake_tty; }

@test "fake_tty: stty reads and sets the speed; -a shows the settings; not only for root" {
	start_tty
	if [ "$ON" = fuse ]; then
		run timeout "$GUARD" stty -F "$DEV" speed
		assert_failure
		assert_output --partial "Inappropriate ioctl for device"
		skip "FUSE carries no terminal ioctls (a regular file): stty fails with ENOTTY, as checked"
	fi
	run timeout "$GUARD" stty -F "$DEV" speed
	assert_success
	assert_output 9600
	run timeout "$GUARD" stty -F "$DEV" 19200 -echo raw
	assert_success
	run as_nobody timeout "$GUARD" stty -F "$DEV" -a
	assert_success
	assert_output --partial "speed 19200 baud"
	assert_output --partial "-echo"
	assert_output --partial "rows 0; columns 0"
	run timeout "$GUARD" stty -F "$DEV" rows 24 cols 80
	assert_success
	run timeout "$GUARD" stty -F "$DEV" size
	assert_output "24 80"
}

@test "fake_tty: pyserial opens, sets standard and custom speeds (TCSETS2), writes and reads; modem lines loop back" {
	"$PY" -c 'import serial' 2>/dev/null || fail "no pyserial for $PY (scripts/bootstrap installs python3-serial)"
	start_tty
	[ "$ON" != fuse ] || skip "FUSE carries no terminal ioctls (a regular file; see the first test)"
	run py '
import fcntl, os, struct, sys, serial
p = serial.Serial(sys.argv[1], 115200, timeout=10)
assert os.isatty(p.fileno())
p.dtr = True
p.rts = False
print("lines", p.dsr, p.cd, p.cts)
p.write(b"hello")
print("waiting", p.in_waiting)
print(p.read(5))
p.reset_input_buffer()
p.write(b"x")
p.reset_input_buffer()
print("flushed", p.in_waiting)
p.baudrate = 250000  # not a Bxxx constant: pyserial sets it with TCSETS2 (BOTHER)
t2 = fcntl.ioctl(p.fileno(), 0x802C542A, bytes(44))  # TCGETS2 on x86-64: struct termios2
print("speed2", struct.unpack_from("II", t2, 36))
p.baudrate = 57600
p.close()
' "$DEV"
	assert_success
	assert_line "lines True True False"
	assert_line "waiting 5"
	assert_line "b'hello'"
	assert_line "flushed 0"
	assert_line "speed2 (250000, 250000)"
	run timeout "$GUARD" stty -F "$DEV" speed
	assert_output 57600
}
