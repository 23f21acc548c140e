# shellcheck shell=bash source-path=SCRIPTDIR
# Two scripts race on one name, 25 times each, one with with_lock and one
# with tnl_acquire/tnl_release: their critical sections never overlap. The
# detector: mkdir of one directory fails if the other is inside, and a
# read-modify-write counter loses updates if two run at once.
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

echo 0 >"$T/counter"
child racer <<'CHILD'
critical() {
  if ! mkdir "$T/inside" 2>/dev/null; then
    echo "OVERLAP in $1"
  fi
  local n
  n=$(<"$T/counter")
  echo "$1 $n" >>"$T/trace"
  echo $((n + 1)) >"$T/counter"
  rmdir "$T/inside"
}
for i in $(seq 25); do
  if [[ $1 == with_lock ]]; then
    with_lock -w 60s race critical "$1:$i"
  else
    tnl_acquire -w 60s race
    critical "$1:$i"
    tnl_release race
  fi
done
echo "$1 done"
CHILD
bash --norc --noprofile "$T/racer.bash" with_lock >"$T/a.out" 2>&1 &
a=$!
bash --norc --noprofile "$T/racer.bash" tnl_acquire >"$T/b.out" 2>&1 &
b=$!
st wait "$a"
#> rc=0
st wait "$b"
#> rc=0
cat "$T/a.out" "$T/b.out"
#> with_lock done
#> tnl_acquire done
echo "counter=$(<"$T/counter")"
#> counter=50
probe race
#> race: free
