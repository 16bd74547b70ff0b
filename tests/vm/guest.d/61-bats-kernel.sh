#!/bin/bash
# fusdctl's bats suite (tests/bats) on the kernel backend (fusd.ko). A missing suite,
# fusdctl or bats is a failure, never a silent pass.
set -u
export FUSD_BACKEND=kernel
export FUSDCTL=$FUSD_BUILD/cmd/fusdctl
[ -d "$FUSD_REPO/tests/bats" ] || { echo "FAIL: no $FUSD_REPO/tests/bats"; exit 1; }
[ -x "$FUSDCTL" ] || { echo "FAIL: fusdctl is not built at $FUSDCTL (configure $FUSD_BUILD with -DFUSD_CLI=ON)"; exit 1; }
command -v bats >/dev/null || { echo "FAIL: no bats in the guest"; exit 1; }
[ -c /dev/fusd ] || { echo "FAIL: no /dev/fusd in the guest (fusd.ko not loaded?)"; exit 1; }
# Under TCG emulation bats runs some 50-90x slower than on the host, so the guest runs the tests
# tagged `backend` (what can differ between backends: serve, ls, trace, rm, doctor); the rest
# (CLI parsing, completions, man pages) is backend-independent and runs on the host.
bats --tap --filter-tags backend "$FUSD_REPO/tests/bats"
