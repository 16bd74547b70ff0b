#!/bin/bash
# libfusd on the kernel backend (fusd.ko): the unit tests, then the integration tests of
# tests/integration, unchanged (they read FUSD_BACKEND and FUSD_BUILD). Needs fusd.ko (loaded
# by tests/vm/init).
set -u
export FUSD_BACKEND=kernel FUSD_BUILD
B=$FUSD_BUILD/tests
for t in fusd_unit_tests fusd_integration_tests fusd-testd; do
	[ -x "$B/$t" ] || { echo "FAIL: $B/$t is not built (ninja -C $FUSD_BUILD)"; exit 1; }
done
[ -c /dev/fusd ] || { echo "FAIL: no /dev/fusd in the guest (fusd.ko not loaded?)"; exit 1; }

fail=0
"$B/fusd_unit_tests" || fail=1
"$B/fusd_integration_tests" || fail=1
exit $fail
