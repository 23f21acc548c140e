package test

// Tests of completions/ and of the OPTIONS of the man pages against the real
// commands. The flags come from each built binary's --help (what kong
// shows), plus the flags CONTRACT.md §2 promises, so that a flag added,
// renamed or removed in a command fails here until its man page and its
// bash, zsh and fish completions follow. The completions are then run for
// real: bash with complete -p and the completion function, zsh through
// zpty, fish with complete -C.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

var compCommands = []string{"tnl-server", "tnl-lock", "tnl-do", "tnl-stats"}

// compContract lists the flags CONTRACT.md §2 and the issues name for each
// command: checked even if a command hides one from --help.
var compContract = map[string][]string{
	"tnl-server": {"--listen", "--port", "--log-format", "--log-level", "--info", "--debug",
		"--dead-peer-timeout", "--state-dir", "--help", "--version"},
	"tnl-lock": {"-s", "--server", "--host", "--port", "--client-id", "-w", "--wait", "--shared",
		"--limit", "-E", "--conflict-exit-code", "-v", "--verbose", "--keep-alive",
		"--keep-alive-secs", "--auth-token-file", "--tls", "--tls-ca", "--tls-cert", "--tls-key",
		"--ttl", "--max-hold", "--renew", "--release", "--is-held", "--lease",
		"--help", "--version"},
	"tnl-do": {"-s", "--server", "--host", "--port", "--client-id", "-w", "--wait", "--shared",
		"--limit", "-E", "--conflict-exit-code", "-v", "--verbose", "-c", "--shell", "--on-lost",
		"--kill-after", "--lock-name", "--retry", "--retry-wait", "--keep-alive",
		"--keep-alive-secs", "--auth-token-file", "--tls", "--tls-ca", "--tls-cert", "--tls-key",
		"--max-hold", "--help", "--version"},
	"tnl-stats": {"-s", "--server", "--host", "--port", "--json", "--auth-token-file", "--tls",
		"--tls-ca", "--tls-cert", "--tls-key", "--break", "--admin-token-file", "--help", "--version"},
}

// compHelp is what one command's --help shows.
type compHelp struct {
	flags []string // "--long" and "-s", as shown
	envs  []string // $VARIABLES named in the help
}

var (
	// A flag line of kong's help: two blanks, then "-x, --long" or "    --long"
	// (or "--long" alone in an explicit group); wrapped help text is indented
	// further and never matches.
	compFlagLine = regexp.MustCompile(`^  (?:-([A-Za-z0-9]), |    )?--(?:\[no-\])?([a-z0-9][a-z0-9-]*)`)
	compEnv      = regexp.MustCompile(`\$([A-Z][A-Z0-9_]+)`)
)

// compBinaries builds the four commands once (see buildOnce in cli_test.go)
// and reads their --help.
var compHelps = sync.OnceValues(func() (map[string]compHelp, error) {
	dir, err := buildOnce()
	if err != nil {
		return nil, err
	}
	helps := map[string]compHelp{}
	for _, c := range compCommands {
		out, err := exec.Command(filepath.Join(dir, c), "--help").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%s --help: %v\n%s", c, err, out)
		}
		var h compHelp
		for line := range strings.SplitSeq(string(out), "\n") {
			if m := compFlagLine.FindStringSubmatch(line); m != nil {
				if m[1] != "" {
					h.flags = append(h.flags, "-"+m[1])
				}
				h.flags = append(h.flags, "--"+m[2])
			}
		}
		for _, m := range compEnv.FindAllStringSubmatch(string(out), -1) {
			if !slices.Contains(h.envs, m[1]) {
				h.envs = append(h.envs, m[1])
			}
		}
		if !slices.Contains(h.flags, "--help") {
			return nil, fmt.Errorf("%s --help: no flags found in:\n%s", c, out)
		}
		helps[c] = h
	}
	return helps, nil
})

