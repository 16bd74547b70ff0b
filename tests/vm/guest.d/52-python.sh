#!/bin/bash
# The fusd Python package's tests (python/tests, pytest), the same as on the host, on CUSE and
# on the kernel backend. Here pyserial talks to a fake modem: a real character device is a
# terminal, which a FUSE file never is.
set -u
fail=0
for b in "cuse /dev/cuse" "kernel /dev/fusd"; do
	set -- $b
	if "$FUSD_REPO/tests/vm/on-backend.sh" python "$1" "$2"; then
		echo "PASS python suite on $1"
	else
		echo "FAIL python suite on $1"
		fail=1
	fi
done
exit $fail
