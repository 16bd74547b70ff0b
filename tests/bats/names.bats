#!/usr/bin/env bats
# Nested device names (/dev/input/event7): parents made and removed with the node, on every
# backend; names that must not become a node are refused with nothing made.

load helpers
bats_scope every-backend

# Each test's names live below /dev/$NAME, so parallel runs never share a directory.
teardown() {
	local rc=0 left=""
	common_teardown || rc=$?
	if [ -e "/dev/$NAME" ] || [ -L "/dev/$NAME" ]; then
		left=$(find "/dev/$NAME" 2>/dev/null | tr '\n' ' ')
		find "/dev/$NAME" -depth -type d -exec rmdir {} + 2>/dev/null || true
		rm -f "/dev/$NAME" 2>/dev/null || true
	fi
	[ "$rc" = 0 ] || return "$rc"
	[ -z "$left" ] || fail "left behind: $left"
}

# serve_fails NAME: `fusdctl serve NAME` is refused; its message is in $output.
serve_fails() {
	track_dev "$(devpath "$1")"
	run timeout "$GUARD" "$FUSDCTL" serve --backend "$FUSD_BACKEND" "$1" -- echo hi
	assert_failure
}

@test "a nested name: its parents are made, it serves, and they go with it" {
	serve_d "$NAME/sub/dev" -- echo hello
	[ -d "/dev/$NAME/sub" ]
	run cat "/dev/$NAME/sub/dev"
	assert_success
	assert_output hello
	run stat -c %a "/dev/$NAME" "/dev/$NAME/sub"
	assert_output $'755\n755'
	"$FUSDCTL" rm "$NAME/sub/dev"
	[ ! -e "/dev/$NAME" ]
}

@test "a parent that exists is used as it is and kept" {
	mkdir -m 0700 "/dev/$NAME"
	serve_d "/dev/$NAME/dev" -- echo hello
	run cat "/dev/$NAME/dev"
	assert_output hello
	"$FUSDCTL" rm "/dev/$NAME/dev"
	[ ! -e "/dev/$NAME/dev" ]
	[ -d "/dev/$NAME" ]
	run stat -c %a "/dev/$NAME"
	assert_output 700
	rmdir "/dev/$NAME"
}

@test "two nodes in one made directory: it goes with the last of them" {
	serve_d "$NAME/a" -- echo a
	local first=$SERVER_PID
	serve_d "$NAME/b" -- echo b
	"$FUSDCTL" rm "$NAME/a"
	[ -d "/dev/$NAME" ]
	run cat "/dev/$NAME/b"
	assert_output b
	"$FUSDCTL" rm "$NAME/b"
	[ ! -e "/dev/$NAME" ]
	wait_gone "$first" "$GUARD"
}

@test "ls, ls --json, trace and rm name nested devices" {
	serve_d "$NAME/sub/dev" -- cat
	run "$FUSDCTL" ls -q
	assert_line "/dev/$NAME/sub/dev"
	run "$FUSDCTL" ls --json
	assert_success
	run py 'import json, sys; print(*[d["state"] for d in json.loads(sys.stdin.read()) if d["device"] == sys.argv[1]])' \
		"/dev/$NAME/sub/dev" <<<"$output"
	assert_output live
	"$FUSDCTL" trace --json "$NAME/sub/dev" >"$T/trace" 2>"$T/trace.err" 3>&- &
	track_pid $!
	local i
	for ((i = 0; i < 100; i++)); do
		py 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDONLY))' "/dev/$NAME/sub/dev"
		grep -q "\"/dev/$NAME/sub/dev\"" "$T/trace" && break
		sleep 0.1
	done
	grep -q "\"device\":\"/dev/$NAME/sub/dev\"" "$T/trace" || fail "no trace: $(cat "$T/trace" "$T/trace.err")"
	"$FUSDCTL" rm "/dev/$NAME/sub/dev"
	[ ! -e "/dev/$NAME" ]
	not listed "/dev/$NAME/sub/dev"
}

