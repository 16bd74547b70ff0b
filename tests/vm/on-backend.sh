#!/bin/bash
# tests/vm/on-backend.sh SUITE BACKEND CONTROL_NODE [GTEST_FILTER]
# Shared by the guest.d scripts: run one of the host's suites, unchanged, on one backend in the
# guest. SUITE is `libfusd` (the integration tests, which read FUSD_BACKEND and FUSD_BUILD),
# `python` (the fusd Python package's pytest suite, python/tests) or `bats` (the files of fusdctl's suite that say `bats_scope every-backend`; they read
# FUSD_BACKEND and FUSDCTL). Tests that cannot depend on the backend (the unit tests, the bats
# files that say `bats_scope host-only`) run on the host only. Anything missing is a failure,
# never a silent pass.
set -u
suite=$1 backend=$2 node=$3 filter=${4:-}
export FUSD_BACKEND=$backend FUSD_BUILD
[ -c "$node" ] || { echo "FAIL: no $node in the guest (module not loaded?)"; exit 1; }
case $suite in
libfusd)
	B=$FUSD_BUILD/tests
	for t in fusd_integration_tests fusd-testd; do
		[ -x "$B/$t" ] || { echo "FAIL: $B/$t is not built (ninja -C $FUSD_BUILD)"; exit 1; }
	done
	exec "$B/fusd_integration_tests" ${filter:+--gtest_filter="$filter"}
	;;
python)
	[ -f "$FUSD_BUILD/python/fusd/__init__.py" ] || { echo "FAIL: the Python package is not built in $FUSD_BUILD/python"; exit 1; }
	export PYTHONPATH=$FUSD_BUILD/python PYTHONDONTWRITEBYTECODE=1
	exec /usr/bin/python3 -m pytest -q -p no:cacheprovider -rs "$FUSD_REPO/python/tests"
	;;
bats)
	export FUSDCTL=$FUSD_BUILD/cmd/fusdctl
	[ -d "$FUSD_REPO/tests/bats" ] || { echo "FAIL: no $FUSD_REPO/tests/bats"; exit 1; }
	[ -x "$FUSDCTL" ] || { echo "FAIL: fusdctl is not built at $FUSDCTL"; exit 1; }
	command -v bats >/dev/null || { echo "FAIL: no bats in the guest"; exit 1; }
	mapfile -t files < <(grep -lx 'bats_scope every-backend' "$FUSD_REPO"/tests/bats/*.bats)
	[ ${#files[@]} -gt 0 ] || { echo "FAIL: no bats file says 'bats_scope every-backend'"; exit 1; }
	exec bats --tap --timing "${files[@]}"
	;;
*)
	echo "FAIL: unknown suite '$suite'"
	exit 1
	;;
esac
