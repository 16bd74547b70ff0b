#!/usr/bin/env bats
# fusdctl rm: unregister; --force releases blocked callers of a stopped server.

load helpers
bats_scope every-backend

@test "rm: the server unregisters, ends its commands and exits" {
	serve_d "$NAME" -- sh -c 'echo $$; exec sleep 60'
	timeout "$GUARD" cat "$DEV" >"$T/reader.out" 2>&1 &
	reader=$!
	wait_for "$GUARD" test -s "$T/reader.out"
	read -r cmdpid <"$T/reader.out"
	track_cmd "$cmdpid"
	run "$FUSDCTL" rm "$NAME"
	assert_success
	assert_output ""
	wait_gone "$SERVER_PID" "$GUARD"
	wait "$reader" || true
	[ ! -e "$DEV" ]
	not grep -q " $DEV " /proc/mounts
	run "$FUSDCTL" ls --json
	refute_output --partial "\"$DEV\""
	wait_gone "$cmdpid" "$GUARD"
}

@test "rm several devices at once, by name and by path" {
	serve_d "$NAME-a" -- true
	pa=$SERVER_PID
	serve_d "$DEV-b" -- true
	pb=$SERVER_PID
	run "$FUSDCTL" rm "$NAME-a" "$DEV-b"
	assert_success
	wait_gone "$pa" "$GUARD"
	wait_gone "$pb" "$GUARD"
	[ ! -e "$DEV-a" ]
	[ ! -e "$DEV-b" ]
}

@test "rm --force: a SIGSTOPped server's blocked reader is released without it, nothing left" {
	serve_d "$NAME" -- sleep 60
	# The reader's own time limit is twice the guard below, so that it can only end in time
	# by being released, never by its limit.
	timeout $((2 * GUARD)) cat "$DEV" >"$T/reader.out" 2>&1 &
	reader=$!
	sleep 0.5
	alive "$reader"
	kill -STOP "$SERVER_PID"
	run timeout "$GUARD" "$FUSDCTL" rm --force "$DEV"
	assert_success
	# the reader returns with an error while the server is still stopped
	wait_gone "$reader" "$GUARD"
	status=0
	wait "$reader" || status=$?
	[ "$status" != 0 ] && [ "$status" != 124 ] || fail "reader: exit $status (0: no error; 124: never released)"
	[ ! -e "$DEV" ]
	not grep -q " $DEV " /proc/mounts
	not listed "$DEV"
	# no registry entry either, not even a dead one
	run "$FUSDCTL" ls --json
	refute_output --partial "\"$DEV\""
	# once continued, the server notices and exits by itself
	kill -CONT "$SERVER_PID"
	wait_gone "$SERVER_PID" "$GUARD"
}

@test "rm --force on a healthy server works too" {
	serve_d "$NAME" -- true
	run "$FUSDCTL" rm --force "$NAME"
	assert_success
	# a running server may be finishing its own cleanup at that moment: allow it an instant
	wait_for "$GUARD" test ! -e "$DEV"
	not grep -q " $DEV " /proc/mounts
	wait_gone "$SERVER_PID" "$GUARD"
}

