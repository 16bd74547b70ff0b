#!/usr/bin/env bats
# fusdctl serve: per-open commands, shared mode, blocking/non-blocking/poll, caller environment,
# detach readiness, clean exit, permissions, and every bad input.

load helpers
bats_scope every-backend

@test "serve -- echo: cat prints the command's output, then end of file" {
	serve_d "$NAME" -- echo "hello from fusd"
	run timeout "$GUARD" cat "$DEV"
	assert_success
	assert_output "hello from fusd"
}

@test "serve -- date: the README example, with a /dev path" {
	serve_d "$DEV" -- date +%Y
	run timeout "$GUARD" cat "$DEV"
	assert_success
	assert_output "$(date +%Y)"
}

@test "every open runs the command again" {
	serve_d "$NAME" -- sh -c 'echo $$'
	a=$(timeout "$GUARD" cat "$DEV")
	b=$(timeout "$GUARD" cat "$DEV")
	[[ $a =~ ^[0-9]+$ ]]
	[[ $b =~ ^[0-9]+$ ]]
	[ "$a" != "$b" ]
}

@test "write then read through -- cat" {
	serve_d "$NAME" -- cat
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"ping\n")
print(os.read(fd, 100).decode(), end="")
os.write(fd, b"pong\n")
print(os.read(fd, 100).decode(), end="")
os.close(fd)' "$DEV"
	assert_success
	assert_output $'ping\npong'
}

@test "large output arrives complete and in order" {
	serve_d "$NAME" -- seq 1 200000
	run bash -c "timeout "$GUARD" cat '$DEV' | md5sum"
	assert_success
	assert_output "$(seq 1 200000 | md5sum)"
}

@test "a full pipe blocks the writer, nothing is dropped (4 MiB through cat)" {
	serve_d "$NAME" -- cat
	run py '
import os, sys, threading, hashlib
fd = os.open(sys.argv[1], os.O_RDWR)
data = os.urandom(4 << 20)
got = bytearray()
def reader():
    while len(got) < len(data):
        b = os.read(fd, 1 << 20)
        if not b:
            break
        got.extend(b)
t = threading.Thread(target=reader)
t.start()
n = 0
while n < len(data):
    n += os.write(fd, data[n:n + 300000])
t.join(15)
print(len(got), bytes(got) == data)' "$DEV"
	assert_success
	assert_output "4194304 True"
}

@test "a write-only open never blocks on the command's unread output" {
	serve_d "$NAME" -- cat
	run timeout "$GUARD" bash -c "head -c 3000000 /dev/zero > '$DEV'"
	assert_success
}

@test "a read-only open: the command's input ends at once" {
	serve_d "$NAME" -- sh -c 'cat; echo input-ended'
	run timeout "$GUARD" cat "$DEV"
	assert_success
	assert_output "input-ended"
}

@test "two concurrent openers get their own commands" {
	serve_d "$NAME" -- sh -c 'echo $$; cat'
	run py '
import os, sys
a = os.open(sys.argv[1], os.O_RDWR)
b = os.open(sys.argv[1], os.O_RDWR)
pa = os.read(a, 100).split()[0]
pb = os.read(b, 100).split()[0]
os.write(a, b"to-a\n")
os.write(b, b"to-b\n")
ra, rb = os.read(a, 100), os.read(b, 100)
print(pa != pb, ra == b"to-a\n", rb == b"to-b\n")
os.close(a); os.close(b)' "$DEV"
	assert_success
	assert_output "True True True"
}

@test "read blocks until the command writes" {
	serve_d "$NAME" -- sh -c 'sleep 0.5; echo late'
	run py '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
t = time.time()
data = os.read(fd, 100)
waited = time.time() - t
print(data.decode().strip(), waited > 0.3, os.read(fd, 100) == b"")
os.close(fd)' "$DEV"
	assert_success
	assert_output "late True True"
}

