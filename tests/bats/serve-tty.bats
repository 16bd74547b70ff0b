#!/usr/bin/env bats
# fusdctl serve --tty: the device is a terminal to its callers (pyserial, stty, picocom through
# tmux), reads and writes go to and from the command, and the command sees the line through
# FUSD_TTY_STATE (and drives CTS/DSR/CD/RI through FUSD_TTY_CONTROL). On the kernel backend and
# CUSE the terminal ioctls reach fusdctl; on FUSE the device is a pseudo-terminal (a symlink to
# /dev/pts/N) and the kernel's pty driver answers them: the tests say which where it differs.

load helpers
bats_scope every-backend

setup() {
	common_setup
	# The command: answers "AT" with "OK", "STATE" with the line in $FUSD_TTY_STATE, "CD1" by
	# raising CD through $FUSD_TTY_CONTROL, "MANY" with 100 bytes, anything else in capitals;
	# a line ends with CR (a terminal's Enter) or LF.
	cat >"$T/modem.py" <<'EOF'
import os, sys
buf = b""
def out(b):
    os.write(1, b)
while True:
    d = os.read(0, 1024)
    if not d:
        break
    buf += d.replace(b"\r", b"\n")
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        if not line:
            continue
        if line == b"AT":
            out(b"OK\r\n")
        elif line == b"STATE":
            out(open(os.environ["FUSD_TTY_STATE"], "rb").read().strip() + b"\r\n")
        elif line == b"CD1":
            with open(os.environ["FUSD_TTY_CONTROL"], "w") as c:
                c.write("cd=1 cts=1\n")
            out(b"RAISED\r\n")
        elif line == b"MANY":
            out(b"x" * 100)
        else:
            out(line.upper() + b"\r\n")
EOF
}

# serve_tty [OPTIONS]: a shared --tty device on $DEV running the modem; sets ON (the backend
# serving it: fuse means the pseudo-terminal).
serve_tty() {
	serve_d "$DEV" --tty --shared --mode 0666 "$@" -- "$PY" -u "$T/modem.py"
	if [ -L "$DEV" ]; then ON=pty; else ON=ioctl; fi
}

@test "serve --tty: isatty; pyserial sets 115200 8N1, writes, and reads the command's answer" {
	"$PY" -c 'import serial' 2>/dev/null || fail "no pyserial for $PY (scripts/bootstrap installs python3-serial)"
	serve_tty
	run py '
import os, sys, serial
p = serial.Serial(sys.argv[1], 115200, bytesize=8, parity="N", stopbits=1, timeout=30)
print("tty", os.isatty(p.fileno()))
p.write(b"AT\r")
print(p.read_until(b"\n").strip())
p.write(b"hello\n")
print(p.read_until(b"\n").strip())
p.close()
' "$DEV"
	assert_success
	assert_line "tty True"
	assert_line "b'OK'"
	assert_line "b'HELLO'"
	run timeout "$GUARD" stty -F "$DEV" speed
	assert_output 115200
}

@test "serve --tty: stty -F sets the speed and reads it back; the command sees it in FUSD_TTY_STATE" {
	serve_tty
	# A pseudo-terminal keeps 8 bits without parity whatever it is asked (the kernel's pty driver).
	local format="cs7 parenb" want="bits=7 parity=e"
	[ "$ON" = ioctl ] || format="" want="bits=8 parity=n"
	run timeout "$GUARD" stty -F "$DEV" 19200 $format
	assert_success
	run timeout "$GUARD" stty -F "$DEV" speed
	assert_success
	assert_output 19200
	# On the pseudo-terminal fusdctl looks at the settings every 100 ms: ask until it shows.
	ask_state() {
		py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
os.write(fd, b"STATE\n")
got = b""
while not got.endswith(b"\r\n"):
    got += os.read(fd, 200)
print(got.decode().strip())
' "$DEV"
	}
	state_is() { ask_state | grep -q "^speed=19200 $want stop=1"; }
	wait_for "$GUARD" state_is || fail "the command saw: $(ask_state)"
	if [ "$ON" = ioctl ]; then
		run ask_state
		assert_output "speed=19200 bits=7 parity=e stop=1 dtr=0 rts=0 cts=0 dsr=0 cd=0 ri=0"
	else
		run ask_state
		assert_output "speed=19200 bits=8 parity=n stop=1" # a pty has no modem lines
	fi
}

