#!/bin/bash
# bench/protocol_bench.sh - what --protocol json and --handler cost per call:
#   1. a 1-byte read through `fusdctl serve --protocol json` with a trivial Python driver (it
#      answers every read with one byte), against the same read from `fusdctl serve --shared --
#      yes` (the bytes already waiting in fusdctl);
#   2. a 1-byte read through `fusdctl serve --handler` (a shell script that prints one byte),
#      against a bare spawn of the same script with the same arguments (posix_spawn + read its
#      stdout + wait).
#
#   bench/protocol_bench.sh [ITERATIONS]     (default 2000; root; FUSDCTL and FUSD_BACKEND honoured)
#
# Prints one line per measure and a ratio per pair; exits 0 whatever the figures (a benchmark,
# not a test).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUSDCTL=${FUSDCTL:-$here/build/cmd/fusdctl}
BACKEND=${FUSD_BACKEND:-auto}
N=${1:-2000}
PY=$(command -v /usr/bin/python3 || command -v python3)
[ -x "$FUSDCTL" ] || { echo "protocol_bench: no fusdctl at $FUSDCTL (build it, or set FUSDCTL)" >&2; exit 1; }

tmp=$(mktemp -d)
devs=() pids=()
cleanup() {
	local d p
	for d in "${devs[@]}"; do "$FUSDCTL" rm "$d" 2>/dev/null || "$FUSDCTL" rm --force "$d" 2>/dev/null || true; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/driver.py" <<PYEOF
#!$PY
import json, sys
for line in sys.stdin:
    call = json.loads(line)
    if call["op"] == "read":
        sys.stdout.write('{"id": %d, "data": "eA=="}\n' % call["id"])
    elif call["op"] in ("open", "write", "ioctl"):
        sys.stdout.write('{"id": %d}\n' % call["id"])
    sys.stdout.flush()
PYEOF
printf '#!/bin/sh\n[ "$1" = read ] && printf x\nexit 0\n' >"$tmp/handler.sh"
chmod +x "$tmp/driver.py" "$tmp/handler.sh"

serve() { # serve NAME OPTIONS...: a detached server on /dev/NAME
	local dev=/dev/$1
	shift
	devs+=("$dev")
	pids+=("$("$FUSDCTL" serve --detach --backend "$BACKEND" "$dev" "$@")")
}
serve fusd-bench-proto-$$ --protocol json -- "$tmp/driver.py"
serve fusd-bench-shared-$$ --shared -- yes
serve fusd-bench-handler-$$ --handler "$tmp/handler.sh"

"$PY" - "$N" "${devs[@]}" "$tmp/handler.sh" <<'PYEOF'
import os, sys, time, statistics
n, proto, shared, handler, script = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]

def reader(dev):
    fd = os.open(dev, os.O_RDONLY)
    def read1():
        if len(os.read(fd, 1)) != 1:
            raise SystemExit(f"{dev}: short read")
    return read1

def bare():
    r, w = os.pipe()
    pid = os.posix_spawn(script, [script, "read", "1"], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
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

def compare(label_a, a, label_b, b, k):
    for fn in (a, b):      # warm up both paths
        timed(fn, max(1, k // 20))
    rounds, per = 10, max(1, k // 10)
    xa, xb = [], []
    for _ in range(rounds):  # interleaved, so that drift on a shared machine hits both alike
        xa.append(timed(a, per))
        xb.append(timed(b, per))
    ma, mb = statistics.median(xa), statistics.median(xb)
    print(f"{label_a}: {ma:8.1f} us/call (median of {rounds} rounds of {per})")
    print(f"{label_b}: {mb:8.1f} us/call")
    print(f"ratio: {ma / mb:.2f}")

compare("1-byte read, --protocol json (Python driver)", reader(proto),
        "1-byte read, --shared -- yes", reader(shared), n)
compare("1-byte read, --handler (sh script per call)", reader(handler),
        "bare spawn of the script + read + wait", bare, max(10, n // 10))
PYEOF
