# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2034 # SRV_*, CHILD_* are for the scripts that source this
#
# testlib.sh — sourced by every test/shell/*.bash script (and by the child
# scripts they start). test/shell_test.go runs each script twice, with
# TNL_TEST_MODE=strict (set -euo pipefail) and TNL_TEST_MODE=plain (bash's
# defaults), always as `bash --norc --noprofile`, with:
#
#   PATH            the freshly built tnl-server, tnl-lock and tnl-do first
#   TNL_SERVER      a tnl-server of this script alone, on 127.0.0.1:0
#   TNL_TEST_SERVER_PID  its pid (a test may kill it)
#   TNL_SH          shell/tnl.sh, the library under test
#   TNL_SH_TESTLIB  this file
#   TNL_TEST_TMP    an empty directory of this script alone
#
# A script's expected standard output is its "#> " lines, in order; "# exit: N"
# is its expected status (default 0); each "# stderr: REGEX" (Go syntax; use
# (?m) for ^ and $ at line ends) must match its standard error. Nothing here sleeps to synchronise: it waits on
# lines from fifos, on exit statuses, and on tnl's own -w deadlines.

if [[ ${TNL_TEST_MODE-strict} == strict ]]; then
  set -euo pipefail
fi
# shellcheck source=../../shell/tnl.sh
source "$TNL_SH"
T=$TNL_TEST_TMP

# st COMMAND...: runs COMMAND and prints "rc=STATUS", also under set -e.
st() {
  local rc=0
  "$@" || rc=$?
  echo "rc=$rc"
}

# hold NAME [TNL-LOCK-FLAG...]: another client, a plain tnl-lock process, takes
# NAME; returns once it printed its granted line, or with its status when it
# was refused. unhold NAME lets it go and returns once it has released.
declare -A HOLD_W=() HOLD_PID=()
hold() {
  local name=$1 d line w r rc=0
  shift
  d=$(mktemp -d "$T/hold.XXXXXX")
  mkfifo "$d/i" "$d/o"
  tnl-lock "$@" "$name" <"$d/i" >"$d/o" &
  HOLD_PID[$name]=$!
  exec {w}>"$d/i" {r}<"$d/o"
  if IFS= read -r line <&"$r"; then
    exec {r}<&-
    HOLD_W[$name]=$w
    return 0
  fi
  exec {r}<&- {w}>&-
  wait "${HOLD_PID[$name]}" || rc=$?
  unset -v 'HOLD_PID[$name]'
  return "$rc"
}
unhold() {
  local name=$1 w=${HOLD_W[$1]} rc=0
  # SIGTERM, not only end of input: processes started since hold (other
  # holders, children) have inherited a copy of its stdin pipe.
  kill -TERM "${HOLD_PID[$name]}" 2>/dev/null || :
  exec {w}>&-
  wait "${HOLD_PID[$name]}" || rc=$?
  unset -v 'HOLD_W[$name]' 'HOLD_PID[$name]'
  return "$rc"
}

# probe NAME [TNL-LOCK-FLAG...]: can another client take NAME (within -w, if
# given)? Prints "NAME: free" (it took and released it) or "NAME: busy rc=N".
probe() {
  local name=$1 rc=0
  hold "$@" 2>/dev/null || rc=$?
  if ((rc == 0)); then
    unhold "$name"
    echo "$name: free"
  else
    echo "$name: busy rc=$rc"
  fi
}

