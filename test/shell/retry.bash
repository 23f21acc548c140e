# shellcheck shell=bash source-path=SCRIPTDIR
# --retry: with_lock --retry N --retry-wait S NAME COMMAND (an external
# command, run by tnl-do) asks the server N+1 times, then returns 123 (or
# -E); without --retry, with_lock (an external command or a function) and
# tnl_acquire ask once and return at once, whatever --retry-wait says
# (tnl-do's default is 10s). The server counts the asks
# (lock_not_acquired_count). Each call runs in a child shell under timeout
# 5s, a bound and not a synchronisation: an ask too many then waits out a
# 10s or 30s retry wait and shows as rc=124, in 5 seconds.
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

hold rt-busy
child try <<'EOF2'
ran() { echo "ran $*"; }
"$@"
EOF2
asks() { tnl-stats --json | grep -o '"lock_not_acquired_count": [0-9]*' | grep -o '[0-9]*$'; }
# tries FUNCTION ARG...: runs tnl.sh's FUNCTION in a child shell, bounded;
# prints its status and how many times it asked.
tries() {
  local before after rc=0
  before=$(asks)
  timeout -k 1 5 bash --norc --noprofile "$T/try.bash" "$@" || rc=$?
  after=$(asks)
  echo "rc=$rc asked=$((after - before))"
}

tries with_lock --retry 2 --retry-wait 0.05 rt-busy sh -c 'echo not run'
#> rc=123 asked=3
tries with_lock -E 7 --retry=1 --retry-wait=0.05 rt-busy sh -c 'echo not run'
#> rc=7 asked=2
tries with_lock --retry 0 --retry-wait 30 rt-busy sh -c 'echo not run'
#> rc=123 asked=1
tries with_lock rt-busy sh -c 'echo not run'
#> rc=123 asked=1
tries with_lock rt-busy ran
#> rc=123 asked=1
tries with_lock -w 0.05 rt-busy ran
#> rc=123 asked=1
tries tnl_acquire rt-busy
#> rc=123 asked=1
unhold rt-busy
