# tests/bats/helpers.bash - shared by every fusdctl suite.
#
# Environment:
#   FUSDCTL       the binary under test (default: <repo>/build/cmd/fusdctl)
#   FUSD_BACKEND  auto (default), kernel, cuse or fuse: passed to `fusdctl serve --backend`
#
# Every test gets unique device names (fusd-bats-<pid>-<test number>[-suffix]); teardown stops
# every server the test started, removes its nodes (rm, then rm --force), and fails the test if
# a node, a mount or a process of it is left behind. Nothing here waits without a time limit.

# bats-support and bats-assert, sourced file by file: their load.bash files run `dirname` once
# per file, fifteen forks per test, which is seconds per test in the TCG guest.
for f in /usr/lib/bats/bats-support/src/{output,error,lang}.bash /usr/lib/bats/bats-assert/src/*.bash; do
	# shellcheck disable=SC1090
	source "$f" || return 1
done
unset f

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# Seconds that any wait in these tests may last: a hang guard, never a speed target. It only
# ends a test that would otherwise wait forever, so it is far above the slowest whole test seen
# (about 70 s, in the TCG guest on a 2-core host loaded several times over).
GUARD=120
FUSDCTL=${FUSDCTL:-$REPO/build/cmd/fusdctl}
FUSD_BACKEND=${FUSD_BACKEND:-auto}
PY=$(command -v /usr/bin/python3 || command -v python3 || true)
export FUSDCTL FUSD_BACKEND PY

# bats_scope SCOPE: each .bats file says, right after `load helpers`, where its tests mean
# something (tests/vm/on-backend.sh reads that line):
#   bats_scope every-backend  its tests serve devices: they run on the host (FUSE) and again, in
#                             the QEMU guest, on CUSE and on the kernel backend
#   bats_scope host-only      its tests touch no device (argument parsing, usage errors, --help,
#                             completions, man pages): they run once, on the host. Kept honest:
#                             such a test gets an unknown backend and an empty registry of its
#                             own, so serving or finding a device fails it.
#   bats_scope namespace      its tests serve devices only inside `fusdctl run`, which always
#                             serves through FUSE in a namespace of its own whatever the backend:
#                             they run once, on the host (in the guest they would repeat the same
#                             FUSE path). Kept honest like host-only: outside the run, an unknown
#                             backend and an empty registry of the test's own, which must stay empty.
bats_scope() { BATS_SCOPE=$1; }

common_setup() {
	[ -x "$FUSDCTL" ] || fail "no fusdctl at $FUSDCTL: build it (cmake --build build) or set FUSDCTL"
	NAME=fusd-bats-$$-$BATS_TEST_NUMBER
	DEV=/dev/$NAME
	T=$BATS_TEST_TMPDIR
	case ${BATS_SCOPE:-} in
	every-backend) ;;
	host-only) export FUSD_BACKEND=none-in-a-host-only-test FUSD_RUNTIME_DIR=$T/runtime ;;
	namespace) export FUSD_BACKEND=none-outside-fusdctl-run FUSD_RUNTIME_DIR=$T/runtime ;;
	*) fail "${BATS_TEST_FILENAME##*/}: no 'bats_scope every-backend', 'host-only' or 'namespace' after 'load helpers'" ;;
	esac
	: >"$T/pids"
	: >"$T/devs"
	: >"$T/cmdpids"
}