@test "--shared: one command for every opener" {
	serve_d "$NAME" --shared -- sh -c 'echo started $$; while read l; do echo "got $l"; done'
	run py '
import os, sys
a = os.open(sys.argv[1], os.O_RDWR)
b = os.open(sys.argv[1], os.O_RDWR)
first = os.read(a, 100).decode().strip()
os.write(b, b"one\n")
r1 = os.read(a, 100).decode().strip()
os.write(a, b"two\n")
r2 = os.read(b, 100).decode().strip()
os.close(a); os.close(b)
c = os.open(sys.argv[1], os.O_RDWR)
os.write(c, b"three\n")
r3 = os.read(c, 100).decode().strip()
print(first.split()[0], r1, r2, r3, sep="|")' "$DEV"
	assert_success
	assert_output "started|got one|got two|got three"
}

@test "--shared: when the command exits, readers get end of file and writers EPIPE" {
	serve_d "$NAME" --shared -- sh -c 'echo bye'
	run py '
import os, sys, errno, time
fd = os.open(sys.argv[1], os.O_RDWR)
out = b""
while True:
    b = os.read(fd, 100)
    if not b:
        break
    out += b
time.sleep(0.2)
try:
    os.write(fd, b"x")
    print("write succeeded")
except OSError as e:
    print(out.decode().strip(), errno.errorcode[e.errno])' "$DEV"
	assert_success
	assert_output "bye EPIPE"
	# the device stays until stopped, still answering end of file
	run timeout "$GUARD" cat "$DEV"
	assert_success
	assert_output ""
}

@test "--shared --restart: the command is started again when it exits" {
	serve_d "$NAME" --shared --restart --restart-delay 0.1 -- sh -c 'echo $$; sleep 0.2'
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
pids = set()
buf = b""
while len(pids) < 3:
    b = os.read(fd, 100)
    assert b, "unexpected end of file"
    buf += b
    *lines, buf = buf.split(b"\n")
    pids.update(lines)
print("restarted twice")' "$DEV"
	assert_success
	assert_output "restarted twice"
}

@test "O_NONBLOCK: read gives EAGAIN while there is no output" {
	serve_d "$NAME" -- sleep 30
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    os.read(fd, 10)
    print("no EAGAIN")
except BlockingIOError:
    print("EAGAIN")
os.close(fd)' "$DEV"
	assert_success
	assert_output "EAGAIN"
}

@test "O_NONBLOCK: write gives EAGAIN once the command's stdin is full, and select agrees" {
	serve_d "$NAME" -- sleep 30
	run py '
import os, sys, select
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
r, w, x = select.select([], [fd], [], 5)
before = bool(w)
n = 0
try:
    for _ in range(1000):
        n += os.write(fd, b"x" * 65536)
    print("never full")
except BlockingIOError:
    pass
r, w, x = select.select([], [fd], [], 0.5)
print(before, n > 0, bool(w))
os.close(fd)' "$DEV"
	assert_success
	assert_output "True True False"
}

@test "poll/select: readable when output arrives, writable when stdin has room" {
	serve_d "$NAME" -- cat
	run py '
import os, sys, select
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NONBLOCK)
r, w, x = select.select([fd], [fd], [], 0.3)
step1 = (bool(r), bool(w))
os.write(fd, b"data\n")
r, w, x = select.select([fd], [], [], 5)
step2 = bool(r)
data = os.read(fd, 100)
p = select.poll()
p.register(fd, select.POLLIN | select.POLLOUT)
ev = dict(p.poll(300)).get(fd, 0)
print(step1, step2, data, bool(ev & select.POLLIN), bool(ev & select.POLLOUT))
os.close(fd)' "$DEV"
	assert_success
	assert_output "(False, True) True b'data\n' False True"
}

@test "poll: end of file is readable" {
	serve_d "$NAME" -- true
	run py '
import os, sys, select
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
r, w, x = select.select([fd], [], [], 10)
print(bool(r), os.read(fd, 10))
os.close(fd)' "$DEV"
	assert_success
	assert_output "True b''"
}

@test "the command sees the caller in its environment" {
	serve_d "$NAME" --mode 0666 -- sh -c 'echo "$FUSD_DEVICE $FUSD_CALLER_PID $FUSD_CALLER_UID $FUSD_CALLER_GID $FUSD_OPEN_FLAGS"'
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
dev, pid, uid, gid, flags = os.read(fd, 200).split()
print(dev.decode() == sys.argv[1], int(pid) == os.getpid(), uid.decode(), gid.decode(), int(flags) & 3 == os.O_RDWR)
os.close(fd)' "$DEV"
	assert_success
	assert_output "True True 0 0 True"
	run as_nobody timeout "$GUARD" cat "$DEV"
	assert_success
	assert_output --regexp "^$DEV [0-9]+ 65534 65534 [0-9]+$"
}

