#!/usr/bin/env bats
# fusdctl ls: every live device, as a table or JSON; dead daemons never shown as live.

load helpers
bats_scope every-backend

json_field() { # json_field DEVICE FIELD: from `fusdctl ls --json`
	"$FUSDCTL" ls --json | "$PY" -c '
import json, sys
for d in json.load(sys.stdin):
    if d["device"] == sys.argv[1]:
        print(d[sys.argv[2]])' "$1" "$2"
}

opens_are() { [ "$(json_field "$DEV" open_files)" "$1" "$2" ]; }

@test "ls --json: a valid array with every field, our device live" {
	serve_d "$NAME" -- echo x
	run "$FUSDCTL" ls --json
	assert_success
	echo "$output" >"$T/ls.json"
	run "$PY" -c '
import json, sys
devs = json.load(open(sys.argv[1]))
assert isinstance(devs, list)
mine = [d for d in devs if d["device"] == sys.argv[2]]
assert len(mine) == 1, mine
d = mine[0]
for k, t in (("device", str), ("backend", str), ("pid", int), ("state", str), ("command", str),
             ("open_files", int), ("calls", int), ("uptime_seconds", (int, float))):
    assert isinstance(d[k], t), (k, d[k])
print(d["state"], d["pid"], d["backend"] in ("kernel", "cuse", "fuse"), "serve" in d["command"])' "$T/ls.json" "$DEV"
	assert_success
	assert_output "live $SERVER_PID True True"
}

@test "ls: a table with a header and one line per device" {
	serve_d "$NAME" -- echo x
	run "$FUSDCTL" ls
	assert_success
	assert_line --index 0 --regexp '^DEVICE +BACKEND +PID +STATE +OPENS +CALLS +UPTIME +COMMAND$'
	assert_line --regexp "^$DEV +[a-z]+ +$SERVER_PID +live +[0-9]+ +[0-9]+ +[0-9]+[smhd].* serve .*echo x$"
}

@test "ls -q: only the paths of live devices" {
	serve_d "$NAME" -- echo x
	run "$FUSDCTL" ls -q
	assert_success
	assert_line "$DEV"
	refute_line --partial "DEVICE"
}

@test "ls counts open files and calls served" {
	serve_d "$NAME" -- sleep 30
	calls0=$(json_field "$DEV" calls)
	timeout "$GUARD" cat "$DEV" &
	reader=$!
	wait_for "$GUARD" opens_are -ge 1
	kill "$reader"
	wait "$reader" || true
	wait_for "$GUARD" opens_are -eq 0
	calls1=$(json_field "$DEV" calls)
	[ "$calls1" -gt "$calls0" ]
}

@test "a killed daemon leaves nothing behind, with no fusd command run" {
	serve_d "$NAME" -- sleep 30
	ctl=${FUSD_RUNTIME_DIR:-/run/fusd}/ctl
	entry=${FUSD_RUNTIME_DIR:-/run/fusd}/devices/dev:$NAME.json
	[ -e "$entry" ] || fail "no registry entry $entry"
	compgen -G "$ctl/$SERVER_PID-*.sock" >/dev/null || fail "no control socket of pid $SERVER_PID in $ctl"
	kill -KILL "$SERVER_PID"
	# fusd-cleaner removes it all; nothing here runs fusdctl
	wait_for "$GUARD" bash -c "[ ! -e '$DEV' ] && [ ! -e '$entry' ] && ! grep -q ' $DEV ' /proc/mounts"
	wait_for "$GUARD" not compgen -G "$ctl/$SERVER_PID-*.sock"
}

@test "without fusd-cleaner, a killed daemon's device is never shown as live, and is cleaned up" {
	FUSD_CLEANER=/nonexistent/fusd-cleaner serve_d "$NAME" -- sleep 30
	ctl=${FUSD_RUNTIME_DIR:-/run/fusd}/ctl
	compgen -G "$ctl/$SERVER_PID-*.sock" >/dev/null || fail "no control socket of pid $SERVER_PID in $ctl"
	kill -KILL "$SERVER_PID"
	run "$FUSDCTL" ls --json
	assert_success
	echo "$output" >"$T/ls.json"
	run "$PY" -c '
import json, sys
print([d["state"] for d in json.load(open(sys.argv[1])) if d["device"] == sys.argv[2]])' "$T/ls.json" "$DEV"
	refute_output --partial "live"
	# sooner or later (once the process is reaped) it is reported dead and its node cleaned
	wait_for "$GUARD" bash -c "! '$FUSDCTL' ls --json | grep -q '\"$DEV\"'"
	not listed "$DEV"
	wait_for "$GUARD" bash -c "! grep -q ' $DEV ' /proc/mounts"
	[ ! -e "$DEV" ]
	# nor its control socket, which a killed daemon cannot unlink itself
	not compgen -G "$ctl/$SERVER_PID-*.sock"
}

@test "completion: bash offers live device names for rm and trace" {
	serve_d "$NAME" -- true
	run complete_bash fusdctl rm ""
	assert_line "$DEV"
	run complete_bash fusdctl trace "/dev/fusd-bats-$$-$BATS_TEST_NUMBER"
	assert_output "$DEV"
	run complete_bash fusdctl rm --force "/dev/fusd-bats-$$-$BATS_TEST_NUMBER"
	assert_output "$DEV"
}

@test "completion: fish offers live device names" {
	command -v fish >/dev/null || skip "fish not installed"
	serve_d "$NAME" -- true
	run complete_fish "fusdctl rm "
	assert_line "$DEV"
}