common_teardown() {
	local dev pid leftovers=""
	if [ "$BATS_SCOPE" != every-backend ] && compgen -G "$T/runtime/devices/*" >/dev/null; then
		leftovers+=" a device served by a host-only test (make its file 'bats_scope every-backend');"
	fi
	# Stopped servers are continued; then asked nicely to unregister, then forced.
	while read -r pid; do
		[ -z "$pid" ] || kill -CONT "$pid" 2>/dev/null || true
	done <"$T/pids"
	while read -r dev; do
		[ -n "$dev" ] || continue
		timeout "$GUARD" "$FUSDCTL" rm "$dev" >/dev/null 2>&1 || timeout "$GUARD" "$FUSDCTL" rm --force "$dev" >/dev/null 2>&1 || true
	done <"$T/devs"
	while read -r pid; do
		[ -n "$pid" ] || continue
		kill -TERM "$pid" 2>/dev/null || true
	done <"$T/pids"
	while read -r pid; do
		[ -n "$pid" ] || continue
		wait_gone "$pid" "$GUARD" || { kill -KILL "$pid" 2>/dev/null; leftovers+=" server $pid still running;"; }
	done <"$T/pids"
	while read -r pid; do
		[ -n "$pid" ] || continue
		wait_gone "$pid" "$GUARD" || { kill -KILL "$pid" 2>/dev/null; leftovers+=" command $pid still running;"; }
	done <"$T/cmdpids"
	while read -r dev; do
		[ -n "$dev" ] || continue
		if grep -q " $dev " /proc/mounts; then
			umount -l "$dev" 2>/dev/null || true
			leftovers+=" mount $dev;"
		fi
		if [ -e "$dev" ] || [ -L "$dev" ]; then
			timeout "$GUARD" "$FUSDCTL" rm --force "$dev" >/dev/null 2>&1 || rm -f "$dev"
			leftovers+=" node $dev;"
		fi
	done <"$T/devs"
	if grep -q "fusd-bats-$$-$BATS_TEST_NUMBER\b" /proc/mounts; then
		leftovers+=" $(grep "fusd-bats-$$-$BATS_TEST_NUMBER\b" /proc/mounts | tr '\n' ';')"
		grep "fusd-bats-$$-$BATS_TEST_NUMBER\b" /proc/mounts | awk '{print $2}' | xargs -r -n1 umount -l 2>/dev/null || true
	fi
	[ -z "$leftovers" ] || fail "left behind:$leftovers"
}

setup() { common_setup; }
teardown() { common_teardown; }

# A process is gone once it has no /proc entry or is a zombie (its reaper may be slow). Read
# with builtins: a fork per poll is dear in the TCG guest, where the waiters share two CPUs with
# what they wait for.
alive() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) } # the command name, in parentheses, may hold spaces
	[ -n "$stat" ] && [ "${stat%% *}" != Z ]
}

# not COMMAND...: succeeds when COMMAND fails. (A bare `! cmd` never fails a bats test: set -e
# ignores negated commands.)
not() { ! "$@"; }

# listed DEVICE: `fusdctl ls -q` shows it live. (bats-assert's refute_line trips on an empty
# output, hence a plain grep.)
listed() { "$FUSDCTL" ls -q | grep -qxF "$1"; }

# poll_pause N: the pause after the Nth poll of a wait: short at first, then longer, so that a
# long wait does not spend the CPU its subject needs.
poll_pause() {
	if (($1 < 20)); then sleep 0.05; else sleep 0.2; fi
}

# wait_gone PID SECONDS
wait_gone() {
	local i end=$((SECONDS + $2))
	for ((i = 0; SECONDS < end; i++)); do
		alive "$1" || return 0
		poll_pause "$i"
	done
	! alive "$1"
}

# wait_for SECONDS COMMAND...: until COMMAND succeeds.
wait_for() {
	local i end=$((SECONDS + $1))
	shift
	for ((i = 0; SECONDS < end; i++)); do
		"$@" && return 0
		poll_pause "$i"
	done
	"$@"
}

# Remember a device or a server for teardown.
track_dev() { echo "$1" >>"$T/devs"; }
track_pid() { echo "$1" >>"$T/pids"; }
track_cmd() { echo "$1" >>"$T/cmdpids"; }

# serve_d DEVICE [SERVE OPTIONS] -- COMMAND...: `fusdctl serve --detach`; sets SERVER_PID.
serve_d() {
	local dev=$1 out
	shift
	track_dev "$(devpath "$dev")"
	out=$("$FUSDCTL" serve --detach --backend "$FUSD_BACKEND" "$dev" "$@" 3>&-) || {
		echo "fusdctl serve -d $dev $* failed" >&2
		return 1
	}
	SERVER_PID=$out
	track_pid "$SERVER_PID"
}

