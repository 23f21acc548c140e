# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2016 # single quotes: expanded by the fake tnl-lock
# shellcheck disable=SC2119 # the lease functions take no arguments here
# tnl_lease_acquire takes in tnl-lock --ttl's three lines only when each has
# its exact form, and never evaluates them; the lease id reaches tnl-lock in
# its environment, not its arguments (ps shows those), and never a trace of
# set -x. A fake tnl-lock first on PATH prints what FAKE says.
# stderr: (?m)^tnl_lease_acquire: tnl-lock --ttl printed something else than the lease of lo-a; not taking it in \(a lease it took ends at its TTL\)$
# shellcheck source=testlib.sh
source "$TNL_SH_TESTLIB"

mkdir "$T/fake"
cat >"$T/fake/tnl-lock" <<'FAKE'
#!/bin/bash
printf 'args: %s | env: %s\n' "$*" "${TNL_LEASE-unset}" >>"$T/fake.log"
id=0123456789abcdef0123456789abcdef name=${*: -1}
[[ $1 == --ttl=* ]] || exit 0
case $FAKE in
good) printf "export TNL_LEASE='%s'\nexport TNL_FENCE='%s'\nexport TNL_LOCK='%s'\n" "$id" 42 "$name" ;;
inject) printf "export TNL_LEASE='%s'; touch %s/pwned\nexport TNL_FENCE='42'\nexport TNL_LOCK='%s'\n" "$id" "$T" "$name" ;;
quote) printf "export TNL_LEASE='%s'\nexport TNL_FENCE='42'\nexport TNL_LOCK='%s'\$(touch %s/pwned)'\n" "$id" "$name" "$T" ;;
upper) printf "export TNL_LEASE='%s'\nexport TNL_FENCE='42'\nexport TNL_LOCK='%s'\n" "${id^^}" "$name" ;;
short) printf "export TNL_LEASE='%s'\nexport TNL_FENCE='42'\nexport TNL_LOCK='%s'\n" "${id:1}" "$name" ;;
fence) printf "export TNL_LEASE='%s'\nexport TNL_FENCE='4 2'\nexport TNL_LOCK='%s'\n" "$id" "$name" ;;
other) printf "export TNL_LEASE='%s'\nexport TNL_FENCE='42'\nexport TNL_LOCK='%s'\n" "$id" "x$name" ;;
order) printf "export TNL_FENCE='42'\nexport TNL_LEASE='%s'\nexport TNL_LOCK='%s'\n" "$id" "$name" ;;
more) printf "export TNL_LEASE='%s'\nexport TNL_FENCE='42'\nexport TNL_LOCK='%s'\nexport PATH=/x\n" "$id" "$name" ;;
crlf) printf "export TNL_LEASE='%s'\r\nexport TNL_FENCE='42'\r\nexport TNL_LOCK='%s'\r\n" "$id" "$name" ;;
none) ;;
esac
FAKE
chmod +x "$T/fake/tnl-lock"
PATH=$T/fake:$PATH
export FAKE T

# The exact form: taken in, exported (a child sees it), argv without the id.
FAKE=good st tnl_lease_acquire -w 5s --max-hold 1h 'lo.a/b:c@d' 2h
#> rc=0
bash --norc --noprofile -c 'echo "$TNL_LEASE $TNL_FENCE $TNL_LOCK"'
#> 0123456789abcdef0123456789abcdef 42 lo.a/b:c@d
tail -n 1 "$T/fake.log"
#> args: --ttl=2h --wait 5s --max-hold 1h lo.a/b:c@d | env: unset

# Anything else: 125, one line (without the output: it may hold the id),
# nothing run, nothing set.
for FAKE in inject quote upper short fence other order more crlf none; do
  st tnl_lease_acquire lo-a 1h 2>>"$T/err"
done
#> rc=125
#> rc=125
#> rc=125
#> rc=125
#> rc=125
#> rc=125
#> rc=125
#> rc=125
#> rc=125
#> rc=125
cat "$T/err" >&2
grep -c 0123456789abcdef "$T/err" || :
#> 0
ls "$T/pwned" 2>/dev/null || echo "nothing run"
#> nothing run
echo "$TNL_LEASE $TNL_FENCE $TNL_LOCK"
#> 0123456789abcdef0123456789abcdef 42 lo.a/b:c@d

# renew, is-held and release hand the id over in the environment only; a
# release of the lease in TNL_LEASE unsets the three variables.
tnl_lease_renew --ttl 30m
tnl_lease_held
tnl_lease_release ffffffffffffffffffffffffffffffff
echo "after another's release: ${TNL_LOCK-unset}"
#> after another's release: lo.a/b:c@d
tnl_lease_release
echo "after its release: ${TNL_LEASE-unset} ${TNL_FENCE-unset} ${TNL_LOCK-unset}"
#> after its release: unset unset unset
tail -n 4 "$T/fake.log"
#> args: --renew --ttl 30m | env: 0123456789abcdef0123456789abcdef
#> args: --is-held | env: 0123456789abcdef0123456789abcdef
#> args: --release | env: ffffffffffffffffffffffffffffffff
#> args: --release | env: 0123456789abcdef0123456789abcdef

# Under set -x the trace shows the calls, never the id; -x stays on.
FAKE=good
set -x
{
  tnl_lease_acquire lo-x 1h
  tnl_lease_renew
  tnl_lease_held
  tnl_lease_release
} 2>"$T/trace"
tnl_lease_renew 0123456789abcdef0123456789abcdef 2>"$T/trace2" || :
{ set +x; } 2>/dev/null
grep -c 0123456789abcdef "$T/trace" || :
#> 0
grep -c '^+ tnl_lease_held$' "$T/trace"
#> 1
# (the caller's own line shows an id it passes: that is the caller's trace)
grep -c '0123456789abcdef' "$T/trace2"
#> 1
