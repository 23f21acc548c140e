//go:build linux || darwin

package test

// Drift tests: shell/tnl.sh keeps its own copies of two rules of
// lib/protocol, because a sourced bash library cannot call Go. Each copy
// is run here, through bash, on a table of spellings and on a few
// thousand generated ones, and must agree with the Go rule on every one:
// the same accepted, the same refused, the same value.

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
)

// driftDurations are spellings worth a look by hand: every form the rule
// takes, its edges, and what it refuses.
var driftDurations = []string{
	"0", "00", "0.0", "5", "5.", ".5", "2.5", "0.3", "1.9999", "10", "123.456789012",
	"0.000000001", "0.0000000004", "0.0000000005", "0.0000000015", "1.000000007",
	"0s", "1ns", "1.4ns", "1.5ns", "1us", "1µs", "1μs", "250ms", "1.5s", ".5s", "5.s",
	"5m", "1.5m", "0.0000000000083m", "0.0000000000084m", "1h", "1h30m", "1.5h", "1h2m3s4ms5us6ns",
	"10s10s", "2562047h47m16.854775807s", "2562047h47m16.854775808s", "9223372036.854775807",
	"9223372036.854775808", "2562048h", "99999999999999999999", "9223372036854775807ns",
	"9223372036854775808ns", "0009223372036854775807ns",
	"", ".", "s", "5x", "5S", "5M", "5 s", " 5", "5 ", "+5", "-1", "-0", "-1s", "1e3", "0x10",
	"1_000", "1,5", "1..5", "1.5.5", "5s5", "1hm", "inf", "infinity", "NaN", "Inf", "5sec", "5d",
}

// driftNames: the same for lock names.
var driftNames = []string{
	"a", "Z", "0", "_", "-", "build-42", "-x", "a.b", "a/b", "a:b", "a@b", "x.", "x@",
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
	"", ".", "/", ":", "@", ".a", "/a", ":a", "@a", "a b", " a", "a ", "a,b", "a\tb", "a#b",
	"a*", "a?", "a[b]", "a$b", "a\\b", "a'b", "a\"b", "é", "aé", "a\xff", "ä", "Ａ",
	strings.Repeat("a", 255), strings.Repeat("a", 256), strings.Repeat("é", 100),
	"a" + strings.Repeat(".", 254), "a" + strings.Repeat(".", 255),
}

// driftGenerate makes n strings of up to max runes from alphabet, the
// same ones on every run.
func driftGenerate(seed uint64, n, max int, alphabet []string) []string {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for range rng.IntN(max + 1) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		out[i] = b.String()
	}
	return out
}

// driftBash runs fn, a tnl.sh function, on each input (one per line, so
// none may hold a newline) in one bash that sourced tnl.sh, under locale,
// and returns one answer line per input: what the script prints.
func driftBash(t *testing.T, locale, script string, inputs []string) []string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed to test shell/tnl.sh: %v", err)
	}
	lib, err := filepath.Abs(filepath.Join("..", "shell", "tnl.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for _, s := range inputs {
		if strings.ContainsRune(s, '\n') {
			t.Fatalf("input %q holds a newline", s)
		}
		in.WriteString(s + "\n")
	}
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c",
		`set -euo pipefail; source "$1"; while IFS= read -r d; do `+script+`; done`, "drift", lib)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=" + locale}
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(shellScriptTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("bash still running after %v", shellScriptTimeout)
	}
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("bash: %v\n%s", err, stderr.String())
	}
	out := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(out) != len(inputs) {
		t.Fatalf("bash answered %d lines for %d inputs", len(out), len(inputs))
	}
	return out
}

// driftLocales: tnl.sh runs in its caller's locale; a rule must not
// depend on it.
var driftLocales = []string{"C", "C.UTF-8"}

// TestDriftDuration: tnl.sh's __tnl_duration accepts what
// protocol.ParseDuration accepts, with the same nanoseconds, and refuses
// what it refuses.
func TestDriftDuration(t *testing.T) {
	alphabet := []string{"0", "1", "5", "9", ".", ".", "s", "m", "h", "ms", "us", "µs", "ns", "n", "u", "-", "+", "e", " ", "x", "S"}
	inputs := append(append([]string(nil), driftDurations...), driftGenerate(1, 3000, 7, alphabet)...)
	for _, locale := range driftLocales {
		out := driftBash(t, locale, `if __tnl_duration "$d"; then echo "$__tnl_ns"; else echo refused; fi`, inputs)
		bad := 0
		for i, s := range inputs {
			want := "refused"
			if d, err := protocol.ParseDuration(s); err == nil {
				want = strconv.FormatInt(int64(d), 10)
			}
			if out[i] != want && bad < 20 {
				bad++
				t.Errorf("LC_ALL=%s: duration %q: tnl.sh says %s, protocol.ParseDuration %s", locale, s, out[i], want)
			}
		}
	}
}

// TestDriftName: tnl.sh's __tnl_validname and protocol.ValidName agree on
// every name.
func TestDriftName(t *testing.T) {
	alphabet := []string{"a", "Z", "0", "_", "-", ".", "/", ":", "@", " ", ",", "é", "\t", "#", "*", "\xff", "ß"}
	inputs := append(append([]string(nil), driftNames...), driftGenerate(2, 3000, 5, alphabet)...)
	for _, locale := range driftLocales {
		out := driftBash(t, locale, `if __tnl_validname "$d"; then echo valid; else echo invalid; fi`, inputs)
		bad := 0
		for i, s := range inputs {
			want := "invalid"
			if protocol.ValidName(s) {
				want = "valid"
			}
			if out[i] != want && bad < 20 {
				bad++
				t.Errorf("LC_ALL=%s: name %q: tnl.sh says %s, protocol.ValidName %s", locale, s, out[i], want)
			}
		}
	}
}

// TestDriftTables: the tables above hold both answers, so that a rule that
// came to accept (or refuse) everything would not pass unseen.
func TestDriftTables(t *testing.T) {
	for _, tc := range []struct {
		what string
		in   []string
		ok   func(string) bool
	}{
		{"durations", driftDurations, func(s string) bool { _, err := protocol.ParseDuration(s); return err == nil }},
		{"names", driftNames, protocol.ValidName},
	} {
		yes := 0
		for _, s := range tc.in {
			if tc.ok(s) {
				yes++
			}
		}
		if yes < 10 || len(tc.in)-yes < 10 {
			t.Errorf("%s: %d accepted, %d refused; want at least 10 of each", tc.what, yes, len(tc.in)-yes)
		}
	}
}

// TestDriftDefaultAddr: the docs, tnl.sh's header and the completions name
// the default address and port that lib/protocol holds. A client's own
// address in an example (an ephemeral port, five digits) is not a default.
func TestDriftDefaultAddr(t *testing.T) {
	var files []string
	for _, glob := range []string{"../man/*.md", "../README.md", "../shell/tnl.sh", "../completions/*", "../cmd/tnl-server/*.service"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	addr := regexp.MustCompile(`\b127\.0\.0\.1:([0-9]{1,4})\b`)
	port := regexp.MustCompile(`\bport \**([0-9]+)\b`)
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []*regexp.Regexp{addr, port} {
			for _, m := range re.FindAllSubmatch(b, -1) {
				seen++
				if string(m[1]) != strconv.Itoa(protocol.DefaultPort) {
					t.Errorf("%s: %q; the default is %s (protocol.DefaultAddr)", f, m[0], protocol.DefaultAddr)
				}
			}
		}
	}
	if seen < 10 {
		t.Fatalf("found the default address only %d times in %d files: is the test looking in the right place?", seen, len(files))
	}
}
