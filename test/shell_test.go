//go:build linux || darwin

package test

// The tests of shell/tnl.sh: bash scripts in test/shell/*.bash, run against
// the real tnl-server, tnl-lock and tnl-do built once into a temporary
// directory. Each script gets a tnl-server of its own on 127.0.0.1:0 (a
// script may kill it) and runs twice: under set -euo pipefail ("strict") and
// under bash's defaults ("plain"), always as `bash --norc --noprofile`.
//
// What a script must do is written in it (see test/shell/testlib.sh):
//
//	#> LINE          the next line of its standard output, exactly
//	# exit: N        its exit status (default 0)
//	# stderr: RE     a line of its standard error matches RE
//	# modes: strict  run it in these modes only
//	# needs: PROG FLAG  skip it while the built PROG's --help lacks FLAG
//
// "needs" is for a script written ahead of the commands it drives (the
// lease functions before tnl-lock --ttl): it runs as soon as the flag is
// there, and says why it was skipped until then.
//
// Nothing sleeps to synchronise: the scripts wait on fifo lines, exit
// statuses and tnl's own -w deadlines, and every run has a deadline here.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// shellScriptTimeout bounds one run of one script. The slowest script waits
// on a few -w deadlines of a second or two; this is for hangs only.
const shellScriptTimeout = 90 * time.Second

func TestShellLibrary(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed to test shell/tnl.sh: %v", err)
	}
	scripts, err := filepath.Glob(filepath.Join("shell", "*.bash"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no test scripts in test/shell: %v", err)
	}
	bin := shellBuildBinaries(t)
	lib, err := filepath.Abs(filepath.Join("..", "shell", "tnl.sh"))
	if err != nil {
		t.Fatal(err)
	}
	testlib, err := filepath.Abs(filepath.Join("shell", "testlib.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, script := range scripts {
		spec, err := shellReadSpec(script)
		if err != nil {
			t.Fatal(err)
		}
		missing := shellMissing(t, bin, spec.needs)
		for _, mode := range spec.modes {
			name := strings.TrimSuffix(filepath.Base(script), ".bash") + "/" + mode
			t.Run(name, func(t *testing.T) {
				if missing != "" {
					t.Skipf("%s needs %s, which this build does not have", script, missing)
				}
				t.Parallel()
				shellRun(t, shellRunConfig{
					bash: bash, bin: bin, lib: lib, testlib: testlib,
					script: script, mode: mode, spec: spec,
				})
			})
		}
	}
}

// TestShellcheck lints the library and the test scripts; make deps installs
// shellcheck.
func TestShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck not installed (make deps installs it); make lint runs it too")
	}
	files, _ := filepath.Glob(filepath.Join("shell", "*.bash"))
	files = append([]string{filepath.Join("..", "shell", "tnl.sh"), filepath.Join("shell", "testlib.sh")}, files...)
	out, err := exec.Command(sc, append([]string{"-x"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// shellSpec is what a script says it must do.
type shellSpec struct {
	stdout []string
	exit   int
	stderr []*regexp.Regexp
	modes  []string
	needs  [][2]string // PROG, FLAG
}

func shellReadSpec(path string) (shellSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return shellSpec{}, err
	}
	s := shellSpec{modes: []string{"strict", "plain"}}
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		switch {
		case trimmed == "#>":
			s.stdout = append(s.stdout, "")
		case strings.HasPrefix(trimmed, "#> "):
			s.stdout = append(s.stdout, strings.TrimPrefix(trimmed, "#> "))
		case strings.HasPrefix(trimmed, "# exit: "):
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(trimmed, "# exit: ")))
			if err != nil {
				return s, fmt.Errorf("%s:%d: bad exit line: %v", path, i+1, err)
			}
			s.exit = n
		case strings.HasPrefix(trimmed, "# stderr: "):
			re, err := regexp.Compile(strings.TrimPrefix(trimmed, "# stderr: "))
			if err != nil {
				return s, fmt.Errorf("%s:%d: bad stderr regexp: %v", path, i+1, err)
			}
			s.stderr = append(s.stderr, re)
		case strings.HasPrefix(trimmed, "# modes: "):
			s.modes = strings.Fields(strings.TrimPrefix(trimmed, "# modes: "))
		case strings.HasPrefix(trimmed, "# needs: "):
			f := strings.Fields(strings.TrimPrefix(trimmed, "# needs: "))
			if len(f) != 2 {
				return s, fmt.Errorf("%s:%d: want \"# needs: PROG FLAG\"", path, i+1)
			}
			s.needs = append(s.needs, [2]string{f[0], f[1]})
		}
	}
	return s, nil
}

// shellMissing returns the first "PROG FLAG" of needs whose FLAG the built
// PROG's --help does not show, or "".
func shellMissing(t *testing.T, bin string, needs [][2]string) string {
	t.Helper()
	for _, n := range needs {
		out, err := exec.Command(filepath.Join(bin, n[0]), "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help: %v\n%s", n[0], err, out)
		}
		if !regexp.MustCompile(`(^|[\s,])` + regexp.QuoteMeta(n[1]) + `([\s=,]|$)`).Match(out) {
			return n[0] + " " + n[1]
		}
	}
	return ""
}

