# shellcheck shell=bash
#
# tnl.sh — network locks for bash scripts, on top of tnl-lock and tnl-do.
#
# Usage: source it (bash >= 4.2), then take locks around functions, builtins
# or whole stretches of the script:
#
#   source /usr/local/share/tnl/tnl.sh      # $PREFIX/share/tnl/tnl.sh
#
#   with_lock [FLAGS] NAME COMMAND [ARG...]  run COMMAND while holding NAME
#   tnl_acquire [FLAGS] NAME                 take NAME and keep it
#   tnl_release [NAME...]                    give NAME back (no NAME: all)
#   tnl_held [NAME...]                       list held names / test for them
#   tnl_fence NAME                           print the fencing token of NAME
#
# Leases: locks held by a secret id, not by this shell, that outlive the
# script (for cron steps and CI jobs; see "leases" below):
#
#   tnl_lease_acquire [FLAGS] NAME TTL       take NAME for TTL; exports
#                                            TNL_LEASE, TNL_FENCE, TNL_LOCK
#   tnl_lease_renew [--ttl D] [ID]           make it last D (or TTL) more
#   tnl_lease_release [ID]                   give it back (any host)
#   tnl_lease_held [ID]                      0 held, 122 not
#
# FLAGS are tnl-do's: -s/--server HOST:PORT, --host, --port, --client-id ID,
# -w/--wait DURATION, --shared, --limit N, -E/--conflict-exit-code N,
# --max-hold DURATION, -v/--verbose, --on-lost term|kill|ignore,
# --kill-after DURATION; with_lock also takes tnl-do's -c/--shell, --retry
# and --retry-wait for an external COMMAND. tnl_lease_acquire takes them but
# --on-lost and --kill-after; ID is $TNL_LEASE by default, and the other
# lease functions take the server's flags only (and --ttl, to renew). The
# server is found as tnl-lock finds it: --server, $TNL_SERVER,
# $TCPNETLOCK_HOST/$TCPNETLOCK_PORT, 127.0.0.1:7654.
#
# Exit statuses (with_lock, tnl_acquire, and the lease functions: 0, 123,
# 122 for a lease that is gone, 125, 2), as tnl-do's:
#   COMMAND's own   with_lock: the command ran (under set -e a failing command
#                   ends the script there, as it would without with_lock)
#   123 (or -E N)   not granted: held by someone else, or the wait ran out
#   122             the lock was lost while held
#   125             could not reach or talk to the server
#   2               usage error (bad flag, bad name, NAME already held here)
#   126, 127, 128+N an external COMMAND could not be run, was not found, or
#                   was killed by signal N (tnl-do's statuses)
#
# How it works, and why:
# - Every held lock has a background holder: a small subshell of this shell
#   that runs `tnl-lock NAME` with its standard input on a pipe whose only
#   writer is this shell. The holder is started in its own process group, so
#   that Ctrl-C, Ctrl-Z or a `kill -- -PGID` aimed at the script's job never
#   reach it: the lock is tied to the life of the shell, not to signals.
#   `wait`, `jobs` and `$!` of the script never see it.
# - Release on exit needs no trap. When the shell ends — exit, set -e, any
#   signal, kill -9 — the kernel closes its end of the pipe, tnl-lock reads end
#   of file and releases. tnl.sh installs no EXIT, INT or TERM trap, so it
#   cannot clobber the script's traps, and a trap the script sets later cannot
#   switch the release off. The locks go after the script's own EXIT trap has
#   run, so that trap still runs under the locks.
# - Processes the script starts while holding a lock inherit that pipe (bash
#   cannot mark it close-on-exec). If the script dies, a child it started
#   under the lock keeps the lock until the child exits too: nothing the
#   script started runs on unlocked. Release a lock (tnl_release) before
#   starting a daemon that should outlive it. tnl_release itself always
#   releases at once, inherited copies or not. `tnl_acquire NAME; exec PROG`
#   hands NAME to PROG: held until PROG ends, and PROG gets the SIGTERM.
# - A lost lock (server gone, connection cut) is never silent: the holder
#   writes `tnl.sh: lock NAME lost: ...` on standard error and, by default
#   (--on-lost term), sends SIGTERM to the shell that took the lock (the script,
#   or the subshell that called tnl_acquire) and to what it started under the
#   lock (the processes that still have the lock's pipe open, found in /proc).
#   The script's own TERM trap, if any, runs; with_lock and tnl_release then
#   return 122. Those still there at the deadline get SIGKILL: 3/4 of the
#   dead-peer timeout after the server last heard from the holder's tnl-lock
#   (tnl-lock --lost-deadline exits then), as tnl-do kills its command, before
#   the server could give the lock to anyone else; --kill-after D brings it
#   forward to D after SIGTERM. --on-lost kill sends SIGKILL at once;
#   --on-lost ignore only writes the line. An interactive bash ignores
#   SIGTERM, so there SIGKILL comes at the deadline. The line goes to the
#   standard error the shell had when it took the lock (`tnl_acquire NAME
#   2>/dev/null` silences it; the signal still comes).
# - with_lock runs a function or builtin in the calling shell, so globals it
#   sets are there afterwards; TNL_LOCK and TNL_FENCE (and TNL_SERVER with -s)
#   are exported to it for its duration. An external COMMAND (a program, a
#   script file) runs under tnl-do instead, which forwards signals to it and,
#   when the lock is lost, stops its whole process group (`with_lock NAME
#   command PROG` keeps PROG in this shell's care instead).
# - A lease (tnl_lease_acquire) has no holder and is NOT released when the
#   shell ends, however it ends: it is held by its id until tnl_lease_release
#   with that id, from any step, job or host, or until its TTL (or maximum
#   hold) runs out. Nothing tells the script when it ends: renew it in time,
#   and check before acting (tnl_lease_held, or the fencing token).
#
# Defines with_lock, tnl_* and __tnl_* names only; never changes the caller's
# shell options or traps, never exits; sourcing it again is harmless (held
# locks are kept). Works under set -euo pipefail.

if [ -z "${BASH_VERSION-}" ]; then
  echo "tnl.sh: needs bash 4.2 or later" >&2
  return 1
fi
if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 2))); then
  builtin printf 'tnl.sh: needs bash 4.2 or later, this is %s\n' "$BASH_VERSION" >&2
  return 1
fi

# Held locks. __tnl_names keeps the order of acquisition; __tnl_info[NAME] is
# "WRITE_FD READ_FD HOLDER_PID,TNL_LOCK_PID OWNER_PID FENCE". -g: also when sourced from
# inside a function. Declaring again keeps the values, so sourcing twice keeps
# what is held.
declare -ga __tnl_names
declare -gA __tnl_info

