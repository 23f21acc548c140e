# shellcheck shell=bash source-path=SCRIPTDIR
# Signals for the script's process group (Ctrl-C, Ctrl-Z, `kill -- -PGID`)
# reach the script, not its lock holders: a script that traps them and
# carries on, or is stopped and continued, still holds its locks.
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

child sigs <<'CHILD'
trap 'echo "got INT"' INT
trap 'echo "got TERM"' TERM
tnl_acquire sg-a
with_lock sg-b eval 'echo "holding [$(tnl_held | tr "\n" " ")]"'
# Read and write, so that the open never blocks; the timeout lets a trap
# that bash held back run (see block in testlib.sh). A read that times out
# keeps what it got of a line in part: the next one goes on from there.
exec {ctl}<>"$T/ctl"
cmd=''
while :; do
  part='' rc=0
  IFS= read -r -t 0.2 -u "$ctl" part || rc=$?
  cmd+=$part
  if ((rc != 0)); then
    continue
  fi
  case $cmd in
  check) echo "holding [$(tnl_held)]" ;;
  quit) exit 0 ;;
  esac
  cmd=''
done
CHILD
mkfifo "$T/ctl"
# Job control for this one spawn: the child gets its own process group, as a
# job started from an interactive shell does, and its INT is not ignored.
set -m
spawn sigs
set +m
expect_line "$CHILD_OUT"
#> holding [sg-a sg-b ]
kill -INT -- "-$CHILD_PID"
expect_line "$CHILD_OUT"
#> got INT
kill -TERM -- "-$CHILD_PID"
expect_line "$CHILD_OUT"
#> got TERM
kill -TSTP -- "-$CHILD_PID"
probe sg-a
#> sg-a: busy rc=123
kill -CONT -- "-$CHILD_PID"
echo check >"$T/ctl"
expect_line "$CHILD_OUT"
#> holding [sg-a]
echo quit >"$T/ctl"
st wait "$CHILD_PID"
#> rc=0
probe sg-a -w 1s
#> sg-a: free
