#!/bin/bash
# 1-byte reads through a libfusd device on the kernel module and on CUSE, beside /dev/zero and a
# pipe ping-pong, in the same boot (bench/fusd_bench.cpp --compare-backends), with the caller and
# the daemons placed three ways:
#  - on one CPU: two context switches per call, each a full TLB flush under TCG; nobody can spin;
#  - the daemons on a second CPU (the bench boot polls when idle, so a wake-up takes no emulated
#    IPI), where fusd.ko's waits spin before they sleep (poll_ns, fusd(4));
#  - unpinned, wherever the scheduler puts them, as an ordinary program runs;
# and the last two again with fusd.ko's polling off (poll_ns=0), to show what it does.
set -eu
bench() { "$FUSD_BUILD/bench/fusd-bench" --compare-backends --scale "${FUSD_BENCH_SCALE:-0.5}" "$@"; }
bench
[ "$(nproc)" -gt 1 ] || exit 0
echo; bench --daemon-cpu 1
echo; bench --unpinned
poll=/sys/module/fusd/parameters/poll_ns
saved=$(cat $poll)
trap 'echo "$saved" > $poll' EXIT
echo 0 > $poll
echo; echo "fusd.ko polling off (poll_ns=0; it is $saved):"
bench --daemon-cpu 1
echo; bench --unpinned
