# bash completion for fusdctl                                      -*- shell-script -*-
# SPDX-License-Identifier: MIT
#
# Subcommands, their options, option values, live device names for rm and trace (from
# `fusdctl ls -q`, nested names too), the directories below /dev for a new device, and the
# command line after `serve ... --` and `run ... --`. Works with or without the bash-completion package (which,
# when present, completes the command's own arguments).

_fusdctl_devices() {
	local prog=$1
	"$prog" ls -q 2>/dev/null
}

_fusdctl() {
	local cur prev prog
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	prog=${COMP_WORDS[0]}
	if [[ $prog != */* ]] && ! type -P "$prog" >/dev/null 2>&1; then
		prog=fusdctl
	fi
	COMPREPLY=()

	local commands="serve ls trace rm doctor record replay run"
	local serve_opts="--shared --tty --restart --restart-delay --grace -m --mode -o --owner -g --group
		-b --backend -d --detach -p --pidfile -l --log --protocol --handler -h --help"
	local ls_opts="-j --json -q --quiet -h --help"
	local trace_opts="-j --json -n --count -h --help"
	local rm_opts="-f --force -h --help"
	local doctor_opts="-j --json -h --help"
	local record_opts="--as --in-place -o --output -m --mode -b --backend -h --help"
	local replay_opts="--as --fast --loose -m --mode -b --backend -h --help"
	local run_opts="--serve --tty --replay --drivers -h --help"

	# The subcommand, its first positional argument, and where `--` is.
	local i word sub="" subidx=0 dashdash=0 npos=0
	for ((i = 1; i < COMP_CWORD; i++)); do
		word=${COMP_WORDS[i]}
		if [[ -z $sub ]]; then
			case $word in
			-*) ;;
			*) sub=$word subidx=$i ;;
			esac
			continue
		fi
		if [[ $word == -- ]]; then
			dashdash=$i
			break
		fi
		if [[ $sub == run ]]; then
			case $word in
			--serve | --tty | --replay) ((i++)) ;; # PATH=COMMAND, PATH=FILE
			esac
			continue
		fi
		case $word in
		-m | --mode | -o | --owner | -g | --group | -b | --backend | -p | --pidfile | -l | --log | \
			--grace | --restart-delay | -n | --count | --protocol | --handler | --as | --output)
			((i++)) ;; # skips the option's value
		-*) ;;
		*) ((npos++)) ;;
		esac
	done

	if [[ -z $sub ]]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--help --version" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
		fi
		return 0
	fi

	case $sub in
	serve | run)
		if ((dashdash > 0)); then
			# The command and its arguments.
			if ((COMP_CWORD == dashdash + 1)); then
				mapfile -t COMPREPLY < <(compgen -c -- "$cur" | sort -u)
			elif declare -F _command_offset >/dev/null 2>&1; then
				_command_offset $((dashdash + 1))
			else
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			fi
			return 0
		fi
		if [[ $sub == run ]]; then
			case $prev in
			--serve | --tty | --replay)
				# PATH= first; after --replay's '=', the recording
				if [[ $prev == --replay && $cur == *=* ]]; then
					local file
					mapfile -t COMPREPLY < <(compgen -f -- "${cur#*=}")
					for file in "${!COMPREPLY[@]}"; do COMPREPLY[file]=${cur%%=*}=${COMPREPLY[file]}; done
				elif [[ $cur == /dev/?* ]]; then
					mapfile -t COMPREPLY < <(compgen -d -S / -- "$cur")
					compopt -o nospace 2>/dev/null
				else
					mapfile -t COMPREPLY < <(compgen -W "/dev/" -- "$cur")
					compopt -o nospace 2>/dev/null
				fi
				return 0
				;;
			esac
			mapfile -t COMPREPLY < <(compgen -W "-- $run_opts" -- "$cur")
			return 0
		fi
		case $prev in
		-m | --mode)
			mapfile -t COMPREPLY < <(compgen -W "0600 0640 0644 0660 0664 0666" -- "$cur")
			return 0
			;;
		-o | --owner)
			mapfile -t COMPREPLY < <(compgen -u -- "$cur")
			return 0
			;;
		-g | --group)
			mapfile -t COMPREPLY < <(compgen -g -- "$cur")
			return 0
			;;
		-b | --backend)
			mapfile -t COMPREPLY < <(compgen -W "auto kernel cuse fuse" -- "$cur")
			return 0
			;;
		--protocol)
			mapfile -t COMPREPLY < <(compgen -W "json" -- "$cur")
			return 0
			;;
		-p | --pidfile | -l | --log | --handler)
			mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			return 0
			;;
		--grace | --restart-delay)
			return 0
			;;
		esac
		if [[ $cur == -* ]]; then
			# `--` itself once the device is there
			if ((npos >= 1)); then
				mapfile -t COMPREPLY < <(compgen -W "-- $serve_opts" -- "$cur")
			else
				mapfile -t COMPREPLY < <(compgen -W "$serve_opts" -- "$cur")
			fi
		elif ((npos == 0)); then
			# a new device: the /dev/ prefix, then the directories below it (the parents of a
			# nested name, /dev/input/)
			if [[ $cur == /dev/?* ]]; then
				mapfile -t COMPREPLY < <(compgen -d -S / -- "$cur")
			else
				mapfile -t COMPREPLY < <(compgen -W "/dev/" -- "$cur")
			fi
			[[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == */ ]] && compopt -o nospace 2>/dev/null
		else
			COMPREPLY=(--)
		fi
		;;
	ls)
		mapfile -t COMPREPLY < <(compgen -W "$ls_opts" -- "$cur")
		;;
	doctor)
		mapfile -t COMPREPLY < <(compgen -W "$doctor_opts" -- "$cur")
		;;
	record | replay)
		case $prev in
		-m | --mode)
			mapfile -t COMPREPLY < <(compgen -W "0600 0640 0644 0660 0664 0666" -- "$cur")
			return 0
			;;
		-b | --backend)
			mapfile -t COMPREPLY < <(compgen -W "auto kernel cuse fuse" -- "$cur")
			return 0
			;;
		--as)
			mapfile -t COMPREPLY < <(compgen -W "/dev/" -- "$cur")
			[[ $cur == /dev/?* ]] && mapfile -t COMPREPLY < <(compgen -d -S / -- "$cur")
			compopt -o nospace 2>/dev/null
			return 0
			;;
		esac
		if [[ $cur == -* ]]; then
			local opts=$record_opts
			[[ $sub == replay ]] && opts=$replay_opts
			mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
		else
			# record: the real device (or, after -o, the recording); replay: the recording
			mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		fi
		;;
	trace | rm)
		if [[ $sub == trace && ($prev == -n || $prev == --count) ]]; then
			return 0
		fi
		if [[ $cur == -* ]]; then
			local opts=$trace_opts
			[[ $sub == rm ]] && opts=$rm_opts
			mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
		else
			local devices
			devices=$(_fusdctl_devices "$prog")
			mapfile -t COMPREPLY < <(compgen -W "$devices" -- "$cur")
		fi
		;;
	esac
	return 0
}

complete -F _fusdctl fusdctl
