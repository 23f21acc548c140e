# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2016 # single quotes: expanded by the command
# tnl.sh defines only with_lock, tnl_* and __tnl_* names, changes no option
# or trap of the caller, may be sourced twice (even from a function), and its
# holders are nobody's child: `wait` and `jobs` in the script do not see them.
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

# Names: a fresh bash before and after sourcing.
bash --norc --noprofile -c '
  before_f=$(compgen -A function) before_v=$(compgen -v)
  source "$TNL_SH"
  comm -13 <(echo "$before_f" | sort) <(compgen -A function | sort) | grep -Ev "^(with_lock|tnl_.*|__tnl_.*)$" || echo "functions: only with_lock, tnl_*, __tnl_*"
  comm -13 <(echo "$before_v" | sort) <(compgen -v | sort) | grep -Ev "^(__tnl_.*|before_f|before_v|BASH_REMATCH|PIPESTATUS|_)$" || echo "variables: only __tnl_*"
  compgen -A function | grep -E "^tnl_|^with_lock" | tr "\n" " "; echo
'
#> functions: only with_lock, tnl_*, __tnl_*
#> variables: only __tnl_*
#> tnl_acquire tnl_fence tnl_held tnl_lease_acquire tnl_lease_held tnl_lease_release tnl_lease_renew tnl_release with_lock 

# Options and traps: the same before and after every public function, under
# odd options as well (plain mode runs this with bash's defaults).
shopt -s nullglob extglob
set -E
trap 'echo "ERR trap ran (it should not) at line $LINENO"' ERR
state() { echo "$- $(shopt -p) $(set -o) $(trap -p)"; }
before=$(state)
f() { :; }
tnl_acquire hy-a
with_lock hy-b f
with_lock hy-c true
with_lock hy-c sh -c true
st with_lock hy-c /nonexistent 2>/dev/null
#> rc=127
tnl_held >/dev/null
tnl_fence hy-a >/dev/null
st tnl_acquire hy-a 2>/dev/null
#> rc=2
tnl_release hy-a
if [[ $(state) == "$before" ]]; then echo "options and traps unchanged"; else diff <(echo "$before") <(state); fi
#> options and traps unchanged
trap - ERR
set +E
shopt -u nullglob extglob

# Sourcing again keeps what is held; so does sourcing from a function.
tnl_acquire hy-d
# shellcheck source=../../shell/tnl.sh
source "$TNL_SH"
load() { source "$TNL_SH"; }
load
tnl_held
#> hy-d
tnl_release
echo "held: [$(tnl_held)]"
#> held: []

# Holders are not jobs of the script.
tnl_acquire hy-e
with_lock hy-e2 eval 'echo "jobs: [$(jobs -p)]"'
#> jobs: []
echo "jobs: [$(jobs -p)]"
#> jobs: []
true &
wait
echo "wait returned"
#> wait returned
tnl_release hy-e

# Subshells see their parent's locks but cannot release them; their own go
# when they end.
tnl_acquire hy-f
(
  echo "subshell sees [$(tnl_held)]"
  st tnl_release hy-f 2>/dev/null
  tnl_acquire hy-g
  echo "subshell holds [$(tnl_held | tr '\n' ' ')]"
)
#> subshell sees [hy-f]
#> rc=2
#> subshell holds [hy-f hy-g ]
probe hy-g -w 1s
#> hy-g: free
echo "parent holds [$(tnl_held)]"
#> parent holds [hy-f]

# A child that inherited the holder's pipe does not keep tnl_release waiting.
mkfifo "$T/hold-open"
read -r _ <>"$T/hold-open" &
bg=$!
st tnl_release hy-f
#> rc=0
probe hy-f
#> hy-f: free
kill "$bg"
wait "$bg" || :

# Fencing tokens grow per name.
tnl_acquire hy-h
one=$(tnl_fence hy-h)
tnl_release hy-h
tnl_acquire hy-h
two=$(tnl_fence hy-h)
tnl_release hy-h
if ((two > one)); then echo "fence grew"; fi
#> fence grew

# An interactive bash --norc (job control may be on there) works the same.
bash --norc -i -c 'source "$TNL_SH"; f() { g=set; }; with_lock hy-i f; tnl_acquire hy-j; echo "g=$g held=$(tnl_held)"' 2>/dev/null
#> g=set held=hy-j
probe hy-j -w 1s
#> hy-j: free