@test "a caller that is not root: allowed with --mode 0666, refused with 0600" {
	serve_d "$NAME" --mode 0666 -- echo open
	run as_nobody timeout "$GUARD" cat "$DEV"
	assert_success
	assert_output "open"
	serve_d "$NAME-closed" --mode 0600 -- echo secret
	run as_nobody timeout "$GUARD" cat "$DEV-closed"
	assert_failure
	assert_output --partial "Permission denied"
	refute_output --partial "secret"
}

@test "--owner and --group set the node's owner" {
	serve_d "$NAME" --owner nobody --group 65534 --mode 0640 -- echo mine
	run stat -c '%u:%g %a' "$DEV"
	assert_success
	assert_output "65534:65534 640"
	run as_nobody timeout "$GUARD" cat "$DEV"
	assert_success
	assert_output "mine"
}

@test "the command's stderr goes to --log FILE" {
	serve_d "$NAME" --log "$T/log" -- sh -c 'echo to-stdout; echo to-stderr >&2'
	run timeout "$GUARD" cat "$DEV"
	assert_success
	assert_output "to-stdout"
	wait_for "$GUARD" grep -q to-stderr "$T/log"
}

@test "the command's stderr goes to fusdctl's stderr in the foreground" {
	serve_fg "$NAME" -- sh -c 'echo visible >&2'
	timeout "$GUARD" cat "$DEV"
	wait_for "$GUARD" grep -q visible "$T/fg.err"
}

@test "-d returns once the node is ready and prints the daemon's pid" {
	run "$FUSDCTL" serve -d --backend "$FUSD_BACKEND" "$NAME" -- echo ready 3>&-
	assert_success
	track_dev "$DEV"
	assert_output --regexp '^[0-9]+$'
	track_pid "$output"
	# no sleep, no retry: the very next line can use the device
	[ "$(timeout "$GUARD" cat "$DEV")" = ready ]
	alive "$output"
}

@test "--pidfile is written once ready and removed at exit" {
	serve_d "$NAME" --pidfile "$T/serve.pid" -- true
	[ "$(cat "$T/serve.pid")" = "$SERVER_PID" ]
	run "$FUSDCTL" rm "$DEV"
	assert_success
	wait_gone "$SERVER_PID" "$GUARD"
	[ ! -e "$T/serve.pid" ]
}

@test "SIGTERM: unregisters, ends the commands and exits 0, leaving nothing behind" {
	serve_fg "$NAME" -- sh -c 'echo $$; exec sleep 60'
	# a blocked reader whose command is still running
	timeout "$GUARD" cat "$DEV" >"$T/reader.out" 2>&1 &
	reader=$!
	wait_for "$GUARD" test -s "$T/reader.out"
	read -r cmdpid <"$T/reader.out"
	track_cmd "$cmdpid"
	alive "$cmdpid"
	kill -TERM "$SERVER_PID"
	wait_gone "$SERVER_PID" "$GUARD"
	wait "$SERVER_PID" # exit status 0
	wait "$reader" || true
	[ ! -e "$DEV" ]
	not grep -q " $DEV " /proc/mounts
	not listed "$DEV"
	# no registry entry either, not even a dead one
	run "$FUSDCTL" ls --json
	refute_output --partial "\"$DEV\""
	wait_gone "$cmdpid" "$GUARD"
	[ ! -e "$T/fg.pid" ]
}

@test "SIGINT: the same clean exit" {
	serve_fg "$NAME" -- echo x
	kill -INT "$SERVER_PID"
	wait_gone "$SERVER_PID" "$GUARD"
	wait "$SERVER_PID" # exit status 0
	[ ! -e "$DEV" ]
	not grep -q " $DEV " /proc/mounts
}

@test "close() ends the command: stdin closed, then SIGTERM, then SIGKILL" {
	serve_d "$NAME" --grace 0.2 -- sh -c 'trap "" TERM; echo $$; while :; do sleep 0.05; done'
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.read(fd, 100).decode().split()[0])
os.close(fd)' "$DEV"
	assert_success
	track_cmd "$output"
	# SIGTERM is ignored: SIGKILL after twice the grace period
	wait_gone "$output" "$GUARD"
}

