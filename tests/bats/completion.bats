#!/usr/bin/env bats
# Shell completions: bash (subcommands, options, option values, live devices, the command after
# `--`), and syntax plus a few completions for zsh and fish when those shells are installed.

load helpers
bats_scope host-only

@test "bash: subcommands" {
	run complete_bash fusdctl ""
	assert_success
	for c in serve ls trace rm doctor record replay run; do assert_line "$c"; done
	run complete_bash fusdctl tr
	assert_output "trace"
}

@test "bash: options of each subcommand" {
	run complete_bash fusdctl serve --
	for o in --shared --tty --restart --grace --mode --owner --group --backend --detach --pidfile --log \
		--protocol --handler --help; do
		assert_line -- "$o"
	done
	run complete_bash fusdctl rm --f
	assert_output -- "--force"
	run complete_bash fusdctl ls --j
	assert_output -- "--json"
	run complete_bash fusdctl trace -
	assert_line -- "-n"
	assert_line -- "--json"
	run complete_bash fusdctl doctor --
	assert_line -- "--json"
	run complete_bash fusdctl record --
	for o in --as --in-place --output --mode --backend --help; do assert_line -- "$o"; done
	run complete_bash fusdctl replay --
	for o in --as --fast --loose --mode --backend --help; do assert_line -- "$o"; done
	run complete_bash fusdctl replay --lo
	assert_output -- "--loose"
	run complete_bash fusdctl --ver
	assert_output -- "--version"
}

@test "bash: option values" {
	run complete_bash fusdctl serve --backend ""
	assert_success
	assert_equal "$(echo "$output" | sort | tr '\n' ' ')" "auto cuse fuse kernel "
	run complete_bash fusdctl serve -m 066
	assert_line "0660"
	assert_line "0666"
	run complete_bash fusdctl serve --protocol ""
	assert_output "json"
	run complete_bash fusdctl serve --handler "$REPO/examples/handler/sen"
	assert_output "$REPO/examples/handler/sensor.sh"
}

@test "bash: '--' after the device, then commands" {
	run complete_bash fusdctl serve "$NAME" ""
	assert_output -- "--"
	run complete_bash fusdctl serve "$NAME" -- dat
	assert_line "date"
}

@test "bash: run: its options, PATH= after them, a recording after --replay's '=', then the program" {
	run complete_bash fusdctl run --
	for o in -- --serve --tty --replay --help; do assert_line -- "$o"; done
	run complete_bash fusdctl run --serve ""
	assert_output "/dev/"
	run complete_bash fusdctl run --replay "/dev/x=$REPO/README.m"
	assert_output "/dev/x=$REPO/README.md"
	run complete_bash fusdctl run --tty "/dev/x=cat" --serve "/dev/y=date" -- dat
	assert_line "date"
}

@test "bash: the installed script registers the completion" {
	run bash -c 'source "$1"; complete -p fusdctl' _ "$REPO/completions/fusdctl.bash"
	assert_success
	assert_output --partial "_fusdctl"
}

@test "zsh: the completion function parses" {
	command -v zsh >/dev/null || skip "zsh not installed"
	run zsh -n "$REPO/completions/_fusdctl"
	assert_success
	head -1 "$REPO/completions/_fusdctl" | grep -qx '#compdef fusdctl'
}

@test "fish: subcommands and options" {
	command -v fish >/dev/null || skip "fish not installed"
	run fish -n "$REPO/completions/fusdctl.fish"
	assert_success
	run complete_fish "fusdctl "
	for c in serve ls trace rm doctor record replay run; do assert_line "$c"; done
	run complete_fish "fusdctl run --se"
	assert_output -- "--serve"
	run complete_fish "fusdctl replay --lo"
	assert_output -- "--loose"
	run complete_fish "fusdctl serve --sh"
	assert_output -- "--shared"
	run complete_fish "fusdctl serve --tt"
	assert_output -- "--tty"
	run complete_fish "fusdctl serve --protocol "
	assert_output "json"
}