func compGetHelps(t *testing.T) map[string]compHelp {
	t.Helper()
	h, err := compHelps()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// compAccepts reports whether cmd knows flag, also a hidden one: kong
// parses the whole command line before it shows the help, so an unknown flag
// after --help is still reported as one.
func compAccepts(t *testing.T, cmd, flag string) bool {
	t.Helper()
	dir, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(filepath.Join(dir, cmd), "--help", flag).CombinedOutput()
	return !strings.Contains(string(out), "unknown flag")
}

// compWant is every flag a command must document and complete.
func compWant(t *testing.T, cmd string) []string {
	flags := slices.Clone(compGetHelps(t)[cmd].flags)
	for _, f := range compContract[cmd] {
		if !slices.Contains(flags, f) {
			flags = append(flags, f)
		}
	}
	return flags
}

func compRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// compCode drops comment lines, so that a flag named only in a comment does
// not count.
func compCode(src string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(src, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// compHasWord: flag appears as a word of its own (not as part of --flag-more).
func compHasWord(src, flag string) bool {
	return regexp.MustCompile(`(^|[^A-Za-z0-9-])` + regexp.QuoteMeta(flag) + `([^A-Za-z0-9-]|$)`).MatchString(src)
}

// compFishHas: fish spells --long as "-l long" and -s as "-s s".
func compFishHas(src, flag string) bool {
	if l, ok := strings.CutPrefix(flag, "--"); ok {
		return regexp.MustCompile(`(^|\s)-l ` + regexp.QuoteMeta(l) + `(\s|$)`).MatchString(src)
	}
	return regexp.MustCompile(`(^|\s)-s ` + regexp.QuoteMeta(flag[1:]) + `(\s|$)`).MatchString(src)
}

// TestCompletionDrift: every flag of every command is in its man page's
// OPTIONS and in its bash, zsh and fish completions; every flag those name is
// one the command accepts; every variable its --help names is in the man
// page's ENVIRONMENT.
func TestCompletionDrift(t *testing.T) {
	helps := compGetHelps(t)
	longFlag := regexp.MustCompile(`--[a-z][a-z0-9-]*`)
	for _, cmd := range compCommands {
		t.Run(cmd, func(t *testing.T) {
			man := compRead(t, filepath.Join(manDir, cmd+".1.md"))
			options := manSection(man, "OPTIONS")
			bash := compCode(compRead(t, filepath.Join("..", "completions", cmd+".bash")))
			zsh := compCode(compRead(t, filepath.Join("..", "completions", cmd+".zsh")))
			fish := compCode(compRead(t, filepath.Join("..", "completions", cmd+".fish")))
			for _, f := range compWant(t, cmd) {
				if !strings.Contains(options, "**"+f+"**") {
					t.Errorf("%s is missing from OPTIONS of man/%s.1.md", f, cmd)
				}
				if !compHasWord(bash, f) {
					t.Errorf("%s is missing from completions/%s.bash", f, cmd)
				}
				if !compHasWord(zsh, f) {
					t.Errorf("%s is missing from completions/%s.zsh", f, cmd)
				}
				if !compFishHas(fish, f) {
					t.Errorf("%s is missing from completions/%s.fish", f, cmd)
				}
			}

			// The other way round: nothing documented or completed that the
			// command does not take.
			offered := map[string][]string{}
			for _, m := range regexp.MustCompile(`(?m)^\*\*-[^\n]*`).FindAllString(options, -1) {
				for _, f := range regexp.MustCompile(`\*\*(--?[A-Za-z0-9][a-z0-9-]*)\*\*`).FindAllStringSubmatch(m, -1) {
					offered[f[1]] = append(offered[f[1]], "man page")
				}
			}
			for _, f := range longFlag.FindAllString(bash, -1) {
				offered[f] = append(offered[f], "bash")
			}
			for _, f := range longFlag.FindAllString(zsh, -1) {
				offered[f] = append(offered[f], "zsh")
			}
			for _, m := range regexp.MustCompile(`(?m)^complete .*`).FindAllString(fish, -1) {
				for _, l := range regexp.MustCompile(`\s-l ([a-z][a-z0-9-]*)`).FindAllStringSubmatch(m, -1) {
					offered["--"+l[1]] = append(offered["--"+l[1]], "fish")
				}
				for _, s := range regexp.MustCompile(`\s-s ([A-Za-z0-9])\s`).FindAllStringSubmatch(m, -1) {
					offered["-"+s[1]] = append(offered["-"+s[1]], "fish")
				}
			}
			for f, where := range offered {
				if slices.Contains(helps[cmd].flags, f) || compAccepts(t, cmd, f) {
					continue
				}
				slices.Sort(where)
				t.Errorf("%s does not take %s, offered by %s", cmd, f, strings.Join(slices.Compact(where), ", "))
			}

			env := manSection(man, "ENVIRONMENT")
			for _, v := range helps[cmd].envs {
				if !strings.Contains(env, "**"+v+"**") {
					t.Errorf("$%s (named by %s --help) is missing from ENVIRONMENT of man/%s.1.md", v, cmd, cmd)
				}
			}
		})
	}
}

// compBashHarness sources a completion file and runs its function on the
// words given, like readline would, printing the completions sorted.
const compBashHarness = `
set -u
source "$1"; shift
complete -p "$1"
fn=$(complete -p "$1" | sed -E 's/.*-F ([^ ]+) .*/\1/')
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort -u
`

// compBash returns `complete -p` and the sorted completions of words.
func compBash(t *testing.T, cmd string, words ...string) (string, []string) {
	t.Helper()
	file, _ := filepath.Abs(filepath.Join("..", "completions", cmd+".bash"))
	args := append([]string{"--norc", "--noprofile", "-c", compBashHarness, "harness", file}, words...)
	c := exec.Command("bash", args...)
	c.Env = append(os.Environ(), "LC_ALL=C")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %s %q: %v\n%s", cmd, words, err, out)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	var got []string
	for _, l := range lines[1:] {
		if l != "" {
			got = append(got, l)
		}
	}
	return lines[0], got
}

// compVisible returns the flags of --help that start with prefix, sorted.
func compVisible(t *testing.T, cmd, prefix string) []string {
	var out []string
	for _, f := range compGetHelps(t)[cmd].flags {
		if strings.HasPrefix(f, prefix) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func compSorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestCompletionBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed")
	}
	for _, cmd := range compCommands {
		t.Run(cmd, func(t *testing.T) {
			fn := "_" + strings.ReplaceAll(cmd, "-", "_")
			spec, longs := compBash(t, cmd, cmd, "--")
			if want := "complete -F " + fn + " " + cmd; spec != want {
				t.Errorf("complete -p %s = %q, want %q", cmd, spec, want)
			}
			want := compVisible(t, cmd, "--")
			if cmd == "tnl-do" {
				want = compSorted(append(want, "--")...)
			}
			if !slices.Equal(longs, want) {
				t.Errorf("%s --<TAB>:\n got  %q\n want %q", cmd, longs, want)
			}
			_, all := compBash(t, cmd, cmd, "-")
			want = compVisible(t, cmd, "-")
			if cmd == "tnl-do" {
				want = compSorted(append(want, "--")...)
			}
			if !slices.Equal(all, want) {
				t.Errorf("%s -<TAB>:\n got  %q\n want %q", cmd, all, want)
			}
		})
	}
	cases := []struct {
		words []string
		want  []string // exactly these, or
		has   string   // at least this one
	}{
		{words: []string{"tnl-do", "--on-lost", ""}, want: []string{"ignore", "kill", "term"}},
		{words: []string{"tnl-do", "--on-lost", "=", "k"}, want: []string{"kill"}},
		{words: []string{"tnl-do", "-w", "i"}, want: []string{"inf"}},
		{words: []string{"tnl-do", "x", "--", "ech"}, has: "echo"},
		{words: []string{"tnl-do", "-w", "5m", "x", "ech"}, has: "echo"},
		{words: []string{"tnl-do", "--lock-name", "x", "ech"}, has: "echo"},
		{words: []string{"tnl-do", "x", "ls", "--sh"}, want: nil}, // the command's own options: not tnl-do's
		{words: []string{"tnl-do", "-s", "h:1", ""}, want: nil},   // NAME: nothing to offer
		{words: []string{"tnl-lock", "--wait", "in"}, want: []string{"inf"}},
		{words: []string{"tnl-server", "--log-format", ""}, want: []string{"json", "text"}},
		{words: []string{"tnl-server", "--log-level", ""}, want: []string{"debug", "error", "info", "warn"}},
		{words: []string{"tnl-server", "--state-dir", "/us"}, has: "/usr"},
		{words: []string{"tnl-do", "--tls-ca", "/us"}, has: "/usr"},
		{words: []string{"tnl-do", "--auth-token-file", "/etc/passwd", "x", "ech"}, has: "echo"},
		{words: []string{"tnl-lock", "--tls-cert", "/us"}, has: "/usr"},
		{words: []string{"tnl-stats", "--admin-token-file", "/us"}, has: "/usr"},
		{words: []string{"tnl-stats", "--break", ""}, want: nil},
	}
	for _, c := range cases {
		_, got := compBash(t, c.words[0], c.words...)
		switch {
		case c.has != "" && !slices.Contains(got, c.has):
			t.Errorf("bash %q<TAB>: got %q, want %q among them", c.words, got, c.has)
		case c.has == "" && !slices.Equal(got, c.want):
			t.Errorf("bash %q<TAB>: got %q, want %q", c.words, got, c.want)
		}
	}
}

// compZshCapture drives an interactive zsh through zpty, completes the line
// given, and prints every match the completion system adds.
const compZshCapture = `
zmodload zsh/zpty || exit 3
zpty z zsh -f -i
zpty -w z "PS1=''; fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'zstyle ":completion:*" list-grouped false; zstyle ":completion:*" insert-tab false'
zpty -w z 'compadd () { local -a __h; builtin compadd -O __h "$@"; (( $#__h )) && print -rl -- $'"'"'\x02'"'"'${^__h}; builtin compadd "$@" }'
zpty -w z 'comptest () { zle complete-word; print $'"'"'\x03'"'"'; }; zle -N comptest; bindkey "^I" comptest'
zpty -n -w z "$2"$'\t'
integer tries=0
local line
while true; do
  if ! zpty -r -t z line; then
    (( ++tries < 3000 )) || { print -u2 "capture: no answer from zsh"; exit 4 }
    sleep 0.01; continue
  fi
  [[ $line == *$'\x03'* ]] && break
  [[ $line == *$'\x02'* ]] && print -r -- ${${line##*$'\x02'}%%$'\r'*}
done
zpty -d z
`

func TestCompletionZsh(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh not installed (make deps installs it)")
	}
	fpath := t.TempDir()
	for _, cmd := range compCommands {
		b, err := os.ReadFile(filepath.Join("..", "completions", cmd+".zsh"))
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(string(b), "\n"); first != "#compdef "+cmd {
			t.Errorf("completions/%s.zsh starts with %q, want #compdef %s", cmd, first, cmd)
		}
		if err := os.WriteFile(filepath.Join(fpath, "_"+cmd), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	complete := func(line string) []string {
		out, err := exec.Command("zsh", "-f", "-c", compZshCapture, "capture", fpath, line).CombinedOutput()
		if err != nil {
			t.Fatalf("zsh completion of %q: %v\n%s", line, err, out)
		}
		var got []string
		for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(got, l) {
				got = append(got, l)
			}
		}
		slices.Sort(got)
		return got
	}
	for _, cmd := range compCommands {
		if got, want := complete(cmd+" --"), compVisible(t, cmd, "--"); !slices.Equal(got, want) {
			t.Errorf("zsh %s --<TAB>:\n got  %q\n want %q", cmd, got, want)
		}
	}
	if got := complete("tnl-do --on-lost "); !slices.Equal(got, []string{"ignore", "kill", "term"}) {
		t.Errorf("zsh tnl-do --on-lost <TAB>: got %q", got)
	}
	if got := complete("tnl-server --log-level "); !slices.Equal(got, []string{"debug", "error", "info", "warn"}) {
		t.Errorf("zsh tnl-server --log-level <TAB>: got %q", got)
	}
	if got := complete("tnl-do x -- ech"); !slices.Contains(got, "echo") {
		t.Errorf("zsh tnl-do x -- ech<TAB>: got %q, want echo among them", got)
	}
}

func TestCompletionFish(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish not installed (make deps installs it)")
	}
	complete := func(cmd, line string) []string {
		file, _ := filepath.Abs(filepath.Join("..", "completions", cmd+".fish"))
		script := fmt.Sprintf("source %q; complete -C %q", file, line)
		out, err := exec.Command("fish", "--no-config", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("fish completion of %q: %v\n%s", line, err, out)
		}
		var got []string
		for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			if w, _, _ := strings.Cut(l, "\t"); w != "" && !slices.Contains(got, w) {
				got = append(got, w)
			}
		}
		slices.Sort(got)
		return got
	}
	for _, cmd := range compCommands {
		if got, want := complete(cmd, cmd+" --"), compVisible(t, cmd, "--"); !slices.Equal(got, want) {
			t.Errorf("fish %s --<TAB>:\n got  %q\n want %q", cmd, got, want)
		}
	}
	if got := complete("tnl-do", "tnl-do --on-lost "); !slices.Equal(got, []string{"ignore", "kill", "term"}) {
		t.Errorf("fish tnl-do --on-lost <TAB>: got %q", got)
	}
	if got := complete("tnl-do", "tnl-do x -- ech"); !slices.Contains(got, "echo") {
		t.Errorf("fish tnl-do x -- ech<TAB>: got %q, want echo among them", got)
	}
	if got := complete("tnl-do", "tnl-do x ls --sh"); slices.Contains(got, "--shared") {
		t.Errorf("fish tnl-do x ls --sh<TAB> offers tnl-do's own --shared: %q", got)
	}
}

// TestCompletionBashDelegates: with bash-completion loaded, the command after
// NAME is completed by that command's own completion.
func TestCompletionBashDelegates(t *testing.T) {
	const lib = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(lib); err != nil {
		t.Skip("bash-completion not installed")
	}
	file, _ := filepath.Abs(filepath.Join("..", "completions", "tnl-do.bash"))
	script := `source "$1"; source "$2"; shift 2
COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
COMPREPLY=(); _tnl_do "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
	for _, words := range [][]string{{"tnl-do", "x", "--", "ls", "--vers"}, {"tnl-do", "-w", "5", "x", "ls", "--vers"}} {
		out, _ := exec.Command("bash", append([]string{"--norc", "--noprofile", "-c", script, "harness", lib, file}, words...)...).Output()
		if got := strings.Fields(string(out)); !slices.Contains(got, "--version") {
			t.Errorf("bash %q<TAB> with bash-completion: got %q, want ls's --version", words, got)
		}
	}
}
