# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2016 # single quotes: expanded by the command
# -w waits in the server's queue: tnl_acquire and with_lock return once the
# holder lets go (they wait on tnl-lock's granted line, nothing polls). A
# script that dies while it waits leaves nothing held behind.
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

hold wt-a
child waiter <<'CHILD'
tnl_acquire -v -w 30s wt-a
echo "got wt-a, holding [$(tnl_held)]"
f() { echo "f runs under $TNL_LOCK"; }
with_lock -v -w 30s wt-b f
CHILD
spawn2 waiter
# tnl-lock -v says it waits (after it asked; the server may still be about
# to queue it: then the grant just comes without a wait).
wait_for_line "$CHILD_ERR" '^tnl-lock: waiting for wt-a'
#> saw: ^tnl-lock: waiting for wt-a
hold wt-b
unhold wt-a
expect_line "$CHILD_OUT"
#> got wt-a, holding [wt-a]
wait_for_line "$CHILD_ERR" '^tnl-lock: waiting for wt-b'
#> saw: ^tnl-lock: waiting for wt-b
unhold wt-b
expect_line "$CHILD_OUT"
#> f runs under wt-b
st wait "$CHILD_PID"
#> rc=0
probe wt-a -w 1s
#> wt-a: free

# Killed while waiting: nothing stays held.
hold wt-c
child dies-waiting <<'CHILD'
tnl_acquire -v -w inf wt-c
echo "not reached"
CHILD
spawn2 dies-waiting
wait_for_line "$CHILD_ERR" '^tnl-lock: waiting for wt-c'
#> saw: ^tnl-lock: waiting for wt-c
kill -KILL "$CHILD_PID"
st wait "$CHILD_PID"
#> rc=137
unhold wt-c
probe wt-c -w 2s
#> wt-c: free

# A trap that runs while tnl_acquire waits and returns lets the wait go on;
# one that exits ends the script, and its wait with it.
hold wt-f
child trapped-waiting <<'CHILD'
trap 'echo "USR2 trap"' USR2
trap 'echo "TERM trap"; exit 4' TERM
tnl_acquire -v -w inf wt-f
echo "got wt-f"
tnl_acquire -v -w inf wt-g
echo "not reached"
CHILD
hold wt-g
spawn2 trapped-waiting
wait_for_line "$CHILD_ERR" '^tnl-lock: waiting for wt-f'
#> saw: ^tnl-lock: waiting for wt-f
kill -USR2 "$CHILD_PID"
expect_line "$CHILD_OUT"
#> USR2 trap
unhold wt-f
expect_line "$CHILD_OUT"
#> got wt-f
wait_for_line "$CHILD_ERR" '^tnl-lock: waiting for wt-g'
#> saw: ^tnl-lock: waiting for wt-g
kill -TERM "$CHILD_PID"
expect_line "$CHILD_OUT"
#> TERM trap
st wait "$CHILD_PID"
#> rc=4
unhold wt-g
probe wt-f -w 2s
#> wt-f: free
probe wt-g -w 2s
#> wt-g: free

# Names may start with '-' (tcpnetlock allows it): -- ends the flags.
tnl_acquire -- -wt-d
tnl_held
#> -wt-d
dashed() { echo "function under $TNL_LOCK"; }
with_lock -- -wt-e dashed
#> function under -wt-e
with_lock -- -wt-e sh -c 'echo "program under $TNL_LOCK"'
#> program under -wt-e
st tnl_release -wt-d
#> rc=0
