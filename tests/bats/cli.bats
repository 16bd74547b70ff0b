#!/usr/bin/env bats
# fusdctl conventions: --help everywhere, --version, exit statuses, man pages.

load helpers

@test "--version" {
	run "$FUSDCTL" --version
	assert_success
	assert_output --regexp '^fusdctl [0-9]+\.[0-9]+\.[0-9]+'
}

@test "--help lists every command" {
	run "$FUSDCTL" --help
	assert_success
	for c in serve ls trace rm doctor; do
		assert_output --partial "$c"
	done
}

@test "--help on every subcommand" {
	for c in serve ls trace rm doctor; do
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
	for page in "$REPO"/man/*.1 "$REPO"/man/*.3; do
		run mandoc -Tlint -W warning "$page"
		assert_success
		assert_output ""
	done
	[ -f "$REPO/man/fusdctl.1" ]
	[ -f "$REPO/man/libfusd.3" ]
	for c in serve ls trace rm doctor; do
		[ -f "$REPO/man/fusdctl-$c.1" ]
	done
}
