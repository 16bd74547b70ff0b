#!/usr/bin/env bats
# fusdctl conventions: --help everywhere, --version, exit statuses, man pages.

load helpers
bats_scope host-only

@test "--version" {
	run "$FUSDCTL" --version
	assert_success
	assert_output --regexp '^fusdctl [0-9]+\.[0-9]+\.[0-9]+'
}

@test "--help lists every command" {
	run "$FUSDCTL" --help
	assert_success
	for c in serve ls trace rm doctor record replay; do
		assert_output --partial "$c"
	done
}

@test "--help on every subcommand" {
	for c in serve ls trace rm doctor record replay; do
		run "$FUSDCTL" "$c" --help
		assert_success
		assert_output --partial "Usage"
		assert_output --partial "$c"
	done
}

@test "unknown subcommand: exit 2, named on stderr" {
	run "$FUSDCTL" frobnicate
	assert_failure 2
	assert_output --partial "'frobnicate' is not a fusdctl command"
}

@test "no subcommand: exit 2" {
	run "$FUSDCTL"
	assert_failure 2
	assert_output --partial "command is required"
}

@test "unknown option: exit 2" {
	run "$FUSDCTL" --frobnicate
	assert_failure 2
	run "$FUSDCTL" doctor --frobnicate
	assert_failure 2
}

@test "errors go to stderr, not stdout" {
	run bash -c "'$FUSDCTL' rm '$NAME-none' 2>/dev/null"
	assert_failure 1
	assert_output ""
	run bash -c "'$FUSDCTL' rm '$NAME-none' 2>&1 >/dev/null"
	assert_output --partial "fusdctl: "
}

@test "man pages render without warnings" {
	command -v mandoc >/dev/null || skip "mandoc not installed"
	for page in "$REPO"/man/*.1 "$REPO"/man/*.3 "$REPO"/man/*.5 "$REPO"/man/*.7; do
		run mandoc -Tlint -W warning "$page"
		assert_success
		assert_output ""
	done
	[ -f "$REPO/man/fusdctl.1" ]
	[ -f "$REPO/man/libfusd.3" ]
	[ -f "$REPO/man/fusd-protocol.7" ]
	for c in serve ls trace rm doctor record replay run; do
		[ -f "$REPO/man/fusdctl-$c.1" ]
	done
}

# ---- usage errors of each subcommand ------------------------------------------------------

@test "serve --restart without --shared is a usage error" {
	run "$FUSDCTL" serve --restart "$NAME" -- true
	assert_failure 2
	assert_output --partial "--restart needs --shared"
	[ ! -e "$DEV" ]
}

@test "serve: missing command: exit 2 with a usage message" {
	run "$FUSDCTL" serve "$NAME"
	assert_failure 2
	assert_output --partial "COMMAND"
	[ ! -e "$DEV" ]
}

@test "serve: bad --mode, --owner, --backend, unknown option: exit 2" {
	run "$FUSDCTL" serve --mode 999 "$NAME" -- true
	assert_failure 2
	assert_output --partial "--mode"
	run "$FUSDCTL" serve --owner no-such-user-fusd "$NAME" -- true
	assert_failure 2
	assert_output --partial "no-such-user-fusd"
	run "$FUSDCTL" serve --backend floppy "$NAME" -- true
	assert_failure 2
	assert_output --partial "backend"
	run "$FUSDCTL" serve --no-such-option "$NAME" -- true
	assert_failure 2
	[ ! -e "$DEV" ]
}

@test "ls --help and an unknown option" {
	run "$FUSDCTL" ls --help
	assert_success
	assert_output --partial "--json"
	run "$FUSDCTL" ls --bogus
	assert_failure 2
}

@test "rm of a bad name: exit 1; no argument: exit 2" {
	run "$FUSDCTL" rm "../etc/passwd"
	assert_failure 1
	assert_output --partial "../etc/passwd"
	run "$FUSDCTL" rm
	assert_failure 2
}

@test "trace: bad device name exit 1, bad count exit 2" {
	run "$FUSDCTL" trace "../x"
	assert_failure 1
	run "$FUSDCTL" trace -n -4 "$DEV"
	assert_failure 2
	run "$FUSDCTL" trace -n lots "$DEV"
	assert_failure 2
}

@test "serve --protocol and --handler: bad combinations are usage errors" {
	run "$FUSDCTL" serve --protocol xml fusd-cli-x -- cat
	assert_failure 2
	assert_output --partial "--protocol: 'xml' is not a protocol"
	run "$FUSDCTL" serve --protocol json --shared fusd-cli-x -- cat
	assert_failure 2
	assert_output --partial "drop --shared"
	run "$FUSDCTL" serve --protocol json --handler /bin/true fusd-cli-x
	assert_failure 2
	assert_output --partial "choose one"
	run "$FUSDCTL" serve --handler /bin/true fusd-cli-x -- cat
	assert_failure 2
	assert_output --partial "no COMMAND after it"
	run "$FUSDCTL" serve --handler /bin/true --shared fusd-cli-x
	assert_failure 2
	run "$FUSDCTL" serve --handler "$BATS_TEST_TMPDIR/no-such-script" fusd-cli-x
	assert_failure 1
	assert_output --partial "no-such-script"
}

@test "record and replay: usage errors exit 2 and make nothing" {
	run "$FUSDCTL" record
	assert_failure 2
	run "$FUSDCTL" record /dev/null --as "$NAME"
	assert_failure 2
	assert_output --partial "--output is required"
	run "$FUSDCTL" record /dev/null -o "$T/rec"
	assert_failure 2
	assert_output --partial "either --as /dev/NAME (a new device) or --in-place"
	run "$FUSDCTL" record /dev/null --as "$NAME" -o "$T/rec" --mode 999
	assert_failure 2
	assert_output --partial "--mode 999: not an octal mode"
	[ ! -e "$T/rec" ]
	run "$FUSDCTL" replay
	assert_failure 2
	printf '{"fusd-recording":1}\n' >"$T/rec"
	run "$FUSDCTL" replay "$T/rec"
	assert_failure 2
	assert_output --partial "names no device: give --as /dev/NAME"
	[ ! -e "$DEV" ]
}
