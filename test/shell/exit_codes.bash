# shellcheck shell=bash source-path=SCRIPTDIR
# Exit statuses, as tnl-do's: 123 (or -E N) not granted or the wait ran out,
# 125 server unreachable, 2 usage errors; for a function (in this shell), for
# an external command (under tnl-do) and for tnl_acquire.
# stderr: (?m)^with_lock: unknown flag --bogus \(see with_lock --help\)$
# stderr: (?m)^with_lock: missing command after lock name ec-usage$
# stderr: (?m)^tnl_acquire: lock ec-twice is already held by this shell$
# stderr: (?m)^with_lock: invalid lock name "@x": use letters, digits
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

ran() { echo "ran $*"; }
hold ec-busy

# Not granted.
st with_lock ec-busy ran
#> rc=123
st with_lock -E 42 ec-busy ran
#> rc=42
st with_lock --conflict-exit-code=0 ec-busy ran
#> rc=0
st with_lock -w 300ms ec-busy ran
#> rc=123
st with_lock -E7 -w 0.2 ec-busy ran
#> rc=7
st tnl_acquire ec-busy
#> rc=123
st tnl_acquire -E 9 ec-busy
#> rc=9
st with_lock ec-busy sh -c 'echo not run'
#> rc=123
st with_lock -E 42 ec-busy sh -c 'echo not run'
#> rc=42
echo "held: [$(tnl_held)]"
#> held: []

# Granted once the holder lets go within the wait.
unhold ec-busy
st with_lock -w 5s ec-busy ran after
#> ran after
#> rc=0

# Unreachable server: a server started and killed, so its port is closed.
start_server
kill -KILL "$SRV_PID"
wait "$SRV_PID" || :
dead=$SRV_ADDR
st with_lock -s "$dead" ec-dead ran
#> rc=125
st tnl_acquire --server "$dead" ec-dead
#> rc=125
TNL_SERVER=$dead st tnl_acquire ec-dead
#> rc=125
st with_lock --server="$dead" ec-dead sh -c 'echo not run'
#> rc=125

# Usage errors: 2, one line on stderr, nothing run, nothing held.
st with_lock
#> rc=2
st with_lock ec-usage
#> rc=2
st with_lock ec-usage --
#> rc=2
st with_lock --bogus ec-usage ran
#> rc=2
st with_lock -w ec-usage
#> rc=2
st with_lock --on-lost maybe ec-usage ran
#> rc=2
st with_lock --kill-after soon ec-usage ran
#> rc=2
st with_lock -E 256 ec-usage ran
#> rc=2
st with_lock --shared=yes ec-usage ran
#> rc=2
st with_lock 'bad name' ran
#> rc=2
st with_lock '@x' ran
#> rc=2
st with_lock --retry 3 ec-usage ran
#> rc=2
st tnl_acquire
#> rc=2
st tnl_acquire ec-usage extra
#> rc=2
st tnl_acquire -c ec-usage
#> rc=2
st tnl_release ec-usage
#> rc=2
st tnl_fence ec-usage
#> rc=2
tnl_acquire ec-twice
st tnl_acquire ec-twice
#> rc=2
st with_lock ec-twice ran
#> rc=2
# tnl-lock's own checks (here --limit) come back as 2 as well.
st with_lock --limit 0 ec-usage ran
#> rc=2
echo "held: [$(tnl_held)]"
#> held: [ec-twice]

# Help is not an error. (sed reads it all: head would leave the writer to a
# SIGPIPE, which set -o pipefail turns into the script's end.)
with_lock --help | sed -n 1p
#> usage: with_lock [FLAGS] NAME [--] COMMAND [ARG...]
tnl_acquire -h | sed -n 1p
#> usage: tnl_acquire [FLAGS] NAME

# An external command's own statuses pass through tnl-do: 126, 127.
st with_lock ec-exec "$T"
#> rc=126
st with_lock ec-exec /nonexistent/command
#> rc=127
