# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2016 # single quotes: expanded by the child
# shellcheck disable=SC2119 # the lease functions take no arguments here
# Leases end to end, against the real tnl-lock and tnl-server: a lease is
# held by its id, not by the shell, so it outlives the script that took it;
# renew, is-held and release act on the id (default $TNL_LEASE) from any
# shell; the server ends it at its TTL or maximum hold. Statuses are
# tnl-lock's: 0, 123 (-E N), 122 gone, 125 unreachable, 2 usage.
# needs: tnl-lock --ttl
# stderr: (?m)^tnl_lease_acquire: missing TTL after lock name ls-usage \(such as 2h or 30m\)$
# stderr: (?m)^tnl_lease_acquire: flag --on-lost does not apply to a lease: no process of this shell holds it$
# stderr: (?m)^tnl_lease_renew: flag -w does not apply to tnl_lease_renew \(see tnl_lease_renew --help\)$
# stderr: (?m)^tnl_lease_release: no lease id: give one, or take a lease first \(TNL_LEASE is not set\)$
# stderr: (?m)^tnl_lease_held: empty lease id$
# stderr: (?m)^tnl_acquire: flag --ttl takes a lease, which no process holds: use tnl_lease_acquire NAME TTL$
# stderr: (?m)^tnl-lock: lease ([0-9a-f]{8} )?(of ls-a )?not held: no such lease$
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

# until_eof FD: reads FD to its end (lines to stderr) and prints "<eof>", or
# "open after 10s" when it has not ended by then.
until_eof() {
  local line st
  while :; do
    st=0
    IFS= read -r -t 10 line <&"$1" || st=$?
    if ((st > 128)); then
      echo "open after 10s"
      return
    elif ((st != 0)); then
      echo "<eof>"
      return
    fi
    echo "$line" >&2
  done
}

# Taken: the three variables, exported; the lock is busy for everyone else,
# and this shell holds no process for it.
st tnl_lease_acquire ls-a 1h
#> rc=0
bash --norc --noprofile -c '
  [[ $TNL_LEASE =~ ^[0-9a-f]{32}$ ]] && echo "TNL_LEASE: 32 hex digits"
  ((TNL_FENCE > 0)) && echo "TNL_FENCE: a token"
  echo "TNL_LOCK: $TNL_LOCK"'
#> TNL_LEASE: 32 hex digits
#> TNL_FENCE: a token
#> TNL_LOCK: ls-a
probe ls-a
#> ls-a: busy rc=123
echo "held by the shell: [$(tnl_held)] jobs: [$(jobs -p)]"
#> held by the shell: [] jobs: []
st tnl_lease_held
#> rc=0
st tnl_lease_renew
#> rc=0
st tnl_lease_renew --ttl 2h
#> rc=0
a=$TNL_LEASE

# Released: free again; the variables go; the id is no use any more.
st tnl_lease_release
#> rc=0
echo "after: ${TNL_LEASE-unset} ${TNL_FENCE-unset} ${TNL_LOCK-unset}"
#> after: unset unset unset
probe ls-a
#> ls-a: free
st tnl_lease_held "$a"
#> rc=122
st tnl_lease_held -v "$a"
#> rc=122
st tnl_lease_renew "$a" 2>/dev/null
#> rc=122
st tnl_lease_release "$a" 2>/dev/null
#> rc=122

# The point: a lease outlives the script that took it, however it ends (here
# exit, and kill -9), and another shell releases it by its id.
child taker <<'CHILD'
tnl_lease_acquire "$1" 1h
echo "$TNL_LEASE" >"$T/$1.id"
echo "took $1"
if [[ $2 == kill ]]; then
  kill -KILL "$BASHPID"
fi
CHILD
spawn taker ls-b exit
expect_line "$CHILD_OUT"
#> took ls-b
st wait "$CHILD_PID"
#> rc=0
spawn taker ls-c kill
expect_line "$CHILD_OUT"
#> took ls-c
st wait "$CHILD_PID"
#> rc=137
probe ls-b -w 300ms
#> ls-b: busy rc=123
probe ls-c -w 300ms
#> ls-c: busy rc=123
st tnl_lease_held "$(<"$T/ls-b.id")"
#> rc=0
bash --norc --noprofile -c 'source "$TNL_SH"; tnl_lease_release "$1"; echo "rc=$?"' _ "$(<"$T/ls-b.id")"
#> rc=0
TNL_LEASE=$(<"$T/ls-c.id") st tnl_lease_release
#> rc=0
probe ls-b
#> ls-b: free
probe ls-c
#> ls-c: free

# Its TTL ends it: the server gives the lock to a waiter then (a wait on tnl's
# own -w deadline, nothing sleeps here), and the id is no use any more.
tnl_lease_acquire ls-ttl 300ms
hold ls-ttl -w 20s
unhold ls-ttl
st tnl_lease_held
#> rc=122
st tnl_lease_renew 2>/dev/null
#> rc=122
# So does a maximum hold, however it is renewed.
tnl_lease_acquire --max-hold 2s ls-mh 1h
st tnl_lease_renew --ttl 1h
#> rc=0
hold ls-mh -w 20s
unhold ls-mh
st tnl_lease_held
#> rc=122

