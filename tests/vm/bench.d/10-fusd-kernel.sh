#!/bin/bash
# 1-byte reads: /dev/zero vs a fusd.ko node with a minimal raw-UAPI daemon, answering by
# read()+write(), by FUSD_IOC_EXCHANGE, and by FUSD_IOC_EXCHANGE watching an epoll set (same boot).
set -eu
"$FUSD_VM_BIN/fusd-kbench" "${FUSD_BENCH_ITERS:-20000}"
