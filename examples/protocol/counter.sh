#!/bin/bash
# SPDX-License-Identifier: MIT
#
# counter.sh - a fusd device driver in bash and jq through `fusdctl serve --protocol json`
# (the protocol: fusd-protocol(7)).
#
#   fusdctl serve /dev/counter --protocol json -- examples/protocol/counter.sh
#
# Each open file reads one line, "count N" (N counts the reads of the whole device), then end of
# file; writing "reset" sets N back to 0; any other write fails EINVAL; ioctls get ENOTTY.
set -euo pipefail

count=0
declare -A done_reading # file number -> 1 once its line was read

while IFS= read -r line; do
	# One jq per call: the fields this driver needs, tab-separated.
	IFS=$'\t' read -r op id file data < <(jq -r '[.op, .id, .file, (.data // "")] | @tsv' <<<"$line")
	case $op in
	open)
		printf '{"id":%s}\n' "$id"
		;;
	read)
		if [ -n "${done_reading[$file]:-}" ]; then
			printf '{"id":%s,"text":""}\n' "$id" # end of file
		else
			count=$((count + 1))
			done_reading[$file]=1
			printf '{"id":%s,"text":"count %s\\n"}\n' "$id" "$count"
		fi
		;;
	write)
		if [ "$(base64 -d <<<"$data")" = reset ]; then
			count=0
			printf '{"id":%s}\n' "$id"
		else
			printf '{"id":%s,"error":"EINVAL"}\n' "$id"
		fi
		;;
	ioctl)
		printf '{"id":%s,"error":"ENOTTY"}\n' "$id"
		;;
	release)
		unset "done_reading[$file]"
		;;
	esac
done
