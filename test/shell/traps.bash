# shellcheck shell=bash source-path=SCRIPTDIR
# The script's own traps are never replaced, whether set before sourcing
# tnl.sh or after taking a lock, and the locks are released when the script
# ends: by exit (after its own EXIT trap ran, still under the lock), by set -e,
# and by a signal, trapped or not.
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

# An EXIT trap set after taking the lock runs, and runs under the lock.
child exit-trap <<'CHILD'
tnl_acquire tr-exit
trap 'echo "own EXIT trap: $(probe tr-exit)"' EXIT
echo "exiting"
CHILD
spawn exit-trap
expect_line "$CHILD_OUT"
#> exiting
expect_line "$CHILD_OUT"
#> own EXIT trap: tr-exit: busy rc=123
st wait "$CHILD_PID"
#> rc=0
probe tr-exit -w 1s
#> tr-exit: free

# set -e: a failing command under with_lock ends the script with its status,
# the EXIT trap runs, the locks go.
child set-e <<'CHILD'
set -e
trap 'echo "EXIT trap after status $?"' EXIT
fails() { echo "before false"; false; echo "not reached"; }
tnl_acquire tr-set-e-other
with_lock tr-set-e fails
echo "not reached either"
CHILD
spawn set-e
expect_line "$CHILD_OUT"
#> before false
expect_line "$CHILD_OUT"
#> EXIT trap after status 1
st wait "$CHILD_PID"
#> rc=1
probe tr-set-e -w 1s
#> tr-set-e: free
probe tr-set-e-other -w 1s
#> tr-set-e-other: free

# INT and TERM traps set before sourcing stay; they run on those signals and
# the locks go when the script exits.
child_raw sig-traps <<'CHILD'
trap 'echo "own TERM trap"; exit 3' TERM
trap 'echo "own INT trap"' INT
before=$(trap -p)
TNL_TEST_CHILD=1 source "$TNL_SH_TESTLIB"
tnl_acquire tr-sig
with_lock tr-sig2 true
after=$(trap -p)
if [[ $before == "$after" ]]; then echo "traps unchanged"; else echo "traps changed: $after"; fi
block
CHILD
spawn sig-traps
expect_line "$CHILD_OUT"
#> traps unchanged
kill -TERM "$CHILD_PID"
expect_line "$CHILD_OUT"
#> own TERM trap
st wait "$CHILD_PID"
#> rc=3
probe tr-sig -w 1s
#> tr-sig: free

# No trap at all: SIGTERM ends the script, the lock goes.
child no-trap <<'CHILD'
tnl_acquire tr-no-trap
echo "holding"
block
CHILD
spawn no-trap
expect_line "$CHILD_OUT"
#> holding
kill -TERM "$CHILD_PID"
st wait "$CHILD_PID"
#> rc=143
probe tr-no-trap -w 1s
#> tr-no-trap: free