@test "serve --tty: modem lines: the caller's DTR/RTS reach the command, the command's CD/CTS reach the caller" {
	serve_tty
	if [ "$ON" = pty ]; then
		run py '
import fcntl, sys, os
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
try:
    fcntl.ioctl(fd, 0x5415, bytes(4))  # TIOCMGET
    print("has lines")
except OSError as e:
    print("TIOCMGET", e.errno)
' "$DEV"
		assert_output "TIOCMGET 25"
		skip "a pseudo-terminal (FUSE) has no modem lines: TIOCMGET fails ENOTTY, as checked"
	fi
	run py '
import serial, sys
p = serial.Serial(sys.argv[1], 115200, timeout=30)
p.dtr = True
p.rts = False
p.write(b"STATE\n")
print(p.read_until(b"\n").strip().decode())
print("before", p.cd, p.cts, p.dsr, p.ri)
p.write(b"CD1\n")
print(p.read_until(b"\n").strip().decode())
' "$DEV"
	assert_success
	assert_line "speed=115200 bits=8 parity=n stop=1 dtr=1 rts=0 cts=0 dsr=0 cd=0 ri=0"
	assert_line "before False False False False"
	assert_line "RAISED"
	# The FIFO is read by fusdctl's loop: the lines change once it has read the line.
	lines() { py 'import serial, sys; p = serial.Serial(sys.argv[1], 115200); p.dtr = True; print(p.cd, p.cts, p.dsr)' "$DEV"; }
	wait_for "$GUARD" eval '[ "$(lines)" = "True True False" ]' || fail "lines: $(lines)"
}

@test "serve --tty: FIONREAD counts the command's unread output; TCFLSH drops it; tcdrain and TCSBRK return" {
	serve_tty
	run py '
import fcntl, os, struct, sys, termios, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
def unread():
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, bytes(4)))[0]
os.write(fd, b"MANY\n")
deadline = time.monotonic() + 50
while unread() < 100 and time.monotonic() < deadline:
    time.sleep(0.02)
print("unread", unread())
print(os.read(fd, 10))
print("unread", unread())
termios.tcflush(fd, termios.TCIFLUSH)
print("flushed", unread())
termios.tcdrain(fd)
termios.tcsendbreak(fd, 0)
os.write(fd, b"AT\n")
got = b""
while not got.endswith(b"\r\n"):
    got += os.read(fd, 100)
print(got)
' "$DEV"
	assert_success
	assert_line "unread 100"
	assert_line "b'xxxxxxxxxx'"
	assert_line "unread 90"
	assert_line "flushed 0"
	assert_line "b'OK\\r\\n'"
}

@test "serve --tty: TIOCEXCL gives EBUSY to a later open by a non-root caller; TIOCNXCL lets it in" {
	serve_tty
	run py '
import fcntl, os, subprocess, sys, termios
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
fcntl.ioctl(fd, termios.TIOCEXCL)
nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
probe = [sys.executable, "-c", "import os, sys\ntry:\n os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); print(\"opened\")\nexcept OSError as e:\n print(\"errno\", e.errno)", sys.argv[1]]
print("exclusive:", subprocess.run(nobody + probe, capture_output=True, text=True, timeout=50).stdout.strip())
fcntl.ioctl(fd, termios.TIOCNXCL)
print("shared:", subprocess.run(nobody + probe, capture_output=True, text=True, timeout=50).stdout.strip())
' "$DEV"
	assert_success
	assert_line "exclusive: errno 16"
	assert_line "shared: opened"
}