# serve_fg DEVICE [OPTIONS] -- COMMAND...: a foreground server in the background of the test,
# ready once its pid file exists; sets SERVER_PID (the fusdctl process itself).
serve_fg() {
	local dev=$1
	shift
	track_dev "$(devpath "$dev")"
	"$FUSDCTL" serve --backend "$FUSD_BACKEND" --pidfile "$T/fg.pid" "$dev" "$@" 2>"$T/fg.err" 3>&- &
	SERVER_PID=$!
	track_pid "$SERVER_PID"
	wait_for "$GUARD" test -s "$T/fg.pid" || fail "foreground server not ready: $(cat "$T/fg.err")"
}

devpath() {
	case $1 in
	/*) echo "$1" ;;
	*) echo "/dev/$1" ;;
	esac
}

# py SCRIPT [ARGS...]: python3 with the script on the command line (never blocks forever: the
# scripts use timeouts or are run under `timeout`).
py() {
	local script=$1
	shift
	timeout "$GUARD" "$PY" -c "$script" "$@"
}

# The tests run as root; a caller that is not root:
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# complete_bash WORD...: the candidates bash offers for the last word.
complete_bash() {
	bash -c '
source "$1"; shift
PATH=$(dirname "$FUSDCTL"):$PATH
COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_fusdctl
printf "%s\n" "${COMPREPLY[@]}"' _ "$REPO/completions/fusdctl.bash" "$@"
}

# complete_fish LINE: the candidates fish offers for the command line LINE.
complete_fish() {
	PATH=$(dirname "$FUSDCTL"):$PATH fish -c 'source $argv[1]; complete -C $argv[2]' \
		"$REPO/completions/fusdctl.fish" "$1" | cut -f1
}

# start_example NAME [DEVICE]: runs the example driver build/examples/NAME on DEVICE (default
# $DEV) in the background of the test, until it says "serving DEVICE on BACKEND"; sets ON to
# that backend.
start_example() {
	local ex dev=${2:-$DEV}
	ex=$(dirname "$(dirname "$FUSDCTL")")/examples/$1
	[ -x "$ex" ] || fail "no examples/$1 next to fusdctl: build it"
	track_dev "$dev"
	"$ex" "$dev" >"$T/$1.out" 2>&1 3>&- &
	track_pid $!
	wait_for "$GUARD" grep -q "^serving " "$T/$1.out" || fail "$1 did not start: $(cat "$T/$1.out")"
	ON=$(sed -n 's/^serving .* on //p' "$T/$1.out")
}

# driver NODE... -- COMMAND...: a classic driver in the background of the test (output in
# $T/driver.out), tracked for teardown; returns once every NODE exists. Sets DRIVER.
driver() {
	local nodes=() node
	while [ "$1" != -- ]; do
		nodes+=("$1")
		track_dev "$1"
		shift
	done
	shift
	command -v "$1" >/dev/null || fail "$1 is not built (ninja -C $BUILD)"
	# a background job of a script starts with SIGINT ignored: give the driver the defaults a
	# driver started from a terminal has
	env --default-signal=INT,TERM "$@" >"$T/driver.out" 2>&1 &
	DRIVER=$!
	track_pid "$DRIVER"
	for node in "${nodes[@]}"; do
		wait_for "$GUARD" test -e "$node" || fail "$node did not appear: $(cat "$T/driver.out")"
	done
}

# gone NODE...: the nodes and their registry entries are gone.
gone() {
	local node
	for node in "$@"; do
		[ ! -e "$node" ] || fail "$node is still there"
		not grep -q " $node " /proc/mounts || fail "$node is still mounted"
		not listed "$node" || fail "$node is still listed"
	done
}
