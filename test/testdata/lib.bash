# lib.bash: helpers for the bash choreography inside test/testdata/*.txtar.
# Source it: . "$TNL_TEST_LIB". Nothing here sleeps to synchronise: every
# wait is for a line in a file or a process state, with a deadline.

# A sleep that forks nothing, for polling loops.
exec {__lib_sleep_fd}<> <(:)
__lib_nap() { read -r -t 0.005 -u "$__lib_sleep_fd" || true; }

# now_ms: milliseconds on the wall clock.
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# waitfor FILE REGEX [SECONDS]: wait until a line of FILE matches REGEX.
waitfor() {
	local f=$1 re=$2 end=$(($(now_ms) + ${3:-10} * 1000))
	until [[ -f $f ]] && grep -Eq -- "$re" "$f"; do
		if (($(now_ms) > end)); then
			echo "waitfor: $f did not match /$re/ within ${3:-10}s; it holds: $(cat "$f" 2>/dev/null)" >&2
			return 1
		fi
		__lib_nap
	done
}

# gone PID: true once PID has ended (a zombie nobody reaped counts as ended).
gone() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[[ ${stat%% *} == Z ]]
}

# waitgone PID SECONDS: wait until PID has ended; fail after SECONDS.
waitgone() {
	local end=$(($(now_ms) + ${2:-10} * 1000))
	until gone "$1"; do
		if (($(now_ms) > end)); then
			echo "waitgone: process $1 still running after ${2:-10}s" >&2
			return 1
		fi
		__lib_nap
	done
}

# waitexit PID [SECONDS]: wait for PID, a child of this shell, to end (at
# most SECONDS, default 5) and return its status. One still running then is
# a bug of the program under test: a line "BUG: ..." on stdout says so, it
# is killed, and the script goes on to fail in seconds, where a plain wait
# would hang until go test's own timeout.
waitexit() {
	if ! waitgone "$1" "${2:-5}" 2> /dev/null; then
		echo "BUG: $(ps -o args= -p "$1") still running after ${2:-5}s; killed"
		kill -KILL "$1" 2> /dev/null
	fi
	wait "$1"
}

# waiters NAME: how many wait for NAME, from tnl-stats --json.
waiters() {
	tnl-stats --json "$1" | tr -d ' \n' | grep -o '"waiters":\[[^]]*\]' | grep -o '"client_id"' | wc -l
}

# waitwaiters NAME N: wait until N clients wait for NAME.
waitwaiters() {
	local end=$(($(now_ms) + 10000))
	until [[ $(waiters "$1") -eq $2 ]]; do
		if (($(now_ms) > end)); then
			echo "waitwaiters: $1 never had $2 waiters" >&2
			return 1
		fi
		__lib_nap
	done
}

# waitlines FILE N: wait until FILE has N lines (at least), deadline 10s.
waitlines() {
	local end=$(($(now_ms) + 10000)) n
	while :; do
		n=$(wc -l < "$1" 2>/dev/null || echo 0)
		((n >= $2)) && return 0
		if (($(now_ms) > end)); then
			echo "waitlines: $1 has $n lines, not $2, after 10s: $(cat "$1" 2>/dev/null)" >&2
			return 1
		fi
		__lib_nap
	done
}

# waitstate PID REGEX: wait until the state letter of PID (ps stat) matches.
waitstate() {
	local end=$(($(now_ms) + 10000))
	until [[ $(ps -o stat= -p "$1") =~ $2 ]]; do
		if (($(now_ms) > end)); then
			echo "waitstate: $1 never in state /$2/: $(ps -o stat= -p "$1")" >&2
			return 1
		fi
		__lib_nap
	done
}