@test "serve --tty: a caller that is not root uses it (stty, pyserial) when the mode lets it" {
	"$PY" -c 'import serial' 2>/dev/null || fail "no pyserial for $PY"
	serve_tty
	run as_nobody timeout "$GUARD" stty -F "$DEV" 57600
	assert_success
	run as_nobody timeout "$GUARD" "$PY" -c '
import serial, sys
p = serial.Serial(sys.argv[1], 57600, timeout=30)
p.write(b"AT\n")
print(p.read_until(b"\n").strip())
' "$DEV"
	assert_success
	assert_output "b'OK'"
}

@test "serve --tty: picocom, driven through tmux, talks to the command" {
	command -v picocom >/dev/null || skip "no picocom (scripts/bootstrap installs it)"
	command -v tmux >/dev/null || skip "no tmux (scripts/bootstrap installs it)"
	serve_tty
	local sock=$T/tmux.sock
	tmux -S "$sock" new-session -d -x 120 -y 20 "picocom -b 115200 $DEV; sleep 600"
	pane() { tmux -S "$sock" capture-pane -p -t 0; }
	cleanup_tmux() { tmux -S "$sock" kill-server 2>/dev/null || true; }
	wait_for "$GUARD" eval 'pane | grep -q "Terminal ready"' || { cleanup_tmux; fail "picocom: $(pane)"; }
	tmux -S "$sock" send-keys -t 0 "hello picocom" Enter
	wait_for "$GUARD" eval 'pane | grep -q "HELLO PICOCOM"' || { cleanup_tmux; fail "no answer in the pane: $(pane)"; }
	tmux -S "$sock" send-keys -t 0 C-a C-x
	wait_for "$GUARD" eval 'pane | grep -q "Thanks for using picocom"' || { cleanup_tmux; fail "picocom did not quit: $(pane)"; }
	cleanup_tmux
}

@test "serve --tty: nothing left behind after SIGTERM or the command's death" {
	serve_tty
	local state_dir
	state_dir=$(dirname "$(tr '\0' '\n' <"/proc/$(pgrep -P "$SERVER_PID" | head -1)/environ" | sed -n 's/^FUSD_TTY_STATE=//p')")
	[ -d "$state_dir" ]
	kill -TERM "$SERVER_PID"
	wait_gone "$SERVER_PID" "$GUARD"
	[ ! -e "$DEV" ] && [ ! -L "$DEV" ]
	[ ! -e "$state_dir" ]

	serve_d "$DEV" --tty --shared -- sh -c 'read x; echo bye'
	local command_pid
	command_pid=$(pgrep -P "$SERVER_PID" | head -1)
	echo quit | timeout "$GUARD" tee "$DEV" >/dev/null
	wait_gone "$command_pid" "$GUARD"
	if [ "$ON" = pty ]; then # (as the first server was)
		# the pseudo-terminal's server ends with its command
		wait_gone "$SERVER_PID" "$GUARD"
	else
		# the kernel backend and CUSE keep the device (its end of file readable) until stopped
		run timeout "$GUARD" cat "$DEV"
		assert_output "bye"
		kill -TERM "$SERVER_PID"
		wait_gone "$SERVER_PID" "$GUARD"
	fi
	[ ! -e "$DEV" ] && [ ! -L "$DEV" ]
}

@test "serve --tty: without --shared, each open has its own command (ioctl backends); on FUSE a usage error" {
	if [ "$("$FUSDCTL" doctor --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["auto"])')" = fuse ] &&
		[ "$FUSD_BACKEND" = auto -o "$FUSD_BACKEND" = fuse ]; then
		run "$FUSDCTL" serve --backend "$FUSD_BACKEND" "$DEV" --tty -- cat
		assert_failure 2
		assert_output --partial "$DEV: --tty on the fuse backend is a pseudo-terminal, whose callers share one command: add --shared"
		[ ! -e "$DEV" ] && [ ! -L "$DEV" ]
		return
	fi
	serve_d "$DEV" --tty -- "$PY" -u "$T/modem.py"
	run py '
import os, sys, termios
a = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
b = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
print("tty", os.isatty(a), os.isatty(b))
os.write(a, b"one\n")
os.write(b, b"two\n")
print(os.read(b, 100), os.read(a, 100))
' "$DEV"
	assert_success
	assert_line "tty True True"
	assert_line "b'TWO\\r\\n' b'ONE\\r\\n'"
}

