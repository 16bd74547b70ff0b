#!/usr/bin/env bats
# examples/fake_i2c, an I2C bus served by a driver, used by i2c-tools as a real /dev/i2c-N:
# I2C_FUNCS and I2C_SLAVE (legacy numbers carried with their sizes), I2C_SMBUS and I2C_RDWR
# (arguments that point to more of the caller's memory, which the driver asks for with
# Request::reply_retry). FUSE cannot carry them (the node is a regular file): there the test
# checks that they fail cleanly.

load helpers
bats_scope every-backend

# start_bus: runs examples/fake_i2c on /dev/i2c-$BUS (i2c-tools name buses by number); sets
# BUS, DEV and ON (the backend serving it).
start_bus() {
	command -v i2cget >/dev/null || fail "no i2c-tools (scripts/bootstrap installs them)"
	BUS=$((700000 + ($$ % 3000) * 100 + BATS_TEST_NUMBER))
	DEV=/dev/i2c-$BUS
	start_example fake_i2c
}

@test "fake_i2c: i2cdetect finds the chips; i2cset and i2cget write and read registers" {
	start_bus
	if [ "$ON" = fuse ]; then
		run timeout "$GUARD" i2cget -y "$BUS" 0x50 0x10
		assert_failure
		assert_output --partial "Could not get the adapter functionality matrix: Inappropriate ioctl for device"
		skip "FUSE carries no legacy or pointer-carrying ioctls (a regular file): i2cget fails with ENOTTY, as checked"
	fi
	run timeout "$GUARD" i2cdetect -y "$BUS"
	assert_success
	assert_line --regexp '^40: -- -- -- -- -- -- -- -- 48 -- -- -- -- -- -- -- *$'
	assert_line --regexp '^50: 50 -- -- -- -- -- -- -- -- -- -- -- -- -- -- -- *$'
	run timeout "$GUARD" i2cset -y "$BUS" 0x50 0x10 0x42
	assert_success
	run timeout "$GUARD" i2cset -y "$BUS" 0x50 0x11 0x1234 w
	assert_success
	run timeout "$GUARD" i2cget -y "$BUS" 0x50 0x10
	assert_success
	assert_output 0x42
	run as_nobody timeout "$GUARD" i2cget -y "$BUS" 0x50 0x11 w
	assert_success
	assert_output 0x1234
	run timeout "$GUARD" i2cget -y "$BUS" 0x48 0x10
	assert_output 0x00
	run timeout "$GUARD" i2cget -y "$BUS" 0x51 0x10
	assert_failure
	assert_output --partial "Read failed"
}

@test "fake_i2c: i2ctransfer sends combined messages (I2C_RDWR) and reads the answers back" {
	start_bus
	[ "$ON" != fuse ] || skip "FUSE carries no pointer-carrying ioctls (a regular file; see the first test)"
	run timeout "$GUARD" i2ctransfer -y "$BUS" w4@0x48 0x20 0xaa 0xbb 0xcc
	assert_success
	run timeout "$GUARD" i2ctransfer -y "$BUS" w1@0x48 0x20 r3 w1@0x50 0x00 r2@0x50
	assert_success
	assert_output "0xaa 0xbb 0xcc
0x00 0x00"
	run timeout "$GUARD" i2ctransfer -y "$BUS" w1@0x33 0x00
	assert_failure
}
