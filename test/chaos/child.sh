#!/usr/bin/env bash
# child.sh: the command the crash and partition tests (test/chaos_test.go,
# test/netns_test.go) run under tnl-do. It plays a writer that must never
# overlap another writer of the same lock name, and leaves a trail that the
# tests replay to prove it did not.
#
# usage: child.sh LOG ID WORK_MS STOP_MS
#
# It appends one line per event to LOG:
#   start NAME TOKEN ID PID TIME   it began: it holds the lock now
#   work  NAME TOKEN ID PID TIME   every 10 ms while it works
#   sigterm NAME TOKEN ID PID TIME SIGTERM came: it cleans up for STOP_MS,
#                                  still writing "work" lines
#   end   NAME TOKEN ID PID TIME   it is done: WORK_MS of work are over
#   term  NAME TOKEN ID PID TIME   it is done: the clean-up after SIGTERM is over
# NAME and TOKEN are $TNL_LOCK and $TNL_FENCE, TIME is $EPOCHREALTIME (set
# LC_ALL=C). Each line is one write(2) on an O_APPEND descriptor, so lines of
# concurrent writers never mix and their order in LOG is the order in which
# they were written: a line of an older grant after the first line of a newer
# one is an overlap. It exits 0 when the work is done, 143 after SIGTERM.
set -u
log=$1 id=$2 work_ms=$3 stop_ms=$4

exec {out}>>"$log"
rec() {
	printf '%s %s %s %s %s %s\n' "$1" "${TNL_LOCK:-?}" "${TNL_FENCE:-0}" "$id" "$$" "$EPOCHREALTIME" >&"$out"
}
# clock sets $now to the time in milliseconds, without a subshell.
clock() {
	local t=${EPOCHREALTIME/./}
	now=$((t / 1000))
}
# tick waits 10 ms without forking: a read with a timeout on a pipe that
# nobody writes to. A trapped SIGTERM ends it early.
exec {never}<> <(:)
tick() { read -r -t 0.01 -u "$never" _ || true; }

stopping=0
trap 'stopping=1; rec sigterm' TERM
rec start
clock
until_ms=$((now + work_ms))
while ((stopping == 0 && now < until_ms)); do
	tick
	rec work
	clock
done
if ((stopping)); then
	# A clean-up that takes a while, and writes while it does: the kind of
	# command whose writes would overlap the next holder's if tnl-do did not
	# stop it before the lock could go to someone else.
	clock
	until_ms=$((now + stop_ms))
	while ((now < until_ms)); do
		tick
		rec work
		clock
	done
	rec term
	exit 143
fi
rec end
exit 0