// shellBuildBinaries returns the directory of the commands, built once per
// test binary run by the CLI tests' buildOnce.
func shellBuildBinaries(t *testing.T) string {
	t.Helper()
	return bins(t)
}

type shellRunConfig struct {
	bash, bin, lib, testlib, script, mode string
	spec                                  shellSpec
}

func shellRun(t *testing.T, c shellRunConfig) {
	ctx, cancel := context.WithTimeout(context.Background(), shellScriptTimeout)
	defer cancel()
	srv := shellStartServer(ctx, t, c.bin)

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(c.bash, "--norc", "--noprofile", c.script)
	cmd.Env = append(shellCleanEnv(),
		"PATH="+c.bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TNL_SERVER="+srv.addr,
		"TNL_TEST_SERVER_PID="+strconv.Itoa(srv.cmd.Process.Pid),
		"TNL_SH="+c.lib,
		"TNL_SH_TESTLIB="+c.testlib,
		"TNL_TEST_TMP="+t.TempDir(),
		"TNL_TEST_MODE="+c.mode,
	)
	// Its own process group, so that whatever the script leaves behind (or
	// all of it, when it hangs) can be killed in one go.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", c.script, err)
	}
	outW.Close()
	errW.Close()
	var copies sync.WaitGroup
	for _, p := range []struct {
		r *os.File
		w *bytes.Buffer
	}{{outR, &stdout}, {errR, &stderr}} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			_, _ = io.Copy(p.w, p.r)
		}()
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var timedOut bool
	select {
	case err = <-exited:
	case <-ctx.Done():
		timedOut = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-exited
	}
	// Whatever the script started and left running goes now. Lock holders
	// live in process groups of their own and end by themselves, on end of
	// file from the shell that is gone; the read deadline is for a stray
	// process that keeps the output pipes open.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = outR.SetReadDeadline(time.Now().Add(10 * time.Second))
	_ = errR.SetReadDeadline(time.Now().Add(10 * time.Second))
	copies.Wait()
	outR.Close()
	errR.Close()
	if timedOut {
		t.Fatalf("%s did not finish within %v\nstdout:\n%s\nstderr:\n%s", c.script, shellScriptTimeout, &stdout, &stderr)
	}

	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	case err != nil:
		t.Fatalf("running %s: %v\nstdout:\n%s\nstderr:\n%s", c.script, err, &stdout, &stderr)
	}

	var problems []string
	if code != c.spec.exit {
		problems = append(problems, fmt.Sprintf("exit status %d, want %d", code, c.spec.exit))
	}
	got := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if stdout.Len() == 0 {
		got = nil
	}
	if d := shellDiff(c.spec.stdout, got); d != "" {
		problems = append(problems, "stdout differs (-want +got):\n"+d)
	}
	for _, re := range c.spec.stderr {
		if !re.MatchString(stderr.String()) {
			problems = append(problems, fmt.Sprintf("no stderr line matches %q", re))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s (%s mode):\n%s\nstderr:\n%s\nserver log:\n%s", c.script, c.mode,
			strings.Join(problems, "\n"), &stderr, srv.log())
	}
}

// shellCleanEnv is the environment without what would change how bash or
// the tnl commands behave behind the test's back.
func shellCleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "BASH_ENV", k == "ENV", k == "CDPATH", k == "PATH", k == "SHELLOPTS", k == "BASHOPTS",
			strings.HasPrefix(k, "TNL_"), strings.HasPrefix(k, "TCPNETLOCK_"),
			strings.HasPrefix(k, "BASH_FUNC_"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

type shellServer struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (s *shellServer) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

var shellAddrRE = regexp.MustCompile(`addr=([^\s"]+)`)

// shellStartServer starts tnl-server on 127.0.0.1:0 and waits for the line
// that logs its address; the server is stopped when the test ends (or found
// dead, when the script killed it).
func shellStartServer(ctx context.Context, t *testing.T, bin string) *shellServer {
	t.Helper()
	s := &shellServer{}
	s.cmd = exec.Command(filepath.Join(bin, "tnl-server"), "--listen", "127.0.0.1:0")
	s.cmd.Env = shellCleanEnv()
	pr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting tnl-server: %v", err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		found := false
		for sc.Scan() {
			s.mu.Lock()
			s.buf.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := shellAddrRE.FindStringSubmatch(sc.Text()); m != nil && !found {
				found = true
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
		close(addr)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
	})
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("tnl-server ended before logging its address:\n%s", s.log())
		}
		s.addr = a
	case <-ctx.Done():
		t.Fatalf("tnl-server did not log its address in time:\n%s", s.log())
	}
	return s
}

// shellDiff is a small line diff: "" when equal.
func shellDiff(want, got []string) string {
	if strings.Join(want, "\n") == strings.Join(got, "\n") && len(want) == len(got) {
		return ""
	}
	var b strings.Builder
	n := max(len(want), len(got))
	for i := 0; i < n; i++ {
		var w, g string
		wok, gok := i < len(want), i < len(got)
		if wok {
			w = want[i]
		}
		if gok {
			g = got[i]
		}
		switch {
		case wok && gok && w == g:
			fmt.Fprintf(&b, "  %s\n", w)
		default:
			if wok {
				fmt.Fprintf(&b, "- %s\n", w)
			}
			if gok {
				fmt.Fprintf(&b, "+ %s\n", g)
			}
		}
	}
	return b.String()
}