# Not granted: 123, or -E N; -w waits; the variables stay as they were.
tnl_lease_acquire ls-keep 1h
kept=$TNL_LEASE
hold ls-busy
st tnl_lease_acquire ls-busy 1h
#> rc=123
st tnl_lease_acquire -E 7 ls-busy 1h
#> rc=7
st tnl_lease_acquire -w 200ms ls-busy 1h
#> rc=123
[[ $TNL_LEASE == "$kept" && $TNL_LOCK == ls-keep ]] && echo "variables kept"
#> variables kept
# A wait with standard input at its end (as under cron) still waits, and
# does not read the script's input.
child waiter <<'CHILD'
tnl_lease_acquire -v -w 30s ls-busy 1h
echo "rc=$? lock=$TNL_LOCK"
read -r line
echo "input still there: $line"
CHILD
rm -f "$T/waiter.out" "$T/waiter.err"
mkfifo "$T/waiter.out" "$T/waiter.err"
printf 'first line\n' | bash --norc --noprofile "$T/waiter.bash" >"$T/waiter.out" 2>"$T/waiter.err" &
CHILD_PID=$!
exec {CHILD_OUT}<"$T/waiter.out" {CHILD_ERR}<"$T/waiter.err"
wait_for_line "$CHILD_ERR" '^tnl-lock: waiting for ls-busy'
#> saw: ^tnl-lock: waiting for ls-busy
unhold ls-busy
expect_line "$CHILD_OUT"
#> rc=0 lock=ls-busy
expect_line "$CHILD_OUT"
#> input still there: first line
st wait "$CHILD_PID"
#> rc=0
probe ls-busy
#> ls-busy: busy rc=123
# A script killed while it waits leaves no lease behind: its end ends the wait.
hold ls-w
child dies-waiting <<'CHILD'
tnl_lease_acquire -v -w inf ls-w 1h
echo "not reached"
CHILD
spawn2 dies-waiting
wait_for_line "$CHILD_ERR" '^tnl-lock: waiting for ls-w'
#> saw: ^tnl-lock: waiting for ls-w
kill -KILL "$CHILD_PID"
st wait "$CHILD_PID"
#> rc=137
# tnl-lock goes too, and its end closes the child's stderr (a deadline of
# 10s, not a sleep: the end of file comes as soon as it is gone).
until_eof "$CHILD_ERR"
#> <eof>
unhold ls-w
probe ls-w -w 2s
#> ls-w: free

# Shared leases, side by side; an exclusive one waits for both.
tnl_lease_acquire --shared ls-sh 1h
s1=$TNL_LEASE
tnl_lease_acquire --shared ls-sh 1h
s2=$TNL_LEASE
probe ls-sh --shared
#> ls-sh: free
probe ls-sh
#> ls-sh: busy rc=123
tnl_lease_release "$s1"
tnl_lease_release "$s2"
probe ls-sh
#> ls-sh: free

# Unreachable server: 125.
start_server
kill -KILL "$SRV_PID"
wait "$SRV_PID" || :
st tnl_lease_acquire -s "$SRV_ADDR" ls-dead 1h 2>/dev/null
#> rc=125
st tnl_lease_held -s "$SRV_ADDR" "$kept" 2>/dev/null
#> rc=125
st tnl_lease_renew --server="$SRV_ADDR" "$kept" 2>/dev/null
#> rc=125
st tnl_lease_release -s "$SRV_ADDR" "$kept" 2>/dev/null
#> rc=125
st tnl_lease_held "$kept"
#> rc=0

# Usage errors: 2, one line, nothing taken.
st tnl_lease_acquire ls-usage
#> rc=2
st tnl_lease_acquire ls-usage 1h extra
#> rc=2
st tnl_lease_acquire --on-lost kill ls-usage 1h
#> rc=2
st tnl_lease_acquire -c ls-usage 1h
#> rc=2
st tnl_lease_acquire '@x' 1h
#> rc=2
st tnl_lease_acquire ls-usage soon 2>/dev/null
#> rc=2
st tnl_lease_acquire ls-usage inf 2>/dev/null
#> rc=2
st tnl_lease_renew -w 5s
#> rc=2
st tnl_lease_renew "$kept" extra
#> rc=2
st tnl_lease_held ''
#> rc=2
st tnl_acquire --ttl 1h ls-usage
#> rc=2
(
  unset -v TNL_LEASE
  st tnl_lease_release
)
#> rc=2
probe ls-usage
#> ls-usage: free
tnl_lease_held --help | sed -n 1p
#> usage: tnl_lease_held [FLAGS] [ID]

# Options and traps of the caller: the same after every lease function.
shopt -s nullglob extglob
set -E
trap 'echo "ERR trap ran (it should not) at line $LINENO"' ERR
state() { echo "$- $(shopt -p) $(set -o) $(trap -p)"; }
before=$(state)
tnl_lease_acquire ls-opts 1h
tnl_lease_renew
tnl_lease_held
tnl_lease_held "$a" || :
tnl_lease_acquire ls-opts 1h 2>/dev/null || :
tnl_lease_release
if [[ $(state) == "$before" ]]; then echo "options and traps unchanged"; else diff <(echo "$before") <(state); fi
#> options and traps unchanged
trap - ERR
set +E
shopt -u nullglob extglob
tnl_lease_release "$kept"
