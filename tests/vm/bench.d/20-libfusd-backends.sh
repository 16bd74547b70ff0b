#!/bin/bash
# 1-byte reads through a libfusd device on the kernel module and on CUSE, beside /dev/zero and a
# pipe ping-pong, in the same boot (bench/fusd_bench.cpp --compare-backends): first with caller
# and daemon on one CPU (two context switches per call, each a full TLB flush under TCG), then,
# with a second CPU, the daemon on it (no switch: the bench boot polls when idle, so a wake-up
# takes no emulated IPI).
set -eu
"$FUSD_BUILD/bench/fusd-bench" --compare-backends --scale "${FUSD_BENCH_SCALE:-0.5}"
if [ "$(nproc)" -gt 1 ]; then
	echo
	"$FUSD_BUILD/bench/fusd-bench" --compare-backends --daemon-cpu 1 --scale "${FUSD_BENCH_SCALE:-0.5}"
fi
