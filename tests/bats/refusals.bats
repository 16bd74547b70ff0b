#!/usr/bin/env bats
# What fusdctl refuses before any backend is chosen: broken recording files, and removals of
# devices that no daemon serves. Nothing here serves a device, so it runs once, on the host.

load helpers
bats_scope host-only

@test "replay: truncated, unknown-version and malformed files are refused naming file:line; nothing made" {
	local DEV2=$DEV-r
	track_dev "$DEV2"
	check_bad() {
		run "$FUSDCTL" replay "$T/bad" --as "$DEV2"
		assert_failure 1
		assert_output --partial "$1"
		[ ! -e "$DEV2" ] || fail "$DEV2 was made"
	}
	printf '{"fusd-recording":1}\n{"open":1,"call":"open"}\n{"open":1,"call":"re' >"$T/bad"
	check_bad "$T/bad:3: truncated"
	printf '{"fusd-recording":2,"device":"/dev/x"}\n' >"$T/bad"
	check_bad "$T/bad:1: unknown version 2 (this fusdctl reads version 1)"
	printf '{"open":1,"call":"open"}\n' >"$T/bad"
	check_bad "$T/bad:1: not a fusd recording"
	printf '{"fusd-recording":1}\n{"open":1,"call":"open"}\nnot json\n' >"$T/bad"
	check_bad "$T/bad:3: not a JSON line"
	printf '{"fusd-recording":1}\n{"open":1,"call":"open"}\n{"open":1,"call":"read","dta":"AA=="}\n' >"$T/bad"
	check_bad "$T/bad:3: unknown key \"dta\" for a read"
	printf '{"fusd-recording":1}\n{"open":1,"call":"read","data":"AA=="}\n' >"$T/bad"
	check_bad "$T/bad:2: a read on open 1, which was not opened before"
	printf '{"fusd-recording":1}\n{"open":1,"call":"open"}\n{"open":1,"call":"write","data":"A"}\n' >"$T/bad"
	check_bad "$T/bad:3: \"data\" is not valid base64"
	printf '{"fusd-recording":1}\n{"open":1,"call":"open"}\n{"open":1,"call":"ioctl","request":"0x5401","errno":"ENOPE"}\n' >"$T/bad"
	check_bad "$T/bad:3: \"errno\" must name an errno"
	: >"$T/bad"
	check_bad "$T/bad:1: empty file"
	run "$FUSDCTL" replay "$T/missing" --as "$DEV2"
	assert_failure 1
	assert_output --partial "$T/missing: No such file or directory"
	run "$FUSDCTL" record /dev/null -o "$T/x"
	assert_failure 2
	assert_output --partial "either --as /dev/NAME"
	run "$FUSDCTL" record /dev/null --as "$DEV2" --in-place -o "$T/x"
	assert_failure 2
	run "$FUSDCTL" record /dev/no-such-fusd-device --as "$DEV2" -o "$T/x"
	assert_failure 1
	assert_output --partial "/dev/no-such-fusd-device: No such file or directory"
	[ ! -e "$T/x" ] && [ ! -e "$DEV2" ]
}

@test "rm of an unknown device: exit 1 and a clear error" {
	run "$FUSDCTL" rm "$NAME-nonexistent"
	assert_failure 1
	assert_output --partial "$DEV-nonexistent"
	assert_output --partial "no such"
}

@test "rm of a regular /dev node that fusd does not serve: exit 1, node untouched" {
	run "$FUSDCTL" rm /dev/null
	assert_failure 1
	assert_output --partial "/dev/null"
	[ -c /dev/null ]
}
