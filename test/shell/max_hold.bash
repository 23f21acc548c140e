# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2016 # single quotes: expanded by the command
# --max-hold D caps a lock that tnl_acquire or with_lock holds: at D after
# the grant the server takes it away, and that is a lost lock like any other
# (SIGTERM to the script, 122; tnl-do stops an external command).
# needs: tnl-lock --max-hold
# stderr: (?m)^tnl-do: lock mh-b lost: maximum hold of 1s reached
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

# The child runs builtins only once it holds the lock (its fifo is made
# before): a SIGTERM that lands while bash forks has been seen to lose the
# trap under load.
child mh-acquire <<'CHILD'
trap 'if tnl_held mh-a; then echo "TERM: still held"; else echo "TERM: mh-a gone"; fi; exit 3' TERM
mkfifo "$T/mh-block"
exec {fd}<>"$T/mh-block"
rm -f "$T/mh-block"
tnl_acquire --max-hold 1s mh-a
echo "holding mh-a"
while :; do
  read -r -t 0.05 -u "$fd" _ || :
done
CHILD
spawn2 mh-acquire
expect_line "$CHILD_OUT"
#> holding mh-a
expect_tnl_sh_line "$CHILD_ERR"
#> tnl.sh: lock mh-a lost: sending SIGTERM to pid PID
expect_line "$CHILD_OUT"
#> TERM: mh-a gone
st wait "$CHILD_PID"
#> rc=3
probe mh-a -w 2s
#> mh-a: free

# An external command runs under tnl-do, which stops it at the cap.
mkfifo "$T/never"
exec {never}<>"$T/never"
st with_lock --max-hold 1s mh-b sh -c 'echo "running under $TNL_LOCK"; read -r _' <&"$never"
#> running under mh-b
#> rc=122
probe mh-b
#> mh-b: free