# start_server: starts one more tnl-server on 127.0.0.1:0; sets SRV_PID and
# SRV_ADDR once it has logged its address. The test's EXIT trap stops it.
# start_server_with FLAG...: the same, with these tnl-server flags.
SRV_PIDS=()
stop_servers() {
  if ((${#SRV_PIDS[@]} > 0)); then
    kill "${SRV_PIDS[@]}" 2>/dev/null || :
  fi
}
if [[ -z ${TNL_TEST_CHILD-} ]]; then
  trap stop_servers EXIT
fi
start_server() {
  local d line fd
  d=$(mktemp -d "$T/srv.XXXXXX")
  mkfifo "$d/err"
  tnl-server --listen 127.0.0.1:0 ${SRV_FLAGS[@]+"${SRV_FLAGS[@]}"} 2>"$d/err" &
  SRV_PID=$!
  SRV_PIDS+=("$SRV_PID")
  exec {fd}<"$d/err"
  SRV_ADDR=
  while IFS= read -r line <&"$fd"; do
    if [[ $line =~ addr=([^[:space:]\"]+) ]]; then
      SRV_ADDR=${BASH_REMATCH[1]}
      break
    fi
  done
  # Keep reading its log, so that it never blocks on a full pipe.
  cat <&"$fd" >"$d/log" &
  exec {fd}<&-
  [[ -n $SRV_ADDR ]]
}
start_server_with() {
  local -a SRV_FLAGS=("$@")
  start_server
}

# block: waits for ever, or until a signal ends the shell or its trap exits;
# a trap that returns lets it wait on. Not one blocking read: bash 5.2 runs
# the trap of a signal that lands between its check for signals and the
# read(2) itself only when that read returns (lib/sh/zread.c), so the read
# has a timeout and goes round again. The timeout bounds how late such a
# trap runs: 50ms, well inside lost.bash's 300ms --kill-after. No command substitution either: in a
# stress run of traps.bash here (bash 5.2.15), a TERM trap that landed during
# f=$(mktemp ...) failed with "unexpected EOF while looking for matching )".
# Nor any other process: the fifo it reads (nobody writes it) is made here,
# when this file is sourced, before any lock is taken. A mkfifo or rm of its
# own, still running when a lock is lost under load, had the lock's pipe
# open too, and tnl.sh rightly named "1 process it started" (lost.bash).
mkfifo "$T/block.$BASHPID"
exec {BLOCK_FD}<>"$T/block.$BASHPID"
rm -f "$T/block.$BASHPID"
block() {
  while :; do
    read -r -t 0.05 -u "$BLOCK_FD" _ || :
  done
}

# child NAME <<'EOF' ... EOF: writes a child script to $T/NAME.bash (it starts
# by sourcing this file, like the test itself).
child() {
  {
    # shellcheck disable=SC2016 # expanded by the child
    echo 'TNL_TEST_CHILD=1 source "$TNL_SH_TESTLIB"'
    cat
  } >"$T/$1.bash"
}

# child_raw NAME <<'EOF' ... EOF: the same, without the source line.
child_raw() {
  cat >"$T/$1.bash"
}

# spawn NAME [ARG...]: runs child script NAME in the background with its
# stdout on a fifo; sets CHILD_PID and CHILD_OUT (a read fd on that fifo).
spawn() {
  local name=$1
  shift
  rm -f "$T/$name.out"
  mkfifo "$T/$name.out"
  bash --norc --noprofile "$T/$name.bash" "$@" >"$T/$name.out" &
  CHILD_PID=$!
  exec {CHILD_OUT}<"$T/$name.out"
}

# spawn2 NAME [ARG...]: spawn, with the child's stderr on a fifo too, read
# through CHILD_ERR.
spawn2() {
  local name=$1
  shift
  rm -f "$T/$name.out" "$T/$name.err"
  mkfifo "$T/$name.out" "$T/$name.err"
  bash --norc --noprofile "$T/$name.bash" "$@" >"$T/$name.out" 2>"$T/$name.err" &
  CHILD_PID=$!
  exec {CHILD_OUT}<"$T/$name.out" {CHILD_ERR}<"$T/$name.err"
}

# wait_for_line FD REGEX: reads lines from FD until one matches REGEX (the
# others go to stderr); prints "saw: REGEX", or "<eof>".
wait_for_line() {
  local line
  while IFS= read -r line <&"$1"; do
    if [[ $line =~ $2 ]]; then
      echo "saw: $2"
      return 0
    fi
    echo "$line" >&2
  done
  echo "<eof>"
}

# expect_tnl_sh_line FD: reads lines from FD up to the first one from tnl.sh
# and prints it, with the pid in it replaced by PID; other lines (tnl-lock's
# own) go to stderr.
expect_tnl_sh_line() {
  local line
  while IFS= read -r line <&"$1"; do
    if [[ $line == tnl.sh:* ]]; then
      echo "${line//$CHILD_PID/PID}"
      return 0
    fi
    echo "$line" >&2
  done
  echo "<eof>"
}

# expect_line FD: reads one line from FD and prints it (the test's "#>" lines
# then say what the child must have said).
expect_line() {
  local line
  if IFS= read -r line <&"$1"; then
    echo "$line"
  else
    echo "<eof>"
  fi
}
