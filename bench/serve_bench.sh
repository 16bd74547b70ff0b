#!/bin/bash
# bench/serve_bench.sh - the cost of `fusdctl serve DEV -- true` per open+read+close, against the
# bare spawn of the same command (fork/exec + read its stdout to end of file + wait) in the same run.
# Target: at most 1.3x the bare spawn.
#
#   bench/serve_bench.sh [ITERATIONS]        (default 400; root; FUSDCTL and FUSD_BACKEND honoured)
#
# Prints one line per measure and a final "ratio" line; exits 0 whatever the ratio (a benchmark,
# not a test).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUSDCTL=${FUSDCTL:-$here/build/cmd/fusdctl}
BACKEND=${FUSD_BACKEND:-auto}
N=${1:-400}
PY=$(command -v /usr/bin/python3 || command -v python3)
CMD=$(type -P true)
dev=/dev/fusd-bench-$$

[ -x "$FUSDCTL" ] || { echo "serve_bench: no fusdctl at $FUSDCTL (build it, or set FUSDCTL)" >&2; exit 1; }
pid=$("$FUSDCTL" serve --detach --backend "$BACKEND" "$dev" -- "$CMD")
cleanup() {
	"$FUSDCTL" rm "$dev" 2>/dev/null || "$FUSDCTL" rm --force "$dev" 2>/dev/null || true
	kill "$pid" 2>/dev/null || true
}
trap cleanup EXIT

"$PY" - "$dev" "$N" "$CMD" <<'PYEOF'
import os, sys, time, statistics
dev, n, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def served():
    fd = os.open(dev, os.O_RDONLY)
    while os.read(fd, 65536):
        pass
    os.close(fd)

def bare():
    r, w = os.pipe()
    pid = os.posix_spawn(cmd, [cmd], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
    os.close(w)
    while os.read(r, 65536):
        pass
    os.close(r)
    os.waitpid(pid, 0)

def timed(fn, k):
    t = time.perf_counter_ns()
    for _ in range(k):
        fn()
    return (time.perf_counter_ns() - t) / k / 1000.0

for fn in (served, bare):      # warm up both paths
    timed(fn, 20)
rounds, per = 10, max(1, n // 10)
s, b = [], []
for _ in range(rounds):         # interleaved, so that drift on a shared machine hits both alike
    s.append(timed(served, per))
    b.append(timed(bare, per))
ms, mb = statistics.median(s), statistics.median(b)
print(f"serve open+read+close of '{cmd}': {ms:8.1f} us/op (median of {rounds} rounds of {per})")
print(f"bare spawn of '{cmd}' + read + wait: {mb:8.1f} us/op")
print(f"ratio serve/bare: {ms / mb:.2f} (target <= 1.30)")
PYEOF
