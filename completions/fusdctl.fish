# SPDX-License-Identifier: MIT
# fish completion for fusdctl: subcommands, options, live devices for rm and trace (from
# `fusdctl ls -q`), and the command line after `serve ... --`.

function __fusdctl_devices
    set -l prog (commandline -opc)[1]
    command $prog ls -q 2>/dev/null
end

function __fusdctl_after_dashdash
    contains -- -- (commandline -opc)
end

# Complete what follows `--` as a command line of its own.
function __fusdctl_command_line
    set -l tokens (commandline -opc)
    set -l i (contains -i -- -- $tokens)
    set -l rest $tokens[(math $i + 1)..-1]
    if test (count $rest) -eq 0
        __fish_complete_command
    else
        complete -C (string join -- ' ' (string escape -- $rest) (commandline -ct))
    end
end

set -l commands serve ls trace rm doctor record replay run
complete -c fusdctl -f
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -l version -d 'Print the version and exit'
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -s h -l help -d 'Print help and exit'
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -a serve -d 'Make a device whose reads and writes are piped to a command'
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -a ls -d 'List every fusd device on this machine'
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -a trace -d 'Stream the system calls made on devices'
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -a rm -d 'Unregister devices'
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -a doctor -d 'Show which backends this machine can use'
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -a record -d 'Record every call on a real device through a pass-through device'
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -a replay -d 'Serve a recording as a device'
complete -c fusdctl -n "not __fish_seen_subcommand_from $commands" -a run -d 'Run a program with fake devices in a private /dev'

# serve
set -l serve "__fish_seen_subcommand_from serve; and not __fusdctl_after_dashdash"
complete -c fusdctl -n $serve -l shared -d 'One command shared by every open file'
complete -c fusdctl -n $serve -l tty -d 'Make the device a terminal (a pseudo-terminal on fuse)'
complete -c fusdctl -n $serve -l restart -d 'With --shared or --protocol: restart the command when it exits'
complete -c fusdctl -n $serve -l restart-delay -x -d 'Seconds before a restart'
complete -c fusdctl -n $serve -l grace -x -d 'Seconds between close, SIGTERM and SIGKILL'
complete -c fusdctl -n $serve -s m -l mode -x -a '0600 0640 0644 0660 0664 0666' -d 'Permissions of the node'
complete -c fusdctl -n $serve -s o -l owner -x -a '(__fish_complete_users)' -d 'Owner of the node'
complete -c fusdctl -n $serve -s g -l group -x -a '(__fish_complete_groups)' -d 'Group of the node'
complete -c fusdctl -n $serve -s b -l backend -x -a 'auto kernel cuse fuse' -d 'Backend'
complete -c fusdctl -n $serve -s d -l detach -d 'Run in the background; print the PID once ready'
complete -c fusdctl -n $serve -s p -l pidfile -r -F -d 'Write the PID to FILE once ready'
complete -c fusdctl -n $serve -s l -l log -r -F -d 'Append the command stderr to FILE'
complete -c fusdctl -n $serve -l protocol -x -a json -d 'One command answers every call as JSON lines'
complete -c fusdctl -n $serve -l handler -r -F -d 'Run SCRIPT once per call'
complete -c fusdctl -n $serve -s h -l help -d 'Print help and exit'
complete -c fusdctl -n "__fish_seen_subcommand_from serve; and __fusdctl_after_dashdash" -x -a '(__fusdctl_command_line)'

# ls, doctor
complete -c fusdctl -n '__fish_seen_subcommand_from ls' -s j -l json -d 'Print a JSON array'
complete -c fusdctl -n '__fish_seen_subcommand_from ls' -s q -l quiet -d 'Print only the paths of live devices'
complete -c fusdctl -n '__fish_seen_subcommand_from ls doctor' -s h -l help -d 'Print help and exit'
complete -c fusdctl -n '__fish_seen_subcommand_from doctor' -s j -l json -d 'Print a JSON object'

# trace, rm
complete -c fusdctl -n '__fish_seen_subcommand_from trace rm' -x -a '(__fusdctl_devices)' -d 'fusd device'
complete -c fusdctl -n '__fish_seen_subcommand_from trace' -s j -l json -d 'One JSON object per line'
complete -c fusdctl -n '__fish_seen_subcommand_from trace' -s n -l count -x -d 'Stop after COUNT calls'
complete -c fusdctl -n '__fish_seen_subcommand_from rm' -s f -l force -d 'Remove even when the server is hung or stopped'
complete -c fusdctl -n '__fish_seen_subcommand_from trace rm' -s h -l help -d 'Print help and exit'

# record, replay
complete -c fusdctl -n '__fish_seen_subcommand_from record replay' -F -d 'Device or recording'
complete -c fusdctl -n '__fish_seen_subcommand_from record replay' -l as -r -d 'The device to create'
complete -c fusdctl -n '__fish_seen_subcommand_from record' -l in-place -d 'Take the real device path; put the node back afterwards'
complete -c fusdctl -n '__fish_seen_subcommand_from record' -s o -l output -r -F -d 'The recording to write'
complete -c fusdctl -n '__fish_seen_subcommand_from replay' -l fast -d 'Answer reads at once'
complete -c fusdctl -n '__fish_seen_subcommand_from replay' -l loose -d 'Report departures but carry on'
complete -c fusdctl -n '__fish_seen_subcommand_from record replay' -s m -l mode -x -a '0600 0640 0644 0660 0664 0666' -d 'Permissions of the node'
complete -c fusdctl -n '__fish_seen_subcommand_from record replay' -s b -l backend -x -a 'auto kernel cuse fuse' -d 'Backend'
complete -c fusdctl -n '__fish_seen_subcommand_from record replay' -s h -l help -d 'Print help and exit'

# run
set -l run "__fish_seen_subcommand_from run; and not __fusdctl_after_dashdash"
complete -c fusdctl -n $run -l serve -x -a '/dev/' -d 'PATH=COMMAND: a device shared by every open file'
complete -c fusdctl -n $run -l tty -x -a '/dev/' -d 'PATH=COMMAND: a terminal'
complete -c fusdctl -n $run -l replay -x -a '/dev/' -d 'PATH=FILE: replay a recording'
complete -c fusdctl -n $run -l drivers -d 'PROGRAM keeps CAP_SYS_ADMIN in the run namespace (libfusd drivers)'
complete -c fusdctl -n $run -a -- -d 'Then the program and its arguments'
complete -c fusdctl -n $run -s h -l help -d 'Print help and exit'
complete -c fusdctl -n "__fish_seen_subcommand_from run; and __fusdctl_after_dashdash" -x -a '(__fusdctl_command_line)'
