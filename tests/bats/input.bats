#!/usr/bin/env bats
# examples/fake_input, an evdev keyboard served by a driver, read by evtest and python3-evdev as
# a real /dev/input/eventN: the EVIOCG* ioctls (_IOC-encoded, variable sizes) and input_event
# records through read() and write(). Every backend carries these.

load helpers
bats_scope every-backend

start_input() { start_example fake_input; }

# inject CODE VALUE...: writes EV_KEY events, each followed by a SYN_REPORT, as a client would.
inject() {
	py '
import os, struct, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for code, value in zip(sys.argv[2::2], sys.argv[3::2]):
    os.write(fd, struct.pack("llHHi", 0, 0, 1, int(code), int(value)) + struct.pack("llHHi", 0, 0, 0, 0, 0))
os.close(fd)
' "$DEV" "$@"
}

@test "fake_input: evtest names the device and its keys, and prints the events written to it" {
	command -v evtest >/dev/null || fail "no evtest (scripts/bootstrap installs it)"
	start_input
	timeout "$GUARD" evtest "$DEV" >"$T/evtest.out" 2>&1 3>&- &
	track_cmd $!
	wait_for "$GUARD" grep -q "Testing ... (interrupt to exit)" "$T/evtest.out" || fail "evtest: $(cat "$T/evtest.out")"
	inject 30 1 30 0
	wait_for "$GUARD" grep -q "code 30 (KEY_A), value 0" "$T/evtest.out" || fail "evtest: $(cat "$T/evtest.out")"
	run cat "$T/evtest.out"
	assert_line "Input driver version is 1.0.1"
	assert_line "Input device ID: bus 0x6 vendor 0xf5d0 product 0x1 version 0x100"
	assert_line 'Input device name: "fusd fake keyboard"'
	assert_line "    Event code 28 (KEY_ENTER)"
	assert_line --regexp "^Event: time [0-9.]+, type 1 \(EV_KEY\), code 30 \(KEY_A\), value 1$"
	assert_line --regexp "^Event: time [0-9.]+, -------------- SYN_REPORT ------------$"
}

@test "fake_input: python3-evdev reads its capabilities and events, as a user who is not root" {
	/usr/bin/python3 -c 'import evdev' 2>/dev/null || fail "no python3-evdev (scripts/bootstrap installs it)"
	start_input
	as_nobody timeout "$GUARD" /usr/bin/python3 -c '
import sys, evdev
d = evdev.InputDevice(sys.argv[1])
print(d.name, hex(d.info.vendor), d.phys)
print(sorted(d.capabilities()[evdev.ecodes.EV_KEY]))
sys.stdout.flush()
for ev in d.read_loop():
    if ev.type == evdev.ecodes.EV_KEY:
        print("key", ev.code, ev.value)
        sys.stdout.flush()
        if ev.value == 0:
            break
' "$DEV" >"$T/py.out" 2>&1 3>&- &
	track_cmd $!
	reader=$!
	wait_for "$GUARD" grep -q "^\[" "$T/py.out" || fail "python3-evdev: $(cat "$T/py.out")"
	inject 48 1 48 0
	wait_gone "$reader" "$GUARD"
	run cat "$T/py.out"
	assert_line "fusd fake keyboard 0xf5d0 fusd/input0"
	assert_line "[28, 30, 48]"
	assert_line "key 48 1"
	assert_line "key 48 0"
}
