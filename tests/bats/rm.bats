#!/usr/bin/env bats
# fusdctl rm: unregister; --force releases blocked callers of a stopped server.

load helpers
bats_scope every-backend

@test "rm: the server unregisters, ends its commands and exits" {
	serve_d "$NAME" -- sh -c 'echo $$; exec sleep 60'
	timeout 20 cat "$DEV" >"$T/reader.out" 2>&1 &
	reader=$!
	wait_for 5 test -s "$T/reader.out"
	read -r cmdpid <"$T/reader.out"
	track_cmd "$cmdpid"
	run "$FUSDCTL" rm "$NAME"
	assert_success
	assert_output ""
	wait_gone "$SERVER_PID" 15
	wait "$reader" || true
	[ ! -e "$DEV" ]
	not grep -q " $DEV " /proc/mounts
	run "$FUSDCTL" ls --json
	refute_output --partial "\"$DEV\""
	wait_gone "$cmdpid" 5
}

@test "rm several devices at once, by name and by path" {
	serve_d "$NAME-a" -- true
	pa=$SERVER_PID
	serve_d "$DEV-b" -- true
	pb=$SERVER_PID
	run "$FUSDCTL" rm "$NAME-a" "$DEV-b"
	assert_success
	wait_gone "$pa" 15
	wait_gone "$pb" 15
	[ ! -e "$DEV-a" ]
	[ ! -e "$DEV-b" ]
}

@test "rm --force: a SIGSTOPped server's blocked reader is released within a second, nothing left" {
	serve_d "$NAME" -- sleep 60
	timeout 30 cat "$DEV" >"$T/reader.out" 2>&1 &
	reader=$!
	sleep 0.5
	alive "$reader"
	kill -STOP "$SERVER_PID"
	start=$(date +%s%N)
	run timeout 10 "$FUSDCTL" rm --force "$DEV"
	assert_success
	# the reader returns with an error, promptly (generous bound for a loaded machine)
	wait_gone "$reader" 3
	end=$(date +%s%N)
	not wait "$reader" # released with an error
	[ $(((end - start) / 1000000)) -lt 3000 ]
	[ ! -e "$DEV" ]
	not grep -q " $DEV " /proc/mounts
	not listed "$DEV"
	# no registry entry either, not even a dead one
	run "$FUSDCTL" ls --json
	refute_output --partial "\"$DEV\""
	# once continued, the server notices and exits by itself
	kill -CONT "$SERVER_PID"
	wait_gone "$SERVER_PID" 15
}

@test "rm --force on a healthy server works too" {
	serve_d "$NAME" -- true
	run "$FUSDCTL" rm --force "$NAME"
	assert_success
	# a running server may be finishing its own cleanup at that moment: allow it an instant
	wait_for 5 test ! -e "$DEV"
	not grep -q " $DEV " /proc/mounts
	wait_gone "$SERVER_PID" 15
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
