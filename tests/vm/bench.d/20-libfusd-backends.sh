#!/bin/bash
# 1-byte reads through a libfusd device on the kernel module and on CUSE, beside /dev/zero and a
# pipe ping-pong, in the same boot (bench/fusd_bench.cpp --compare-backends).
set -eu
"$FUSD_BUILD/bench/fusd-bench" --compare-backends --scale "${FUSD_BENCH_SCALE:-0.5}"