# with_lock [FLAGS] NAME COMMAND [ARG...]
#
# Takes NAME, runs COMMAND, releases NAME, and returns COMMAND's status; 123
# (or -E N) when NAME is not granted, 122 when it was lost meanwhile, 125 when
# the server cannot be reached, 2 on a usage error. A function or builtin runs
# in this shell (see the header); an external command runs under tnl-do. An
# optional `--` may stand before NAME and between NAME and COMMAND.
#
# Example:
#
#   bump() {                      # runs in this shell, under the lock
#     counter=$(( $(<"$state") + 1 ))
#     echo "$counter $TNL_FENCE" >"$state.log"
#     echo "$counter" >"$state"
#   }
#   with_lock -w 30s counter bump || exit
#   echo "now at $counter"           # set by bump
#   with_lock -w 30s counter rsync -a src/ dest/   # a program: under tnl-do
with_lock() {
  # Every local here is __tnl_-prefixed: COMMAND runs inside this function
  # and must see and set the caller's variables, not ours.
  local __tnl_name='' __tnl_onlost=term __tnl_ka='' __tnl_econf=123 \
    __tnl_server='' __tnl_doonly='' __tnl_bylock='' __tnl_help='' __tnl_used=0 \
    __tnl_rc=0 __tnl_fencev=''
  local -a __tnl_lockargs=() __tnl_doflags=()
  __tnl_parse with_lock "$@" || return
  if [[ -n $__tnl_help ]]; then
    __tnl_usage with_lock
    return 0
  fi
  shift "$__tnl_used"
  if [[ ${1-} == -- ]]; then
    shift
  fi
  if (($# == 0)); then
    __tnl_err with_lock "missing command after lock name $__tnl_name"
    return 2
  fi

  if [[ " $__tnl_doonly " == *' -c '* ]] || ! __tnl_inshell "$1"; then
    # An external program: tnl-do forwards signals to it and stops its
    # process group when the lock is lost, which this shell cannot do.
    if [[ -n $__tnl_bylock ]]; then
      : # --lock-name NAME is among the flags
    elif [[ $__tnl_name == -* ]]; then
      __tnl_doflags+=("--lock-name=$__tnl_name") # tnl-do would take -NAME for a flag
    else
      __tnl_doflags+=("$__tnl_name")
    fi
    command tnl-do "${__tnl_doflags[@]}" -- "$@"
    return
  fi
  if [[ -n $__tnl_doonly ]]; then
    __tnl_err with_lock "flag ${__tnl_doonly# } works only with an external command, and $1 is a $(__tnl_kind "$1")"
    return 2
  fi

  __tnl_acquire with_lock || {
    __tnl_rc=$?
    # Not granted: COMMAND does not run, even with -E 0.
    if ((__tnl_rc == 123)); then
      __tnl_rc=$__tnl_econf
    fi
    return "$__tnl_rc"
  }
  __tnl_fencev=${__tnl_info[$__tnl_name]##* }
  local -x TNL_LOCK="$__tnl_name" TNL_FENCE="$__tnl_fencev"
  if [[ -n $__tnl_server ]]; then
    local -x TNL_SERVER="$__tnl_server"
  fi
  # Not `"$@" || __tnl_rc=$?`: that would switch set -e off inside COMMAND.
  # Under set -e a failing COMMAND ends the script right here, and the lock
  # goes with the shell, as in the header.
  "$@"
  __tnl_rc=$?
  # COMMAND may have released the lock itself.
  if [[ -n ${__tnl_info[$__tnl_name]+x} ]]; then
    __tnl_drop with_lock "$__tnl_name" || __tnl_rc=$?
  fi
  return "$__tnl_rc"
}

# tnl_acquire [FLAGS] NAME
#
# Returns 0 once NAME is held by a background tnl-lock holder of this shell
# (it waits on tnl-lock's granted line: up to -w, or not at all by default).
# The lock stays held until tnl_release NAME or the end of the shell. Returns
# 123 (or -E N) when not granted, 125 when the server cannot be reached, 2 on a
# usage error or when this shell already holds NAME (locks are not reentrant).
# With -E 0 a refusal returns 0 too: then ask tnl_held.
# A trap that runs while it waits and returns lets the wait go on; one that
# exits ends it. (bash may run such a trap up to a second late: see
# tnl.sh(7), NOTES.)
#
# Example:
#
#   tnl_acquire -w 5m deploy || { echo "deploy is busy" >&2; exit 1; }
#   ./migrate && ./switch
#   tnl_release deploy
tnl_acquire() {
  local __tnl_name='' __tnl_onlost=term __tnl_ka='' __tnl_econf=123 \
    __tnl_server='' __tnl_doonly='' __tnl_bylock='' __tnl_help='' __tnl_used=0
  local -a __tnl_lockargs=() __tnl_doflags=()
  __tnl_parse tnl_acquire "$@" || return
  if [[ -n $__tnl_help ]]; then
    __tnl_usage tnl_acquire
    return 0
  fi
  shift "$__tnl_used"
  if (($# > 0)); then
    __tnl_err tnl_acquire "unexpected argument after lock name $__tnl_name: $1"
    return 2
  fi
  if [[ -n $__tnl_doonly ]]; then
    __tnl_err tnl_acquire "flag ${__tnl_doonly# } is a with_lock flag for external commands"
    return 2
  fi
  local rc=0
  __tnl_acquire tnl_acquire || rc=$?
  if ((rc == 123)); then
    rc=$__tnl_econf
  fi
  return "$rc"
}

# tnl_release [NAME...]
#
# Releases each NAME this shell holds (all of them when none is given) and
# returns once the server has let go. Returns 0; 122 when a lock had been lost
# before (the holder already said so on stderr); 2 when NAME is not held by
# this shell (a subshell cannot release its parent's locks).
#
# Example:
#
#   tnl_acquire cache && rebuild_cache
#   tnl_release cache
tnl_release() {
  local name rc=0 one
  if (($# == 0)); then
    for name in ${__tnl_names[@]+"${__tnl_names[@]}"}; do
      if __tnl_mine "$name"; then
        set -- "$@" "$name"
      fi
    done
  fi
  for name in "$@"; do
    if [[ -z ${__tnl_info[$name]+x} ]]; then
      __tnl_err tnl_release "lock $name is not held by this shell"
      rc=2
      continue
    fi
    if ! __tnl_mine "$name"; then
      __tnl_err tnl_release "lock $name belongs to shell $(__tnl_field "$name" 4), not to this subshell"
      rc=2
      continue
    fi
    one=0
    __tnl_drop tnl_release "$name" || one=$?
    if ((one != 0 && rc != 122)); then
      rc=$one
    fi
  done
  return "$rc"
}

# tnl_held [NAME...]
#
# Without NAME, prints the names this shell holds, one per line, in the order
# they were taken (locks of a parent shell included in a subshell). With NAMEs,
# prints nothing and returns 0 when every NAME is held, else 1. A lost lock is
# not held.
#
# Example:
#
#   tnl_held deploy || tnl_acquire -w 1m deploy
#   for name in $(tnl_held); do echo "holding $name"; done
tnl_held() {
  local name
  if (($# > 0)); then
    for name in "$@"; do
      if ! __tnl_alive "$name"; then
        return 1
      fi
    done
    return 0
  fi
  for name in ${__tnl_names[@]+"${__tnl_names[@]}"}; do
    if __tnl_alive "$name"; then
      builtin printf '%s\n' "$name"
    fi
  done
  return 0
}

# tnl_fence NAME
#
# Prints the fencing token the server gave with NAME: a number that grows
# with every grant of NAME. Pass it to whatever the lock protects, so that a
# late writer with an older token can be refused. Returns 2 when NAME is not
# held.
#
# Example:
#
#   tnl_acquire db-schema
#   psql -v fence="$(tnl_fence db-schema)" -f migrate.sql
tnl_fence() {
  if (($# != 1)); then
    __tnl_err tnl_fence "usage: tnl_fence NAME"
    return 2
  fi
  if ! __tnl_alive "$1"; then
    __tnl_err tnl_fence "lock $1 is not held by this shell"
    return 2
  fi
  builtin printf '%s\n' "$(__tnl_field "$1" 5)"
}

# ---- leases ----------------------------------------------------------------
#
# A lease is a lock held by a secret id instead of by a process: it stays
# held when the script that took it ends, until tnl_lease_release (from any
# step, job or host that has the id) or the end of its TTL. Nothing in this
# shell holds it, so nothing here can tell of its end: renew it in time, and
# check with tnl_lease_held (or the fencing token) before work that needs it.
# These functions run tnl-lock --ttl, --renew, --release and --is-held and
# return their statuses. The id reaches tnl-lock through its environment
# (TNL_LEASE), never on its command line, where ps(1) would show it to every
# user of the host.

# tnl_lease_acquire [FLAGS] NAME TTL
#
# Takes NAME as a lease of TTL (2h, 30m, 90s...; from 1ms to 366 days) and
# exports TNL_LEASE (its id, a secret: whoever has it may renew and release
# the lease), TNL_FENCE (the fencing token) and TNL_LOCK (NAME) in this shell,
# as `eval "$(tnl-lock --ttl TTL NAME)"` would, but without eval: it takes in
# tnl-lock's three lines only when each has the exact form it must have.
# The lease is NOT released when the script ends: that is the point, another
# step releases it. Returns 0; 123 (or -E N) when not granted, 125 when the
# server cannot be reached, 2 on a usage error. The variables are set only on
# a grant (with -E 0, a refusal leaves them as they were). A second lease
# replaces the variables of the first: keep its id first when it is needed.
# FLAGS: -w, --shared, --limit N, --max-hold D, -E N and the server's.
#
# Example (a cron step or CI job that leaves the lock to a later one):
#
#   tnl_lease_acquire -w 10m nightly-etl 2h || exit
#   echo "$TNL_LEASE" >/run/etl/lease    # for the step that releases it
tnl_lease_acquire() {
  local __tnl_name='' __tnl_onlost=term __tnl_ka='' __tnl_econf=123 \
    __tnl_server='' __tnl_doonly='' __tnl_bylock='' __tnl_help='' __tnl_used=0
  local -a __tnl_lockargs=() __tnl_doflags=()
  __tnl_quiet __tnl_lease_take "$@"
}

# tnl_lease_renew [--ttl D] [FLAGS] [ID]
#
# Renews the lease ID (default: $TNL_LEASE): it runs for D from now (without
# --ttl, for the TTL it was granted with), but never past its maximum hold.
# Returns 0; 122 when the lease is gone (expired, released, or not this id),
# 125 when the server cannot be reached, 2 on a usage error (no ID and no
# TNL_LEASE). FLAGS: the server's (-s and the rest).
#
# Example (a long job that keeps its lease alive between steps):
#
#   for part in parts/*; do
#     tnl_lease_renew --ttl 30m || { echo "lost the lease" >&2; exit 1; }
#     ./process "$part" --fence "$TNL_FENCE"
#   done
tnl_lease_renew() {
  local __tnl_name='' __tnl_onlost=term __tnl_ka='' __tnl_econf=123 \
    __tnl_server='' __tnl_doonly='' __tnl_bylock='' __tnl_help='' __tnl_used=0
  local -a __tnl_lockargs=() __tnl_doflags=()
  __tnl_quiet __tnl_lease tnl_lease_renew --renew "$@"
}

# tnl_lease_release [FLAGS] [ID]
#
# Releases the lease ID (default: $TNL_LEASE), from any host. When it released
# the lease named in TNL_LEASE, it unsets TNL_LEASE, TNL_FENCE and TNL_LOCK.
# Returns 0; 122 when the lease was gone already (expired, released, or not
# this id: the variables stay), 125 when the server cannot be reached, 2 on a
# usage error.
#
# Example (the last step of the pipeline):
#
#   tnl_lease_release "$(</run/etl/lease)"
tnl_lease_release() {
  local __tnl_name='' __tnl_onlost=term __tnl_ka='' __tnl_econf=123 \
    __tnl_server='' __tnl_doonly='' __tnl_bylock='' __tnl_help='' __tnl_used=0
  local -a __tnl_lockargs=() __tnl_doflags=()
  __tnl_quiet __tnl_lease tnl_lease_release --release "$@"
}

# tnl_lease_held [FLAGS] [ID]
#
# Returns 0 when the lease ID (default: $TNL_LEASE) is held, 122 when it is
# not (expired, released, or not this id), 125 when the server cannot be
# reached, 2 on a usage error. Prints nothing (with -v, tnl-lock says why a
# lease is not held).
#
# Example:
#
#   if tnl_lease_held; then ./publish --fence "$TNL_FENCE"; fi
tnl_lease_held() {
  local __tnl_name='' __tnl_onlost=term __tnl_ka='' __tnl_econf=123 \
    __tnl_server='' __tnl_doonly='' __tnl_bylock='' __tnl_help='' __tnl_used=0
  local -a __tnl_lockargs=() __tnl_doflags=()
  __tnl_quiet __tnl_lease tnl_lease_held --is-held "$@"
}

# ---- private ---------------------------------------------------------------

__tnl_err() { # WHO MESSAGE
  builtin printf '%s: %s\n' "$1" "$2" >&2
}

__tnl_usage() { # WHO
  case $1 in
  with_lock) builtin printf '%s\n' \
    'usage: with_lock [FLAGS] NAME [--] COMMAND [ARG...]' \
    'Runs COMMAND while holding the network lock NAME; a function or builtin' \
    'runs in this shell, a program under tnl-do.' ;;
  tnl_acquire) builtin printf '%s\n' \
    'usage: tnl_acquire [FLAGS] NAME' \
    'Takes the network lock NAME and holds it until tnl_release NAME or the' \
    'end of this shell.' ;;
  tnl_lease_acquire) builtin printf '%s\n' \
    'usage: tnl_lease_acquire [FLAGS] NAME TTL' \
    'Takes the network lock NAME as a lease of TTL (2h, 30m, 90s), held by the id' \
    'it exports in TNL_LEASE (with TNL_FENCE and TNL_LOCK), not by this shell:' \
    'it stays held after the script ends, until tnl_lease_release or its TTL.' ;;
  tnl_lease_renew) builtin printf '%s\n' \
    'usage: tnl_lease_renew [--ttl DURATION] [FLAGS] [ID]' \
    'Renews the lease ID (default: TNL_LEASE) for DURATION from now, or for the TTL' \
    'it was granted with. 122: the lease is gone.' ;;
  tnl_lease_release) builtin printf '%s\n' \
    'usage: tnl_lease_release [FLAGS] [ID]' \
    'Releases the lease ID (default: TNL_LEASE; then unsets TNL_LEASE, TNL_FENCE' \
    'and TNL_LOCK). 122: the lease was gone already.' ;;
  tnl_lease_held) builtin printf '%s\n' \
    'usage: tnl_lease_held [FLAGS] [ID]' \
    'Returns 0 when the lease ID (default: TNL_LEASE) is held, 122 when not.' ;;
  esac
  builtin printf '%s\n' \
    'FLAGS: -s, --server HOST:PORT   --host HOST   --port PORT   --client-id ID' \
    '       -v, --verbose   --auth-token-file FILE   --tls   --tls-ca FILE' \
    '       --tls-cert FILE   --tls-key FILE'
  case $1 in
  with_lock | tnl_acquire | tnl_lease_acquire)
    builtin printf '%s\n' \
      '       -w, --wait DURATION   --shared   --limit N   -E, --conflict-exit-code N' \
      '       --max-hold DURATION' ;;
  esac
  case $1 in
  with_lock | tnl_acquire)
    builtin printf '%s\n' '       --on-lost term|kill|ignore   --kill-after DURATION' ;;
  esac
  if [[ $1 == with_lock ]]; then
    builtin printf '%s\n' \
      '       -c, --shell   --retry N   --retry-wait SECONDS   (external COMMAND only)'
  fi
  builtin printf '%s\n' 'See tnl.sh(7).'
}

# __tnl_lease WHO ACTION ARG...: runs tnl-lock ACTION (--renew, --release or
# --is-held) on the lease whose id is the last of ARG... (default
# $TNL_LEASE), with the flags before it, and returns its status; a release
# of the lease in TNL_LEASE unsets TNL_LEASE, TNL_FENCE and TNL_LOCK. The id
# goes in tnl-lock's environment, not on its command line (see "leases").
__tnl_lease() {
  local who=$1 action=$2
  shift 2
  __tnl_parse "$who" "$@" || return
  if [[ -n $__tnl_help ]]; then
    __tnl_usage "$who"
    return 0
  fi
  shift "$__tnl_used"
  if (($# > 1)); then
    __tnl_err "$who" "unexpected argument after the lease id: $2"
    return 2
  fi
  if (($# == 1)); then
    # Given but empty (an id file that is empty, say) is not "the default":
    # that would act on another lease.
    if [[ -z $1 ]]; then
      __tnl_err "$who" "empty lease id"
      return 2
    fi
    __tnl_name=$1
  else
    __tnl_name=${TNL_LEASE-}
    if [[ -z $__tnl_name ]]; then
      __tnl_err "$who" "no lease id: give one, or take a lease first (TNL_LEASE is not set)"
      return 2
    fi
  fi
  TNL_LEASE=$__tnl_name command tnl-lock "$action" \
    ${__tnl_lockargs[@]+"${__tnl_lockargs[@]}"} </dev/null || return
  if [[ $action == --release && $__tnl_name == "${TNL_LEASE-}" ]]; then
    builtin unset -v TNL_LEASE TNL_FENCE TNL_LOCK
  fi
}

# __tnl_quiet COMMAND...: runs COMMAND with xtrace off, and returns its
# status. A lease id must not reach the trace of a script run with set -x
# (a CI log): whoever reads it could release the lease. The caller's -x is
# back on before the return.
__tnl_quiet() {
  local __tnl_x='' __tnl_rc=0
  if [[ $- == *x* ]]; then
    __tnl_x=1
    { builtin set +x; } 2>/dev/null
  fi
  "$@" || __tnl_rc=$?
  if [[ -n $__tnl_x ]]; then
    builtin set -x
  fi
  return "$__tnl_rc"
}

# __tnl_lease_take NAME TTL, after the flags: tnl_lease_acquire, with the
# caller's __tnl_* locals.
__tnl_lease_take() {
  __tnl_parse tnl_lease_acquire "$@" || return
  if [[ -n $__tnl_help ]]; then
    __tnl_usage tnl_lease_acquire
    return 0
  fi
  shift "$__tnl_used"
  if (($# == 0)); then
    __tnl_err tnl_lease_acquire "missing TTL after lock name $__tnl_name (such as 2h or 30m)"
    return 2
  fi
  if (($# > 1)); then
    __tnl_err tnl_lease_acquire "unexpected argument after TTL $1: $2"
    return 2
  fi
  local ttl=$1 name=$__tnl_name dir w out rc=0 re
  # A pipe whose only writer is this shell, which writes one line on it
  # when tnl-lock is done: its end of file without that line says that the
  # shell is gone. tnl-lock --ttl does not watch its
  # input, so a watcher does (__tnl_leasewatch): if the script dies while
  # tnl-lock waits (-w; killed, or timeout(1) ending it), tnl-lock is told
  # to stop, and leaves the queue, so that no lease is granted that nobody
  # will ever know the id of. tnl-lock gets the pipe as its input too: it
  # never reads the script's own.
  dir=$(command mktemp -d "${TMPDIR:-/tmp}/tnl.XXXXXXXX") || {
    __tnl_err tnl_lease_acquire "cannot create a temporary directory in ${TMPDIR:-/tmp}"
    return 125
  }
  if ! command mkfifo -m 600 "$dir/i"; then
    command rm -rf -- "$dir"
    __tnl_err tnl_lease_acquire "cannot create a fifo in $dir"
    return 125
  fi
  # Read and write: opening a fifo for writing alone would block until
  # tnl-lock opens it for reading.
  exec {w}<>"$dir/i"
  if [[ $name == -* ]]; then
    __tnl_lockargs+=(--) # a name may start with '-'
  fi
  # exec, not command: the subshell becomes tnl-lock (whose pid the watcher
  # knows, then: BASHPID), in the foreground, where Ctrl-C reaches it; no
  # copy of the pipe's writer stays behind; exec never runs a function.
  out=$(
    exec <"$dir/i" {w}>&-
    command rm -rf -- "$dir"
    __tnl_me=$BASHPID # here: in the command, it would be the watcher's own
    __tnl_leasewatch "$__tnl_me" <&0 >/dev/null 2>&1 &
    exec tnl-lock --ttl="$ttl" ${__tnl_lockargs[@]+"${__tnl_lockargs[@]}"} "$name"
  ) || rc=$?
  builtin printf 'done\n' >&"$w"
  exec {w}>&-
  command rm -rf -- "$dir"
  if ((rc == 123)); then
    return "$__tnl_econf"
  elif ((rc != 0)); then
    return "$rc"
  fi
  # The id is 32 lowercase hex digits and the token a decimal number
  # (lib/protocol); NAME comes back as it went, quoted. Nothing else passes.
  re="^export TNL_LEASE='([0-9a-f]{32})'"$'\n'"export TNL_FENCE='([0-9]+)'"$'\n'"export TNL_LOCK='([^']*)'\$"
  if [[ ! $out =~ $re || ${BASH_REMATCH[3]} != "$name" ]]; then
    # Not shown: it may hold the id.
    __tnl_err tnl_lease_acquire "tnl-lock --ttl printed something else than the lease of $name; not taking it in (a lease it took ends at its TTL)"
    return 125
  fi
  TNL_LEASE=${BASH_REMATCH[1]} TNL_FENCE=${BASH_REMATCH[2]} TNL_LOCK=$name
  export TNL_LEASE TNL_FENCE TNL_LOCK
}

# __tnl_leasewatch TNL_LOCK_PID: with its standard input on the pipe whose
# only writer is the shell in tnl_lease_acquire, waits for the line the
# shell writes once tnl-lock TNL_LOCK_PID is done. End of file instead: the
# shell is gone (not "kill -0 SHELL": a killed shell is a zombie until its
# parent reaps it), and tnl-lock waits for nobody: SIGTERM, on which it
# leaves the queue, or releases a lease granted just then.
__tnl_leasewatch() {
  # A copy of the caller's shell: drop its traps and options.
  trap - ERR DEBUG RETURN EXIT
  set +eEumTx +o pipefail
  if ! builtin read -r _; then
    builtin kill -TERM "$1" 2>/dev/null
  fi
}

# __tnl_applies WHO FLAG: true when FLAG is one of WHO's; else false after one
# line on stderr. The lease functions take the server's flags; the one that
# takes a lease, the lock's too, but none of a holder's (nothing of this
# shell holds a lease); only tnl_lease_renew takes --ttl.
__tnl_applies() {
  local who=$1 flag=$2
  case $flag in
  -s | --server | --host | --port | --client-id | -v | --verbose | --debug | \
    --info | --keep-alive | --keep-alive-secs | --auth-token-file | --tls | \
    --tls-ca | --tls-cert | --tls-key | -h | --help)
    return 0
    ;;
  esac
  case $who:$flag in
  tnl_lease_renew:--ttl) return 0 ;;
  tnl_lease_renew:* | tnl_lease_release:* | tnl_lease_held:*) ;;
  with_lock:--ttl | tnl_acquire:--ttl)
    __tnl_err "$who" "flag --ttl takes a lease, which no process holds: use tnl_lease_acquire NAME TTL"
    return 1
    ;;
  tnl_lease_acquire:--on-lost | tnl_lease_acquire:--kill-after)
    __tnl_err "$who" "flag $flag does not apply to a lease: no process of this shell holds it"
    return 1
    ;;
  tnl_lease_acquire:--ttl | tnl_lease_acquire:-c | tnl_lease_acquire:--shell | \
    tnl_lease_acquire:--retry | tnl_lease_acquire:--retry-wait) ;;
  *) return 0 ;;
  esac
  __tnl_err "$who" "flag $flag does not apply to $who (see $who --help)"
  return 1
}

# __tnl_parse WHO ARG...
# Reads the flags and NAME into the caller's __tnl_* locals (bash's dynamic
# scope): __tnl_lockargs for tnl-lock, __tnl_doflags as given (for tnl-do),
# __tnl_name, __tnl_onlost, __tnl_ka, __tnl_econf, __tnl_server, __tnl_doonly,
# __tnl_help, and __tnl_used, the number of words taken. Only WHO's flags
# pass (__tnl_applies). For tnl_lease_renew, _release and _held there is no
# NAME: what follows the flags is left to __tnl_lease. Returns 2 after one
# line on stderr when they are wrong.
__tnl_parse() {
  local who=$1 flag value hasval n
  shift
  __tnl_used=0
  while (($# > 0)); do
    flag=$1 value='' hasval='' n=1
    case $flag in
    --) __tnl_used=$((__tnl_used + 1)); shift; break ;;
    --?*=*) value=${flag#*=} flag=${flag%%=*} hasval=1 ;;
    -[swE]?*) value=${flag:2} flag=${flag:0:2} hasval=1; value=${value#=} ;;
    -?*) ;;
    *) break ;;
    esac
    case $flag in
    -s | --server | --host | --port | --client-id | -w | --wait | --limit | \
      -E | --conflict-exit-code | --on-lost | --kill-after | --lock-name | \
      --retry | --retry-wait | --keep-alive-secs | --auth-token-file | \
      --tls-ca | --tls-cert | --tls-key | --max-hold | --ttl)
      if [[ -z $hasval ]]; then
        if (($# < 2)); then
          __tnl_err "$who" "flag $flag needs a value"
          return 2
        fi
        value=$2 n=2
      fi
      ;;
    --shared | -v | --verbose | --debug | --info | --keep-alive | --tls | -c | --shell | -h | --help)
      if [[ -n $hasval ]]; then
        __tnl_err "$who" "flag $flag takes no value"
        return 2
      fi
      ;;
    *)
      __tnl_err "$who" "unknown flag $flag (see $who --help)"
      return 2
      ;;
    esac
    __tnl_applies "$who" "$flag" || return 2
    if [[ -n $hasval || $n == 2 ]]; then
      __tnl_doflags+=("$flag" "$value")
    else
      __tnl_doflags+=("$flag")
    fi
    case $flag in
    -s | --server) __tnl_server=$value; __tnl_lockargs+=(--server "$value") ;;
    -w | --wait) __tnl_lockargs+=(--wait "$value") ;;
    --host | --port | --client-id | --limit | --keep-alive-secs | \
      --auth-token-file | --tls-ca | --tls-cert | --tls-key | --max-hold | --ttl)
      __tnl_lockargs+=("$flag" "$value") ;;
    --shared | -v | --verbose | --debug | --info | --keep-alive | --tls)
      __tnl_lockargs+=("$flag") ;;
    -E | --conflict-exit-code)
      if [[ ! $value =~ ^[0-9]{1,3}$ ]] || ((10#$value > 255)); then
        __tnl_err "$who" "flag $flag $value: must be from 0 to 255"
        return 2
      fi
      __tnl_econf=$((10#$value))
      ;;
    --on-lost)
      case $value in
      term | kill | ignore) __tnl_onlost=$value ;;
      *)
        __tnl_err "$who" "flag --on-lost $value: want term, kill or ignore"
        return 2
        ;;
      esac
      ;;
    --kill-after)
      if ! __tnl_seconds "$value"; then
        __tnl_err "$who" "flag --kill-after $value: want a duration such as 10s, 1m30s, 500ms or 2"
        return 2
      fi
      ;;
    --lock-name) __tnl_name=$value __tnl_bylock=1 ;;
    -c | --shell) __tnl_doonly+=" -c" ;;
    --retry | --retry-wait) __tnl_doonly+=" $flag" ;;
    -h | --help) __tnl_help=1 ;;
    esac
    __tnl_used=$((__tnl_used + n))
    shift "$n"
  done
  if [[ -n $__tnl_help ]]; then
    return 0
  fi
  case $who in
  tnl_lease_renew | tnl_lease_release | tnl_lease_held)
    return 0 # then an optional lease id, not a NAME: see __tnl_lease
    ;;
  esac
  if [[ -z $__tnl_bylock ]]; then
    if (($# == 0)); then
      __tnl_err "$who" "missing lock name (see $who --help)"
      return 2
    fi
    __tnl_name=$1
    __tnl_used=$((__tnl_used + 1))
  fi
  # tnl-lock checks the name too; checking here keeps odd names (such as "@")
  # out of the bookkeeping arrays and gives the error before anything starts.
  if ! __tnl_validname "$__tnl_name"; then
    __tnl_err "$who" "invalid lock name \"$__tnl_name\": use letters, digits, '_' and '-' (and '.', '/', ':', '@' after the first), at most 255 bytes"
    return 2
  fi
  return 0
}

# __tnl_validname NAME: true when NAME may be a lock name, as lib/protocol's
# ValidName has it (test/drift_test.go holds the two together): tcpnetlock's
# letters, digits, '_' and '-', then also '.', '/', ':' and '@', at most 255
# bytes. The letters are spelt out: a range such as A-Z may take in other
# letters in some locales. Only ASCII passes, so characters are bytes.
__tnl_validname() {
  local w='ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_'
  local re="^[$w-][$w./:@-]*\$"
  [[ ${#1} -le 255 && $1 =~ $re ]]
}

# __tnl_seconds DURATION: sets the caller's __tnl_ka to DURATION in seconds
# ("12.345", to the nearest millisecond: enough for read -t), or to '' for
# inf or infinity (no --kill-after: SIGKILL comes at the deadline only).
__tnl_seconds() {
  local __tnl_ns ms
  case $1 in
  inf | infinity) __tnl_ka=''; return 0 ;;
  esac
  __tnl_duration "$1" || return 1
  ms=$((__tnl_ns / 1000000 + (__tnl_ns % 1000000 >= 500000)))
  builtin printf -v __tnl_ka '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# __tnl_duration DURATION: sets the caller's __tnl_ns to DURATION in
# nanoseconds; false when it is not one. tnl's one rule for durations, as
# lib/protocol's ParseDuration (test/drift_test.go holds the two together):
# a plain number is seconds (2, 0.25, .5), else one or more NUMBER UNIT with
# UNIT ns, us, µs, ms, s, m or h (250ms, 1h30m); no sign, no exponent, no
# white space. Each NUMBER is taken in decimal and rounded to the nearest
# nanosecond, halves up; at most 15 digits past the nanoseconds count.
__tnl_duration() {
  local d=$1 total=0 int frac unit c a n h tail t pow extra \
    max=9223372036854775807
  if [[ $d =~ ^[0-9]*\.?[0-9]*$ ]]; then
    d+=s
  fi
  while [[ -n $d ]]; do
    if [[ ! $d =~ ^([0-9]*)(\.([0-9]*))?([^0-9.]+)(.*)$ ]]; then
      return 1
    fi
    int=${BASH_REMATCH[1]} frac=${BASH_REMATCH[3]} unit=${BASH_REMATCH[4]} d=${BASH_REMATCH[5]}
    if [[ -z $int$frac ]]; then
      return 1
    fi
    # The unit is c * 10^a nanoseconds.
    case $unit in
    ns) c=1 a=0 ;;
    us | µs | μs) c=1 a=3 ;;
    ms) c=1 a=6 ;;
    s) c=1 a=9 ;;
    m) c=6 a=10 ;;
    h) c=36 a=11 ;;
    *) return 1 ;;
    esac
    [[ $int =~ ^0*([0-9]*)$ ]]
    int=${BASH_REMATCH[1]}
    # No more than max (19 digits), without overflowing on the way.
    if ((${#int} > 19)) || { ((${#int} == 19)) &&
      ((10#${int:0:18} > max / 10 || (10#${int:0:18} == max / 10 && ${int:18} > max % 10))); }; then
      return 1
    fi
    n=$((10#${int:-0}))
    if ((n > max / (c * 10 ** a))); then
      return 1
    fi
    n=$((n * c * 10 ** a))
    # The fraction's first a digits are whole units of c ns; the next 15,
    # times c, give a few more and the rounding.
    h=${frac:0:a}
    while ((${#h} < a)); do
      h+=0
    done
    tail=${frac:a:15}
    t=$((10#${tail:-0})) pow=$((10 ** ${#tail}))
    extra=$((c * t / pow + (2 * (c * t % pow) >= pow)))
    extra=$((c * 10#${h:-0} + extra))
    if ((extra > max - n || n + extra > max - total)); then
      return 1
    fi
    total=$((total + n + extra))
  done
  __tnl_ns=$total
}

# __tnl_inshell WORD: true when "$@" starting with WORD would run inside this
# shell (a function or a builtin), false for a program or an unknown name.
__tnl_inshell() {
  local t
  t=$(builtin type -at -- "$1" 2>/dev/null) || return 1
  [[ $'\n'$t$'\n' == *$'\n'function$'\n'* || $'\n'$t$'\n' == *$'\n'builtin$'\n'* ]]
}

__tnl_kind() { # WORD: "function" or "builtin"
  if builtin declare -F -- "$1" >/dev/null; then
    builtin printf function
  else
    builtin printf builtin
  fi
}

# __tnl_field NAME N: prints field N of __tnl_info[NAME].
__tnl_field() {
  local -a f
  IFS=' ' builtin read -r -a f <<<"${__tnl_info[$1]}"
  builtin printf '%s' "${f[$2 - 1]}"
}

# __tnl_mine NAME: NAME is held by this very shell (not a parent's lock seen
# from a subshell).
__tnl_mine() {
  [[ -n ${__tnl_info[$1]+x} ]] || return 1
  local w r pid owner fence
  IFS=' ' builtin read -r w r pid owner fence <<<"${__tnl_info[$1]}"
  ((owner == BASHPID))
}

# __tnl_alive NAME: NAME is tracked and its holder has said nothing since the
# grant. The holder's only later line is its exit line, so anything to read
# (or end of file) means the lock is gone. read -t 0 only peeks: a subshell
# asking (as in "$(tnl_held)") does not eat the line its parent needs.
__tnl_alive() {
  [[ -n ${__tnl_info[$1]+x} ]] || return 1
  local w r pid owner fence
  IFS=' ' builtin read -r w r pid owner fence <<<"${__tnl_info[$1]}"
  ! builtin read -r -t 0 -u "$r" 2>/dev/null
}

# __tnl_acquire WHO: takes the caller's __tnl_name with its parsed flags.
# Returns 0, or tnl-lock's status: 123 (the caller applies -E), 125, 2...
__tnl_acquire() {
  local who=$1 name=$__tnl_name owner=$BASHPID dir w r line part st pid='' fence='' rc='' inter=''
  if [[ $- == *i* ]]; then
    inter=1 # see __tnl_lost
  fi
  if [[ -n ${__tnl_info[$name]+x} ]]; then
    if tnl_held "$name"; then
      if __tnl_mine "$name"; then
        __tnl_err "$who" "lock $name is already held by this shell"
      else
        __tnl_err "$who" "lock $name is already held by shell $(__tnl_field "$name" 4), the parent of this subshell"
      fi
      return 2
    fi
    if __tnl_mine "$name"; then
      # Lost earlier (its holder said so then): forget it, quietly.
      __tnl_drop "$who" "$name" 2>/dev/null || :
    fi
  fi

  # Two fifos in a private directory carry the holder's stdin and stdout (a
  # coprocess would do, but bash keeps only one at a time); a third one is
  # for the holder itself. The directory goes as soon as all are open.
  dir=$(command mktemp -d "${TMPDIR:-/tmp}/tnl.XXXXXXXX") || {
    __tnl_err "$who" "cannot create a temporary directory in ${TMPDIR:-/tmp}"
    return 125
  }
  if ! command mkfifo -m 600 "$dir/i" "$dir/o" "$dir/g"; then
    command rm -rf -- "$dir"
    __tnl_err "$who" "cannot create fifos in $dir"
    return 125
  fi
  if [[ $name == -* ]]; then
    __tnl_lockargs+=(--) # a name may start with '-'
  fi
  # set -m in the throwaway subshell: the holder becomes a job with its own
  # process group (no terminal or group signal reaches it), and the subshell
  # ends at once, so the holder is nobody's child here: `wait` and `jobs` in
  # the script never see it.
  (
    set -m
    __tnl_hold "$owner" "$name" "$dir" "$__tnl_onlost" "$__tnl_ka" "$inter" \
      ${__tnl_lockargs[@]+"${__tnl_lockargs[@]}"} "$name" <"$dir/i" >"$dir/o" &
  )
  # Same order as the holder's redirections, so the opens meet.
  exec {w}>"$dir/i"
  exec {r}<"$dir/o"

  # Not one blocking read: bash 5.2 runs the trap of a signal that lands
  # just as its read(2) starts only when that read returns, which with -w
  # inf could be never. A read that times out keeps its part of a line.
  line=''
  while :; do
    part='' st=0
    IFS= builtin read -r -t 1 -u "$r" part || st=$?
    line+=$part
    if ((st > 128)); then
      continue
    elif ((st != 0)); then
      break # end of file: the holder is gone
    fi
    case $line in
    '__tnl_pid '*) pid=${line#* } ;;
    '__tnl_exit '*) rc=${line#* }; break ;;
    *) __tnl_token "$line"; rc=granted; break ;;
    esac
    line=''
  done
  command rm -rf -- "$dir"

  if [[ $rc == granted ]]; then
    __tnl_info[$name]="$w $r $pid $owner ${fence:-0}"
    __tnl_names+=("$name")
    return 0
  fi
  exec {w}>&- {r}<&-
  case $rc in
  '')
    __tnl_err "$who" "the tnl-lock holder of $name ended without a word"
    rc=125
    ;;
  0)
    __tnl_err "$who" "tnl-lock ended before granting $name"
    rc=125
    ;;
  esac
  return "$rc"
}

# __tnl_token LINE: sets the caller's fence to the fencing token in tnl-lock's
# granted line: the number after "token", else the last number on the line.
__tnl_token() {
  local re1='[Tt][Oo][Kk][Ee][Nn][^0-9]*([0-9]+)' re2='([0-9]+)[^0-9]*$'
  if [[ $1 =~ $re1 || $1 =~ $re2 ]]; then
    fence=${BASH_REMATCH[1]}
  fi
}

# __tnl_drop WHO NAME: releases NAME (if still held), collects the holder's
# exit line, closes both pipes and forgets NAME. Returns 0, or 122 when NAME
# had been lost.
__tnl_drop() {
  local who=$1 name=$2 w r pid owner fence line code='' n
  IFS=' ' builtin read -r w r pid owner fence <<<"${__tnl_info[$name]}"
  if ! builtin read -r -t 0 -u "$r" 2>/dev/null; then
    # Still held. Closing our end alone would not do when a child of the
    # script holds a copy of it, so tell the holder that this is a release,
    # not a loss (SIGUSR1), then end tnl-lock ourselves (SIGTERM: it releases
    # and exits 0). Not through the holder's trap: bash runs a trap for a
    # signal that lands just before its blocking read only when that read
    # returns, which here would be when tnl-lock ends.
    builtin kill -USR1 "${pid%,*}" 2>/dev/null || :
    if [[ $pid == *,* ]]; then # not from an older tnl.sh sourced before
      builtin kill -TERM "${pid#*,}" 2>/dev/null || :
    fi
  fi
  exec {w}>&-
  while IFS= builtin read -r -u "$r" line; do
    case $line in
    '__tnl_exit '*) code=${line#* }; break ;;
    esac
  done
  exec {r}<&-
  builtin unset -v '__tnl_info[$name]'
  local -a keep=()
  for n in ${__tnl_names[@]+"${__tnl_names[@]}"}; do
    if [[ $n != "$name" ]]; then
      keep+=("$n")
    fi
  done
  __tnl_names=(${keep[@]+"${keep[@]}"})
  case $code in
  0) return 0 ;;
  '')
    __tnl_err "$who" "the tnl-lock holder of $name vanished; treat $name as lost"
    return 122
    ;;
  *) return 122 ;;
  esac
}

# __tnl_hold OWNER NAME DIR ONLOST KILL_AFTER INTERACTIVE TNL-LOCK-ARG...
# The background holder, a subshell with stdin/stdout on the fifos i and o.
# Starts tnl-lock, says "__tnl_pid HOLDER_PID,TNL_LOCK_PID", passes tnl-lock's
# granted line on, and when tnl-lock ends says "__tnl_exit STATUS". Between
# the two it waits. tnl-lock's "lost" line (--lost-deadline), or its end,
# while the shell still has its pipe open and did not ask (SIGUSR1 from
# __tnl_drop, which also sends tnl-lock its SIGTERM) means the lock was
# lost: say so and act on ONLOST (see __tnl_lost).
__tnl_hold() {
  local owner=$1 name=$2 dir=$3 onlost=$4 ka=$5 inter=$6 fd g line pid='' rc=0 \
    granted='' req='' sig='' eof='' lost=''
  shift 6
  # This is a copy of the caller's shell: drop its traps and options.
  trap - ERR DEBUG RETURN EXIT
  set +eEumTx +o pipefail
  shopt -u failglob
  shopt -s nullglob
  GLOBIGNORE=
  trap '' INT QUIT HUP TTIN TTOU TSTP
  # Other holders' pipes: a copy here would keep them open after the shell
  # is gone.
  for fd in ${__tnl_info[@]+"${__tnl_info[@]}"}; do
    fd=${fd%% *}
    exec {fd}>&-
  done
  for fd in ${__tnl_info[@]+"${__tnl_info[@]}"}; do
    fd=${fd#* } fd=${fd%% *}
    exec {fd}<&-
  done
  # Only a mark: __tnl_drop ends tnl-lock itself. The trap may run late (once
  # the read below returns), but always before req is looked at.
  trap 'req=1 sig=1' USR1
  command tnl-lock --lost-deadline "$@" <&0 >"$dir/g" &
  pid=$!
  # Before tnl-lock's granted line, which comes through this holder.
  builtin printf '__tnl_pid %s,%s\n' "$BASHPID" "$pid"
  exec {g}<"$dir/g"
  command rm -rf -- "$dir"
  while IFS= builtin read -r -u "$g" line; do
    if [[ -n $granted ]]; then
      # The only line after the grant: the lock is lost, and tnl-lock
      # exits at the deadline.
      if [[ $line == lost ]]; then
        lost=1
        break
      fi
      continue
    fi
    builtin printf '%s\n' "$line"
    granted=1
  done
  if [[ -n $lost && -z $req ]] && ! builtin read -r -t 0 -u 0; then
    # The shell, or something it started, still holds the pipe.
    __tnl_lost "$owner" "$name" "$onlost" "$ka" "$inter" "$pid" "$g"
  fi
  exec {g}<&-
  # A SIGUSR1 interrupts wait (status > 128): wait again for the real
  # status, which bash keeps for a child it already collected.
  while :; do
    sig=''
    wait "$pid"
    rc=$?
    if ((rc > 128)) && [[ -n $sig ]]; then
      continue
    fi
    break
  done
  if [[ -n $lost && -z $req ]]; then
    return # __tnl_lost said all, or nobody was there to hear it
  fi
  if builtin read -r -t 0 -u 0; then
    eof=1 # the shell (and everything that inherited its pipe) is gone
  fi
  if [[ -n $req ]]; then
    if ((rc == 122)); then
      builtin printf '__tnl_exit 122\n'
    else
      builtin printf '__tnl_exit 0\n'
    fi
    return
  fi
  if [[ -z $granted || -n $eof ]]; then
    builtin printf '__tnl_exit %s\n' "$rc"
    return
  fi
  # tnl-lock ended after the grant without its "lost" line (killed, or
  # ended by someone else's SIGTERM, which releases): the lock may be
  # someone else's already, the deadline is now.
  __tnl_lost "$owner" "$name" "$onlost" "$ka" "$inter" "" "" "$rc"
}

# __tnl_lost OWNER NAME ONLOST KILL_AFTER INTERACTIVE TNL_LOCK_PID FD [STATUS]
# The holder's answer to a lost lock, while the shell OWNER or what it
# started still holds the lock's pipe. The exit line first, so that a TERM
# trap asking tnl_held already finds NAME gone. Then, by ONLOST: ignore, a
# line; kill, SIGKILL to OWNER and to every other process that has the pipe
# open (what OWNER started while it held NAME, where /proc shows it); term,
# SIGTERM to them, and SIGKILL to those still there at the deadline: when
# tnl-lock (TNL_LOCK_PID, its output on FD) exits, 3/4 of the dead-peer
# timeout after the server last heard from it, or KILL_AFTER after SIGTERM
# if that comes first. Without FD, tnl-lock ended without its "lost" line
# (with STATUS): the lock may be someone else's already, the deadline has
# passed, and term is kill. An INTERACTIVE shell is not killed at the
# deadline (it ignores SIGTERM too): what it started is.
__tnl_lost() {
  local owner=$1 name=$2 onlost=$3 ka=$4 inter=$5 tl=$6 fd=$7 line st=0 why others started
  local -a users=()
  builtin printf '__tnl_exit 122\n'
  __tnl_users "$tl"
  if [[ $onlost == ignore ]]; then
    builtin printf 'tnl.sh: lock %s lost (tnl-lock status %s)\n' "$name" "${8:-122}" >&2
    return
  fi
  if [[ $onlost == term && -n $fd ]]; then
    builtin printf 'tnl.sh: lock %s lost: sending SIGTERM to pid %s%s\n' "$name" "$owner" "$others" >&2
    builtin kill -TERM "$owner" ${users[@]+"${users[@]}"} 2>/dev/null
    if [[ -n $ka ]]; then
      builtin read -r -t "$ka" -u "$fd" line || st=$?
    else
      builtin read -r -u "$fd" line || st=$?
    fi
    if ((st > 128)); then
      why="still running ${ka}s after SIGTERM"
    else
      why="still running at the deadline of lock $name (3/4 of the dead-peer timeout after the server last heard from tnl-lock)"
    fi
    __tnl_users "$tl"
    if [[ -z $inter ]] && builtin kill -0 "$owner" 2>/dev/null; then
      builtin printf 'tnl.sh: pid %s%s %s: sending SIGKILL\n' "$owner" "$others" "$why" >&2
      builtin kill -KILL "$owner" ${users[@]+"${users[@]}"} 2>/dev/null
    elif ((${#users[@]} > 0)); then
      builtin printf 'tnl.sh: %s started by pid %s %s: sending SIGKILL\n' "$started" "$owner" "$why" >&2
      builtin kill -KILL "${users[@]}" 2>/dev/null
    fi
    return
  fi
  if [[ -n $fd || $onlost == kill ]]; then
    builtin printf 'tnl.sh: lock %s lost: sending SIGKILL to pid %s%s\n' "$name" "$owner" "$others" >&2
    builtin kill -KILL "$owner" ${users[@]+"${users[@]}"} 2>/dev/null
  elif [[ -z $inter ]]; then
    builtin printf 'tnl.sh: lock %s lost (tnl-lock status %s, the lock is free): sending SIGKILL to pid %s%s\n' "$name" "${8-}" "$owner" "$others" >&2
    builtin kill -KILL "$owner" ${users[@]+"${users[@]}"} 2>/dev/null
  elif ((${#users[@]} > 0)); then
    builtin printf 'tnl.sh: lock %s lost (tnl-lock status %s, the lock is free): sending SIGKILL to %s started by pid %s\n' "$name" "${8-}" "$started" "$owner" >&2
    builtin kill -KILL "${users[@]}" 2>/dev/null
  else
    builtin printf 'tnl.sh: lock %s lost (tnl-lock status %s)\n' "$name" "${8-}" >&2
  fi
}

# __tnl_users [SKIP]: sets the caller's users to the pids of the processes
# that have the holder's standard input, the lock's pipe, open: the shell
# that took the lock and what it started since (they inherit the pipe;
# bash cannot mark it close-on-exec), where /proc shows them (Linux; a
# process of another user does not show). Not the holder itself, nor SKIP
# (tnl-lock, which has it as its standard input too), nor the caller's
# owner, which is named on its own. Sets the caller's started to "N
# process(es)", and others to " and N process(es) it started" (or nothing).
__tnl_users() {
  local f p skip=" $BASHPID ${1-} $owner "
  users=()
  for f in /proc/[0-9]*/fd/[0-9]*; do
    p=${f#/proc/}
    p=${p%%/*}
    if [[ $skip != *" $p "* && $f -ef /dev/stdin ]]; then
      users+=("$p")
      skip+="$p "
    fi
  done
  case ${#users[@]} in
  1) started='1 process' ;;
  *) started="${#users[@]} processes" ;;
  esac
  others=" and $started it started"
  if ((${#users[@]} == 0)); then
    others=''
  fi
}
