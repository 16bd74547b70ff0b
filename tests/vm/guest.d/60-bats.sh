#!/bin/bash
# fusdctl's bats files that depend on the backend (`bats_scope every-backend`), the same tests
# as on the host, on the CUSE and on the kernel backend. The two runs go side by side, one per
# guest CPU: each is the dearest part of the guest stage under TCG. Their device names cannot
# collide (they carry the test process's pid).
set -u
run_on() {  # run_on BACKEND CONTROL_NODE: the suite's TAP output goes to $FUSD_VM_OUT
	"$FUSD_REPO/tests/vm/on-backend.sh" bats "$1" "$2" >"$FUSD_VM_OUT/bats-$1.tap" 2>&1
}
run_on cuse /dev/cuse & cuse=$!
run_on kernel /dev/fusd & kernel=$!
fail=0
for backend in cuse kernel; do
	pid=${!backend}
	if wait "$pid"; then verdict=PASS; else verdict=FAIL; fail=1; fi
	sed "s/^/$backend: /" "$FUSD_VM_OUT/bats-$backend.tap"
	echo "$verdict bats suite on $backend"
	echo "$backend: the dearest tests (bats --timing):"
	sed -n -E 's/^(not )?ok [0-9]+ (.*) in ([0-9]+)ms$/\3 \2/p' "$FUSD_VM_OUT/bats-$backend.tap" |
		sort -rn | head -5 | awk '{ ms = $1; $1 = ""; printf "  %6.1f s %s\n", ms / 1000, $0 }'
done
exit $fail
