# shellcheck shell=bash source-path=SCRIPTDIR
# kill -9 of a script that holds locks (taken with tnl_acquire, and held by
# with_lock around a function) frees them within a second: another client
# asking with a 1s deadline gets them. No trap is involved: the holder reads
# end of file on the pipe the dead shell had open.
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

child holder <<'CHILD'
held_block() { echo "in block: $(tnl_held | tr '\n' ' ')"; block; }
tnl_acquire k9-acquired
with_lock k9-with-lock held_block
CHILD
spawn holder
expect_line "$CHILD_OUT"
#> in block: k9-acquired k9-with-lock 
probe k9-acquired
#> k9-acquired: busy rc=123
kill -KILL "$CHILD_PID"
st wait "$CHILD_PID"
#> rc=137
probe k9-acquired -w 1s
#> k9-acquired: free
probe k9-with-lock -w 1s
#> k9-with-lock: free
