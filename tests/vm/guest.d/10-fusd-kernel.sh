#!/bin/bash
# fusd.ko through its raw UAPI: the C tests of tests/kernel, then a few shell-level checks
# (a non-root caller through setpriv, plain bash redirections on a node).
set -u
B=$FUSD_VM_BIN
fail=0
check() {  # check NAME CMD...
	if "${@:2}"; then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi
}

"$B/fusd-ktest" || fail=1

dev=/dev/fusd-t-sh
"$B/fusd-ktest" serve fusd-t-sh echo 0666 & d=$!
for _ in $(seq 200); do [ -c $dev ] && break; sleep 0.01; done
who=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$B/fusd-ktest" whoami $dev)
read -r pid uid gid <<<"$who"
check "setpriv caller seen as 65534/65534 (got '$who')" \
	test "${uid:-}" = 65534 -a "${gid:-}" = 65534 -a "${pid:-0}" -gt 1
out=$(setpriv --inh-caps=-all --bounding-set=-all "$B/fusd-ktest" force fusd-t-sh)
check "uid 0 without capabilities cannot remove root's device (got '$out')" \
	test "$out" = "Operation not permitted" -a -c $dev
exec 3<>$dev
echo "hello fusd" >&3
read -r line <&3
exec 3>&-
check "bash redirections through an echo node" test "$line" = "hello fusd"
kill $d; wait $d 2>/dev/null
for _ in $(seq 100); do [ -e $dev ] || break; sleep 0.01; done
check "node gone after the daemon exits" test ! -e $dev
exit $fail
