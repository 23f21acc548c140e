# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2016 # single quotes: expanded by the command
# with_lock runs a function or builtin in the calling shell: globals it sets
# are there afterwards; it sees TNL_LOCK and TNL_FENCE; its status is passed
# on; the lock is held while it runs and free afterwards. An external command
# runs under tnl-do with the same statuses.
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

counter=0
bump() {
  counter=$((counter + 1))
  last_lock=$TNL_LOCK
  fences+=("$TNL_FENCE")
  probe wl-counter
}
with_lock wl-counter bump
#> wl-counter: busy rc=123
with_lock wl-counter bump
#> wl-counter: busy rc=123
echo "counter=$counter last_lock=$last_lock"
#> counter=2 last_lock=wl-counter
if ((fences[1] > fences[0] && fences[0] > 0)); then echo "fencing tokens grow"; fi
#> fencing tokens grow
echo "TNL_LOCK after: ${TNL_LOCK-unset}"
#> TNL_LOCK after: unset
probe wl-counter
#> wl-counter: free
echo "held: [$(tnl_held)]"
#> held: []

# A builtin runs here too: eval, read, printf -v set variables of this shell.
from_eval='' from_read='' from_printf='' dashes=''
with_lock wl-builtin eval 'from_eval=yes'
with_lock wl-builtin read -r from_read <<<"line read under the lock"
with_lock wl-builtin printf -v from_printf '%s' "printf -v"
echo "$from_eval / $from_read / $from_printf"
#> yes / line read under the lock / printf -v

# Statuses: the command's own, and nested locks of other names.
three() { return 3; }
st with_lock wl-status three
#> rc=3
inner() {
  echo "inner holds: $(tnl_held | tr '\n' ' ')"
}
outer() { with_lock wl-inner inner; }
with_lock wl-outer outer
#> inner holds: wl-outer wl-inner 
# Flags before NAME, and -- around it.
with_lock -w 5s --client-id tester -- wl-dashes -- eval 'dashes=ok'
echo "dashes=$dashes"
#> dashes=ok

# An external command: tnl-do runs it, with the lock in its environment.
st with_lock wl-external sh -c 'echo "external sees $TNL_LOCK"; exit 4'
#> external sees wl-external
#> rc=4
# `command` keeps an external program in this shell's care instead.
st with_lock wl-external command sh -c 'echo "command sees $TNL_LOCK"; exit 5'
#> command sees wl-external
#> rc=5
probe wl-external
#> wl-external: free