@test "a command that exits on end of input is not killed early" {
	serve_d "$NAME" --grace 5 -- sh -c "cat > '$T/written'; echo done >> '$T/written'"
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b"line\n")
os.close(fd)' "$DEV"
	assert_success
	wait_for "$GUARD" grep -q done "$T/written"
	assert_equal "$(cat "$T/written")" $'line\ndone'
}

@test "a reader killed while blocked frees nothing else: the device keeps working" {
	serve_d "$NAME" -- sh -c 'sleep 30'
	timeout "$GUARD" cat "$DEV" &
	reader=$!
	sleep 0.3
	kill -KILL "$reader"
	wait "$reader" || true
	run timeout "$GUARD" "$FUSDCTL" ls --json
	assert_success
	serve_d "$NAME-2" -- echo still-fine
	run timeout "$GUARD" cat "$DEV-2"
	assert_output "still-fine"
}

@test "no zombies and no leaked descriptors in the server" {
	serve_d "$NAME" -- echo x
	before=$(ls "/proc/$SERVER_PID/fd" | wc -l)
	for i in 1 2 3 4 5 6 7 8; do timeout "$GUARD" cat "$DEV" >/dev/null; done
	# the server closes and reaps after each close() returns: wait for it, not for a time
	fds_as_before() { [ "$(ls "/proc/$SERVER_PID/fd" | wc -l)" -eq "$before" ]; }
	no_zombies() { [ "$(ps -o stat= --ppid "$SERVER_PID" | grep -c Z)" -eq 0 ]; }
	wait_for "$GUARD" fds_as_before || fail "descriptors: $before before, $(ls "/proc/$SERVER_PID/fd" | wc -l) after"
	wait_for "$GUARD" no_zombies || fail "zombie children: $(ps -o pid=,stat= --ppid "$SERVER_PID")"
}

@test "the command gets no descriptor of the server" {
	# the command's own descriptors (exec: a shell in mid-pipeline would show its pipes too)
	serve_d "$NAME" -- sh -c 'exec ls /proc/self/fd'
	run bash -c "timeout '$GUARD' cat '$DEV' | sort -n | tr '\n' ' '"
	assert_success
	# 0, 1, 2 and the one ls opens for /proc/self/fd
	assert_output --regexp '^0 1 2 ([0-9]+ )?$'
}

# ---- bad input ------------------------------------------------------------------------------

@test "bad device name: exit 1, a message naming it, nothing made" {
	run "$FUSDCTL" serve --backend "$FUSD_BACKEND" "../$NAME" -- true
	assert_failure 1
	assert_output --partial "fusdctl: "
	assert_output --partial "../$NAME"
	run "$FUSDCTL" serve --backend "$FUSD_BACKEND" "" -- true
	assert_failure 1
}

@test "existing node: exit 1, not replaced" {
	run "$FUSDCTL" serve --backend "$FUSD_BACKEND" /dev/null -- true
	assert_failure 1
	assert_output --partial "/dev/null"
	assert_output --partial "exists"
	[ -c /dev/null ]
}

@test "a device that is already served: exit 1" {
	serve_d "$NAME" -- echo first
	run "$FUSDCTL" serve -d --backend "$FUSD_BACKEND" "$NAME" -- echo second 3>&-
	assert_failure 1
	assert_output --partial "$DEV"
	[ "$(timeout "$GUARD" cat "$DEV")" = first ]
}

@test "a command that cannot be executed is reported before any node is made" {
	run "$FUSDCTL" serve -d --backend "$FUSD_BACKEND" "$NAME" -- no-such-command-fusd-bats 3>&-
	assert_failure 1
	assert_output --partial "$DEV"
	assert_output --partial "no-such-command-fusd-bats"
	assert_output --partial "not found"
	[ ! -e "$DEV" ]
	run "$FUSDCTL" serve --backend "$FUSD_BACKEND" "$NAME" -- /etc/passwd
	assert_failure 1
	assert_output --partial "Permission denied"
	[ ! -e "$DEV" ]
}
