# shellcheck shell=bash source-path=SCRIPTDIR
# A lock lost while held (here: its server killed) is never silent. By
# default the script gets SIGTERM and a line on stderr; its TERM trap runs and
# finds the lock gone (tnl_held) and tnl_release says 122. --on-lost kill
# sends SIGKILL, --on-lost ignore only writes the line (with_lock and
# tnl_release then return 122), and --kill-after follows SIGTERM with SIGKILL.
# Locks on another server are not affected, and go when the script ends.
# tnl-lock's own line for the loss, and the one line from tnl.sh:
# stderr: (?m)^tnl-lock: lock lost-a lost: connection to server .* ended
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

start_server
export OTHER=$SRV_ADDR

# lost_on_new_server CHILD: runs CHILD against a fresh server, waits for its
# first line, kills that server, and prints what tnl.sh said on stderr.
lost_on_new_server() {
  start_server
  TNL_SERVER=$SRV_ADDR spawn2 "$1"
  expect_line "$CHILD_OUT"
  kill -KILL "$SRV_PID"
  expect_tnl_sh_line "$CHILD_ERR"
}

# Default, with a TERM trap, while the script waits in a builtin.
child lost-trap <<'CHILD'
trap 'echo "got TERM, holding [$(tnl_held)]"; st tnl_release lost-a; exit 7' TERM
tnl_acquire lost-a
tnl_acquire -s "$OTHER" lost-b
echo "holding [$(tnl_held | tr '\n' ' ')]"
block
CHILD
lost_on_new_server lost-trap
#> holding [lost-a lost-b ]
#> tnl.sh: lock lost-a lost: sending SIGTERM to pid PID
expect_line "$CHILD_OUT"
#> got TERM, holding [lost-b]
expect_line "$CHILD_OUT"
#> rc=122
st wait "$CHILD_PID"
#> rc=7
probe lost-b -s "$OTHER" -w 1s
#> lost-b: free

# Default, no trap, while with_lock runs a function: the script ends by it.
child lost-no-trap <<'CHILD'
work() { echo "working"; block; }
with_lock lost-c work
echo "not reached"
CHILD
lost_on_new_server lost-no-trap
#> working
#> tnl.sh: lock lost-c lost: sending SIGTERM to pid PID
st wait "$CHILD_PID"
#> rc=143

# --on-lost kill.
child lost-kill <<'CHILD'
tnl_acquire --on-lost kill lost-d
echo "holding"
block
CHILD
lost_on_new_server lost-kill
#> holding
#> tnl.sh: lock lost-d lost: sending SIGKILL to pid PID
st wait "$CHILD_PID"
#> rc=137

# --kill-after: a TERM trap that carries on gets SIGKILL after the grace.
child lost-kill-after <<'CHILD'
trap 'echo "TERM, carrying on"' TERM
tnl_acquire --kill-after 300ms lost-e
echo "holding"
block
CHILD
lost_on_new_server lost-kill-after
#> holding
#> tnl.sh: lock lost-e lost: sending SIGTERM to pid PID
expect_line "$CHILD_OUT"
#> TERM, carrying on
expect_tnl_sh_line "$CHILD_ERR"
#> tnl.sh: pid PID still running 0.300s after SIGTERM: sending SIGKILL
st wait "$CHILD_PID"
#> rc=137

# --on-lost ignore: only the lines; the script goes on when told to, and
# finds both locks gone.
child lost-ignore <<'CHILD'
mkfifo "$T/go-f"
work() {
  echo "working"
  read -r _ <"$T/go-f"
  echo "after the loss, holding [$(tnl_held)]"
}
tnl_acquire --on-lost ignore lost-g
st with_lock --on-lost ignore lost-f work
st tnl_release lost-g
CHILD
start_server
TNL_SERVER=$SRV_ADDR spawn2 lost-ignore
expect_line "$CHILD_OUT"
#> working
kill -KILL "$SRV_PID"
{
  expect_tnl_sh_line "$CHILD_ERR"
  expect_tnl_sh_line "$CHILD_ERR"
} | sort
#> tnl.sh: lock lost-f lost (tnl-lock status 122)
#> tnl.sh: lock lost-g lost (tnl-lock status 122)
echo go >"$T/go-f"
expect_line "$CHILD_OUT"
#> after the loss, holding []
expect_line "$CHILD_OUT"
#> rc=122
expect_line "$CHILD_OUT"
#> rc=122
st wait "$CHILD_PID"
#> rc=0