@test "serve --tty: fusdctl trace names the terminal ioctls and shows the line they leave" {
	serve_tty
	[ "$ON" = ioctl ] || skip "a pseudo-terminal (FUSE) is the kernel's pty driver's: fusdctl sees none of its calls"
	"$FUSDCTL" trace "$DEV" >"$T/trace" 2>"$T/trace.err" 3>&- &
	local tracer=$!
	track_pid "$tracer"
	traced() {
		timeout "$GUARD" stty -F "$DEV" 38400 >/dev/null 2>&1
		grep -q "TCSETS" "$T/trace"
	}
	wait_for "$GUARD" traced || fail "no TCSETS in the trace: $(cat "$T/trace" "$T/trace.err")"
	run grep -E " ioctl TCSETS[WF]? cmd=0x0000540[234] size=[0-9]+ \(speed=38400 bits=8 parity=n stop=1 dtr=0 rts=0 cts=0 dsr=0 cd=0 ri=0\) = 0 " "$T/trace"
	assert_success
	run grep -E " ioctl TCGETS cmd=0x00005401 size=[0-9]+ \(speed=" "$T/trace"
	assert_success
}

@test "serve --tty: fusdctl ls lists it (backend pty on FUSE), fusdctl rm stops it, and what a killed server leaves goes" {
	serve_tty
	backend_of() {
		"$FUSDCTL" ls --json | "$PY" -c '
import json, sys
print(" ".join(d["backend"] + ":" + d["state"] for d in json.load(sys.stdin) if d["device"] == sys.argv[1]))' "$DEV"
	}
	run backend_of
	if [ "$ON" = pty ]; then
		assert_output "pty:live"
		run "$FUSDCTL" ls
		assert_line --regexp "^$DEV +pty +$SERVER_PID +live "
	else
		assert_output --regexp "^(kernel|cuse):live$"
	fi
	run timeout "$GUARD" "$FUSDCTL" rm "$DEV"
	assert_success
	wait_gone "$SERVER_PID" "$GUARD"
	[ ! -e "$DEV" ] && [ ! -L "$DEV" ]
	run backend_of
	assert_output ""

	serve_tty
	local state_dir
	state_dir=$(dirname "$(tr '\0' '\n' <"/proc/$(pgrep -P "$SERVER_PID" | head -1)/environ" | sed -n 's/^FUSD_TTY_STATE=//p')")
	[ -d "$state_dir" ]
	kill -KILL "$SERVER_PID"
	wait_gone "$SERVER_PID" "$GUARD"
	if [ "$ON" != pty ]; then
		# fusd-cleaner removes the node and the server's scratch directory, no fusd command run
		wait_for "$GUARD" not test -e "$state_dir"
		wait_for "$GUARD" not test -e "$DEV"
		return 0
	fi
	# no fusd device, so no fusd-cleaner: the next ls removes them
	[ -L "$DEV" ]
	[ -d "$state_dir" ]
	run backend_of
	assert_output "pty:dead"
	[ ! -e "$DEV" ] && [ ! -L "$DEV" ]
	[ ! -e "$state_dir" ]
	run backend_of
	assert_output ""
}

@test "serve --tty --restart: a new command answers after the first one exits" {
	serve_d "$DEV" --tty --shared --restart --restart-delay 0.1 --mode 0666 -- sh -c 'echo "pid $$"; read x'
	run py '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
def line():
    got = b""
    while not got.endswith(b"\n"):
        got += os.read(fd, 1)
    return got.decode().strip()
first = line()
os.write(fd, b"bye\n")
second = line()
print(first != second, first.startswith("pid "), second.startswith("pid "))
' "$DEV"
	assert_success
	assert_output "True True True"
	alive "$SERVER_PID"
}
