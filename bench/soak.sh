#!/bin/bash
# bench/soak.sh [SECONDS [BACKEND...]]: bench/fusd_soak.cpp for SECONDS (default 600) on each
# BACKEND (default: each of kernel, cuse, fuse that this machine offers), one after another;
# each run prints its counts of calls and errors and its leak check. Exit 1 if any run failed.
# In the QEMU guest: tests/vm/run --bench tests/vm/bench.d/30-soak.sh (the kernel module and CUSE).
set -u
seconds=${1:-600}
shift || true
soak=${FUSD_SOAK:-${FUSD_BUILD:-$(dirname "$0")/../build}/bench/fusd-soak}
[ -x "$soak" ] || { echo "soak.sh: $soak is not built (ninja -C build bench/fusd-soak)" >&2; exit 1; }
backends=("$@")
if [ ${#backends[@]} = 0 ]; then
	[ -c /dev/fusd ] && backends+=(kernel)
	[ -c /dev/cuse ] && backends+=(cuse)
	[ -c /dev/fuse ] && backends+=(fuse)
fi
fail=0
for backend in "${backends[@]}"; do
	"$soak" --backend "$backend" --seconds "$seconds" || fail=1
done
exit $fail
