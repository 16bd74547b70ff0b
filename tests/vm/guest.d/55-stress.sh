#!/bin/bash
# bench/fusd_stress.cpp at the small counts of its CTest entry, on CUSE and on the kernel backend:
# concurrent callers, many devices, open/close cycles, every count exact, no descriptor kept;
# then bench/fusd_soak.cpp for a short while (mixed traffic, the daemon disrupted every 3 s).
set -u
stress=$FUSD_BUILD/bench/fusd-stress
[ -x "$stress" ] || { echo "FAIL: $stress is not built (ninja -C $FUSD_BUILD)"; exit 1; }
fail=0
for backend in cuse kernel; do
	"$stress" --backend "$backend" --callers 20 --rounds 20 --devices 20 --cycles 2000 >"/tmp/stress.$$" 2>&1
	rc=$?
	sed "s/^/$backend: /" "/tmp/stress.$$"
	if [ "$rc" = 0 ]; then echo "PASS stress on $backend"; else echo "FAIL stress on $backend (exit $rc)"; fail=1; fi
	"$FUSD_BUILD/bench/fusd-soak" --backend "$backend" --seconds 15 --disrupt-every 3 >"/tmp/stress.$$" 2>&1
	rc=$?
	sed "s/^/$backend: /" "/tmp/stress.$$"
	if [ "$rc" = 0 ]; then echo "PASS soak on $backend"; else echo "FAIL soak on $backend (exit $rc)"; fail=1; fi
done
rm -f "/tmp/stress.$$"
exit $fail