@test "rm --force of a stopped daemon removes the node and the parents it made" {
	serve_d "$NAME/sub/dev" -- echo hi
	kill -STOP "$SERVER_PID"
	"$FUSDCTL" rm --force "$NAME/sub/dev"
	[ ! -e "/dev/$NAME" ]
	kill -CONT "$SERVER_PID"
	wait_gone "$SERVER_PID" "$GUARD"
	[ ! -e "/dev/$NAME" ]
}

@test "a killed daemon's parents are removed at once by its cleaner, with no fusd command run" {
	serve_d "$NAME/sub/dev" -- echo hi
	kill -KILL "$SERVER_PID"
	wait_for "$GUARD" bash -c "[ ! -e '/dev/$NAME' ]"
}

@test "without fusd-cleaner, a killed daemon's parents are removed by the stale cleanup" {
	FUSD_CLEANER=/nonexistent/fusd-cleaner serve_d "$NAME/sub/dev" -- echo hi
	kill -KILL "$SERVER_PID"
	wait_gone "$SERVER_PID" "$GUARD"
	# This ls cleans it, or another one running meanwhile does (in the guest, the other
	# backend's suite): either way it is the stale cleanup, as no cleaner runs.
	run "$FUSDCTL" ls
	assert_success
	wait_for "$GUARD" bash -c "[ ! -e '/dev/$NAME' ]"
	# and the name serves again at once
	serve_d "$NAME/sub/dev" -- echo again
	run cat "/dev/$NAME/sub/dev"
	assert_output again
}

@test "empty, '.' and '..' components are refused, nothing made" {
	for bad in "$NAME//dev" "$NAME/" "$NAME/./dev" "$NAME/../$NAME-x" "/dev/$NAME/sub/.." "$NAME/.hidden"; do
		serve_fails "$bad"
		assert_output --partial "invalid device name"
		[ ! -e "/dev/$NAME" ]
		[ ! -e "/dev/$NAME-x" ]
	done
}

@test "a parent that is a file, or a symbolic link out of /dev, is refused, nothing made" {
	: >"/dev/$NAME"
	serve_fails "$NAME/sub/dev"
	assert_output --partial "not a directory"
	[ -f "/dev/$NAME" ] && [ ! -s "/dev/$NAME" ]
	rm "/dev/$NAME"

	mkdir "$T/elsewhere"
	ln -s "$T/elsewhere" "/dev/$NAME"
	serve_fails "$NAME/dev"
	assert_output --partial "symbolic link"
	[ -z "$(ls -A "$T/elsewhere")" ]
	rm "/dev/$NAME"
}

@test "a node that exists and is not fusd's is refused and kept, nothing made" {
	mkdir "/dev/$NAME"
	: >"/dev/$NAME/dev"
	serve_fails "$NAME/dev"
	assert_output --partial "already exists"
	[ -f "/dev/$NAME/dev" ] && [ ! -s "/dev/$NAME/dev" ]
	rm "/dev/$NAME/dev"
	rmdir "/dev/$NAME"
}

@test "a directory below /dev that is another filesystem is refused" {
	local mp
	mp=$(awk '$2 ~ "^/dev/[^/]+$" && $3 != "devtmpfs" { print $2; exit }' /proc/mounts)
	[ -n "$mp" ] || skip "no filesystem mounted below /dev here"
	serve_fails "$mp/$NAME"
	assert_output --partial "another filesystem"
	[ ! -e "$mp/$NAME" ]
}

@test "an over-long nested name is refused, nothing made" {
	serve_fails "$NAME/$(printf 'x%.0s' {1..200})"
	assert_output --partial "longer than"
	[ ! -e "/dev/$NAME" ]
}

@test "completion: nested names for rm and trace (bash, fish), their directories for serve (bash)" {
	serve_d "$NAME/sub/dev" -- true
	run complete_bash fusdctl rm "/dev/$NAME/"
	assert_output "/dev/$NAME/sub/dev"
	run complete_bash fusdctl trace "/dev/$NAME/s"
	assert_output "/dev/$NAME/sub/dev"
	run complete_bash fusdctl serve "/dev/$NAME/s"
	assert_output "/dev/$NAME/sub/"
	if command -v fish >/dev/null; then
		run complete_fish "fusdctl rm /dev/$NAME/"
		assert_output "/dev/$NAME/sub/dev"
	fi
}
