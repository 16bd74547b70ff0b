#!/bin/bash
# SPDX-License-Identifier: MIT
#
# sensor.sh - a fake temperature sensor as a fusd handler script
#
#   fusdctl serve /dev/sensor0 --handler examples/handler/sensor.sh
#
# fusdctl runs it once per call (fusdctl-serve(1), HANDLER SCRIPTS):
#   sensor.sh open | read SIZE | write SIZE | ioctl NUMBER SIZE | release
# Each open file reads one line, the temperature ("23.5"), then end of file; writing "celsius" or
# "fahrenheit" chooses the unit for that open file (anything else: EINVAL); one ioctl,
# SENSOR_GET_MILLIDEGREES = _IOR('S', 1, int32_t), gives the temperature in thousandths of a
# degree Celsius. Every other ioctl, and release, are left to fusdctl's defaults (exit 3).
# State between the calls of one open file lives in $FUSD_STATE_DIR, removed at release.
set -eu

millidegrees=23500
SENSOR_GET_MILLIDEGREES=0x80045301

case $1 in
open)
	echo celsius >"$FUSD_STATE_DIR/unit"
	;;
read)
	[ ! -e "$FUSD_STATE_DIR/read" ] || exit 0 # one line per open, then end of file
	touch "$FUSD_STATE_DIR/read"
	if [ "$(cat "$FUSD_STATE_DIR/unit")" = fahrenheit ]; then
		line="$((millidegrees * 9 / 5000 + 32))"
	else
		line="$((millidegrees / 1000)).$((millidegrees % 1000 / 100))"
	fi
	[ "${#line}" -lt "$2" ] || { echo EINVAL >&2; exit 1; } # the reader's buffer is too small
	echo "$line"
	;;
write)
	unit=$(cat)
	case $unit in
	celsius | fahrenheit) echo "$unit" >"$FUSD_STATE_DIR/unit" ;;
	*) echo EINVAL >&2; exit 1 ;;
	esac
	;;
ioctl)
	[ "$2" = "$SENSOR_GET_MILLIDEGREES" ] || exit 3
	# the int32 in the caller's byte order (little-endian here)
	printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((millidegrees & 255)) $((millidegrees >> 8 & 255)) \
		$((millidegrees >> 16 & 255)) $((millidegrees >> 24 & 255)))"
	;;
*)
	exit 3
	;;
esac
