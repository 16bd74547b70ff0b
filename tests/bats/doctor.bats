#!/usr/bin/env bats
# fusdctl doctor: usable backends, the reasons for the others, and what auto picks.

load helpers
bats_scope every-backend

@test "doctor: every backend, usable or why not, and the pick of auto" {
	run "$FUSDCTL" doctor
	assert_success
	assert_line --index 0 --regexp '^BACKEND +USABLE +NOTES$'
	assert_line --regexp '^kernel +(yes|no) +.+'
	assert_line --regexp '^cuse +(yes|no) +.+'
	assert_line --regexp '^fuse +(yes|no) +.+'
	assert_line --regexp '^auto picks: (kernel|cuse|fuse)$'
}

@test "doctor --json: valid, three backends, auto is a usable one" {
	run "$FUSDCTL" doctor --json
	assert_success
	echo "$output" >"$T/doctor.json"
	run "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
names = [b["backend"] for b in d["backends"]]
assert names == ["kernel", "cuse", "fuse"], names
for b in d["backends"]:
    assert isinstance(b["usable"], bool)
    assert b["usable"] or b["reason"], b
usable = [b["backend"] for b in d["backends"] if b["usable"]]
assert d["auto"] in usable, (d["auto"], usable)
print(d["auto"])' "$T/doctor.json"
	assert_success
	if [ "$FUSD_BACKEND" != auto ]; then
		assert_output "$FUSD_BACKEND"
	fi
}

@test "doctor: the backend auto picks is the one serve uses" {
	auto=$("$FUSDCTL" doctor --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["auto"])')
	serve_d "$NAME" -- true
	run "$FUSDCTL" ls --json
	echo "$output" | "$PY" -c '
import json, sys
d = [x for x in json.load(sys.stdin) if x["device"] == sys.argv[1]][0]
sys.exit(0 if sys.argv[2] in (d["backend"], "auto") or sys.argv[3] != "auto" else 1)' "$DEV" "$auto" "$FUSD_BACKEND"
}

@test "doctor: the kernel backend states how long its waits spin (poll_ns)" {
	[ -r /sys/module/fusd/parameters/poll_ns ] || skip "no fusd module here"
	ns=$(cat /sys/module/fusd/parameters/poll_ns)
	[ "$ns" -gt 0 ] || skip "polling is off"
	run "$FUSDCTL" doctor
	assert_success
	assert_line --regexp "^kernel +(yes|no) +.*spins up to $ns ns before it sleeps"
}

@test "doctor: names the cleaner, or says why there is none" {
	run "$FUSDCTL" doctor
	assert_success
	assert_line --regexp '^cleaner: /.*/fusd-cleaner \(what a killed daemon leaves goes at once\)$'
	FUSD_CLEANER=/nonexistent/fusd-cleaner run "$FUSDCTL" doctor --json
	assert_success
	echo "$output" >"$T/doctor.json"
	run "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["cleaner"] is None and "/nonexistent/fusd-cleaner" in d["cleaner_error"], d' "$T/doctor.json"
	assert_success
}

@test "doctor: what no backend changes: nested names, the caller's ids, errors" {
	run "$FUSDCTL" doctor
	assert_success
	assert_line "the same on every backend:"
	assert_line --regexp '^  nested names \(/dev/input/event7\): missing parent directories are made'
	assert_line --regexp '^  the caller: its process id, its filesystem uid and gid'
	assert_line --regexp '^  errors: .* 512 and above \(no errno\) become EIO$'
	run "$FUSDCTL" doctor --json
	echo "$output" >"$T/doctor.json"
	run "$PY" -c '
import json, sys
same = json.load(open(sys.argv[1]))["same_on_every_backend"]
assert len(same) == 3 and same[0].startswith("nested names"), same' "$T/doctor.json"
	assert_success
}

@test "doctor: where the kernel module stands, how to get it, and what auto uses without it" {
	run "$FUSDCTL" doctor
	assert_success
	assert_line --regexp '^kernel module: (loaded|this kernel .* cannot load modules .*|installed for .* run `modprobe fusd`.*|not built for .*`dkms install fusd/[0-9.]+`.*|not installed: install the fusd-dkms package.*`make -C kernel install`.*)$'
	run "$FUSDCTL" doctor --json
	assert_success
	echo "$output" >"$T/doctor.json"
	run "$PY" -c '
import json, os, sys
d = json.load(open(sys.argv[1]))
m = d["kernel_module"]
assert (m["state"] == "loaded") == os.path.isdir("/sys/module/fusd"), m
if m["state"] == "loaded":
    assert m["instead"] is None, m
else:
    others = [b["backend"] for b in d["backends"] if b["usable"] and b["backend"] != "kernel"]
    assert m["instead"] == (others[0] if others else None), (m, others)
    if not os.path.exists("/proc/modules"):
        assert m["state"] == "no_modules", m' "$T/doctor.json"
	assert_success
	if [ ! -d /sys/module/fusd ]; then
		run "$FUSDCTL" doctor
		assert_line --regexp '^  without it: (auto uses (cuse|fuse) instead|no other backend is usable)'
	fi
}
