//go:build linux

package supervise

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tnl-lock/tnl/lib/exitcode"
)

// TestMain doubles as a helper process: with SUPERVISE_HELPER set, the test
// binary runs a command under Start and reports on stdout, so that tests can
// kill a supervisor from outside or give it a terminal.
func TestMain(m *testing.M) {
	switch os.Getenv("SUPERVISE_HELPER") {
	case "":
		os.Exit(m.Run())
	case "run":
		os.Exit(helperRun(os.Args[len(os.Args)-1]))
	}
	os.Exit(3)
}

// helperRun starts sh -c script, prints "child PID", passes signals on,
// prints "exit CODE" when the child ends.
func helperRun(script string) int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, TerminatingSignals()...)
	signal.Notify(sigs, JobControlSignals()...)
	p, err := Start(Config{Argv: []string{"sh", "-c", script}})
	if err != nil {
		fmt.Println("error", err)
		return exitcode.Of(err)
	}
	fmt.Printf("child %d\n", p.Pid())
	res := p.Supervise(Options{Signals: sigs})
	fmt.Printf("exit %d\n", exitcode.FromWaitStatus(res.Status))
	return 0
}

// lines reads r line by line onto a channel.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			ch <- s.Text()
		}
		close(ch)
	}()
	return ch
}

// expect waits for a line with the given prefix and returns the rest.
func expect(t *testing.T, ch <-chan string, prefix string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("output ended while waiting for %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimPrefix(l, prefix)
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %q", prefix)
		}
	}
}

// startPiped starts sh -c script with its stdout on a pipe.
func startPiped(t *testing.T, script string) (*Process, <-chan string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(Config{Argv: []string{"sh", "-c", script}, Stdout: w, NoTerminal: true})
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.SignalGroup(syscall.SIGKILL)
		<-p.Done()
		r.Close()
	})
	return p, lines(r)
}

func waitDone(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("child did not end")
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 1", 1},
		{"exit 42", 42},
		{"kill -TERM $$", 143},
		{"kill -KILL $$", 137},
		{"kill -INT $$", 130},
	} {
		p, err := Start(Config{Argv: []string{"sh", "-c", tc.script}, NoTerminal: true})
		if err != nil {
			t.Fatal(err)
		}
		waitDone(t, p)
		if got := p.ExitCode(); got != tc.want {
			t.Errorf("%q: exit code %d, want %d", tc.script, got, tc.want)
		}
		if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
		}
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	badinterp := filepath.Join(dir, "badinterp")
	os.WriteFile(badinterp, []byte("#!/no/such/interpreter\n"), 0o755)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("\x7fELF garbage"), 0o755)
	for _, tc := range []struct {
		name string
		want int
		msg  string
	}{
		{"no-such-command-tnl", 127, "cannot run no-such-command-tnl: executable file not found in $PATH"},
		{filepath.Join(dir, "missing"), 127, "cannot run " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{noexec, 126, "cannot run " + noexec + ": permission denied"},
		{dir, 126, "cannot run " + dir + ": is a directory"},
		{badinterp, 126, "cannot run " + badinterp + ": bad interpreter: no such file or directory"},
		{garbage, 126, "cannot run " + garbage + ": exec format error"},
		{"", 127, "cannot run the empty command"},
	} {
		_, err := Start(Config{Argv: []string{tc.name}, NoTerminal: true})
		if exitcode.Of(err) != tc.want || err.Error() != tc.msg {
			t.Errorf("Start(%q) = %v (%d), want %q (%d)", tc.name, err, exitcode.Of(err), tc.msg, tc.want)
		}
	}
}

func TestOwnProcessGroup(t *testing.T) {
	p, out := startPiped(t, "echo ready; exec sleep 100")
	expect(t, out, "ready")
	pg, err := unix.Getpgid(p.Pid())
	if err != nil || pg != p.Pid() {
		t.Fatalf("child's pgid = %d, %v; want its pid %d", pg, err, p.Pid())
	}
	if pg == unix.Getpgrp() {
		t.Fatal("child shares our process group")
	}
}

func TestEnvDirStdin(t *testing.T) {
	dir := t.TempDir()
	in, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, w, _ := os.Pipe()
	p, err := Start(Config{
		Argv:  []string{"sh", "-c", `echo "$FOO $(pwd)"; cat; echo end`},
		Env:   []string{"FOO=bar", "PATH=" + os.Getenv("PATH")},
		Dir:   dir,
		Stdin: in, Stdout: w, NoTerminal: true,
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	waitDone(t, p)
	if got, want := string(b), "bar "+dir+"\nend\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// A signal passed on reaches the child once; SIGCONT continues a stopped
// child's whole group.
func TestForward(t *testing.T) {
	p, out := startPiped(t, `
		trap 'echo usr1' USR1
		trap 'echo hup' HUP
		trap 'echo winch' WINCH
		echo ready
		while :; do sleep 0.01; done`)
	expect(t, out, "ready")
	for _, s := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGWINCH, syscall.SIGUSR1} {
		p.Forward(s)
		name := strings.TrimPrefix(unix.SignalName(s), "SIG")
		if got := within(t, 5*time.Second, out, "the child's line after "+name); got != strings.ToLower(name) {
			t.Fatalf("after %v: got %q", s, got)
		}
	}
	select {
	case l := <-out:
		t.Fatalf("unexpected extra line %q", l)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestStopAndContinue(t *testing.T) {
	p, out := startPiped(t, `echo ready; while :; do echo tick; sleep 0.01; done`)
	expect(t, out, "ready")
	p.Forward(syscall.SIGTSTP)
	// Wait until the wait loop has seen the stop.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		s := p.stopped
		p.mu.Unlock()
		if s {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stop not seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Drain what was printed before the stop; then nothing comes.
	for drained := false; !drained; {
		select {
		case <-out:
		case <-time.After(100 * time.Millisecond):
			drained = true
		}
	}
	p.Forward(syscall.SIGCONT)
	expect(t, out, "tick")
}

func TestSuperviseLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		onLost OnLost
		want   syscall.WaitStatus
	}{
		{"term, child exits on TERM", `trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.01; done`, Term, 7 << 8},
		{"term, child ignores TERM: killed after the grace", `trap 'echo got-term' TERM; echo ready; while :; do sleep 0.01; done`, Term, syscall.WaitStatus(syscall.SIGKILL)},
		{"kill", `trap 'echo got-term' TERM; echo ready; while :; do sleep 0.01; done`, Kill, syscall.WaitStatus(syscall.SIGKILL)},
		{"ignore", `echo ready; read x; exit 5`, Ignore, 5 << 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdin *os.File
			var stdinW *os.File
			if tc.onLost == Ignore {
				stdin, stdinW, _ = os.Pipe()
			}
			r, w, _ := os.Pipe()
			p, err := Start(Config{Argv: []string{"sh", "-c", tc.script}, Stdin: stdin, Stdout: w, NoTerminal: true})
			w.Close()
			if stdin != nil {
				stdin.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			out := lines(r)
			expect(t, out, "ready")
			lost := make(chan struct{})
			hooked := false
			resc := make(chan Result)
			go func() {
				resc <- p.Supervise(Options{Lost: lost, OnLost: tc.onLost, KillAfter: 300 * time.Millisecond, LostHook: func() { hooked = true }})
			}()
			start := time.Now()
			close(lost)
			if tc.onLost == Ignore {
				time.Sleep(50 * time.Millisecond)
				stdinW.Close() // now let it finish
			}
			var res Result
			select {
			case res = <-resc:
			case <-time.After(10 * time.Second):
				t.Fatal("Supervise did not return")
			}
			if !res.Lost || !hooked || res.Status != tc.want {
				t.Errorf("Result %+v (hooked %v), want Lost and status %#x", res, hooked, uint32(tc.want))
			}
			if tc.name == "term, child ignores TERM: killed after the grace" {
				expect(t, out, "got-term")
				if d := time.Since(start); d < 300*time.Millisecond {
					t.Errorf("killed after %v, before the grace period", d)
				}
			}
		})
	}
}

// SIGKILL of the supervisor kills the child (Pdeathsig on the locked thread).
func TestPdeathsig(t *testing.T) {
	// Become a subreaper so that the orphaned child is reparented to us and we
	// can see how it died.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skip("no subreaper:", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	cmd := exec.Command(os.Args[0], "-test.run=^$", "exec sleep 100")
	cmd.Env = append(os.Environ(), "SUPERVISE_HELPER=run")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := lines(stdout)
	pid, _ := strconv.Atoi(expect(t, out, "child "))
	// Let a few goroutines run on other threads, to give the runtime every
	// chance to move things around.
	time.Sleep(50 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	start := time.Now()
	var ws syscall.WaitStatus
	done := make(chan error, 1)
	go func() {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("child still running 1s after its supervisor was killed")
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %#x, want killed by SIGKILL", uint32(ws))
	}
	t.Logf("child gone %v after its supervisor", time.Since(start))
}

// A signal sent to the supervisor's whole process group reaches the child
// once: the child is not in that group, the supervisor passes it on.
func TestGroupSignalOnce(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	cmd := exec.Command(os.Args[0], "-test.run=^$",
		`trap 'echo int >> `+log+`' INT; trap 'echo usr1 >> `+log+`' USR1; echo ready >> `+log+`; while :; do sleep 0.01; done`)
	cmd.Env = append(os.Environ(), "SUPERVISE_HELPER=run")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := lines(stdout)
	pid, _ := strconv.Atoi(expect(t, out, "child "))
	defer syscall.Kill(-pid, syscall.SIGKILL)
	waitFile(t, log, "ready\n")
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	waitFile(t, log, "ready\nint\n")
	syscall.Kill(-cmd.Process.Pid, syscall.SIGUSR1)
	waitFile(t, log, "ready\nint\nusr1\n")
	// Had either signal come twice, the second trap would have run by now.
	time.Sleep(100 * time.Millisecond)
	waitFile(t, log, "ready\nint\nusr1\n")
	syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	if got := expect(t, out, "exit "); got != "143" {
		t.Errorf("exit %s, want 143", got)
	}
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, want %q", path, b, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseOnLost(t *testing.T) {
	for _, s := range []string{"term", "kill", "ignore"} {
		o, err := ParseOnLost(s)
		if err != nil || o.String() != s {
			t.Errorf("ParseOnLost(%q) = %v, %v", s, o, err)
		}
	}
	if _, err := ParseOnLost("stop"); err == nil {
		t.Error("ParseOnLost(stop) did not fail")
	}
}

func TestSignalSets(t *testing.T) {
	has := func(set []os.Signal, s syscall.Signal) bool {
		for _, x := range set {
			if x == s {
				return true
			}
		}
		return false
	}
	term, job := TerminatingSignals(), JobControlSignals()
	for _, s := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGPIPE, syscall.Signal(40)} {
		if !has(term, s) || !IsTerminating(s) {
			t.Errorf("%v is not in the terminating set", s)
		}
	}
	for _, s := range []syscall.Signal{syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGWINCH} {
		if !has(job, s) || IsTerminating(s) {
			t.Errorf("%v is not in the job-control set", s)
		}
	}
	for _, s := range []syscall.Signal{syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF, syscall.SIGKILL, syscall.SIGSTOP} {
		if has(term, s) || has(job, s) {
			t.Errorf("%v must not be caught", s)
		}
	}
}

func TestCancelOnSignal(t *testing.T) {
	sigs := make(chan os.Signal, 4)
	ctx, stop := CancelOnSignal(t.Context(), sigs)
	sigs <- syscall.SIGWINCH // means nothing while waiting
	sigs <- syscall.SIGCONT
	sigs <- syscall.SIGPIPE // our own write to a closed server connection
	sigs <- syscall.SIGUSR1 // ends the wait
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not cancelled by SIGUSR1")
	}
	if got := stop(); got != syscall.SIGUSR1 {
		t.Errorf("stop() = %v, want SIGUSR1", got)
	}
	if got := stop(); got != syscall.SIGUSR1 {
		t.Errorf("second stop() = %v, want SIGUSR1 again", got)
	}

	ctx, stop = CancelOnSignal(t.Context(), sigs)
	if got := stop(); got != nil {
		t.Errorf("stop() without a signal = %v", got)
	}
	if ctx.Err() != nil {
		t.Error("context cancelled without a signal")
	}
	// After stop, signals stay in the channel for Supervise.
	sigs <- syscall.SIGINT
	select {
	case s := <-sigs:
		if s != syscall.SIGINT {
			t.Errorf("got %v", s)
		}
	case <-time.After(time.Second):
		t.Error("signal swallowed after stop")
	}
}

// Catch delivers the signals it promised by the time its channels close.
func TestCatch(t *testing.T) {
	sigs := make(chan os.Signal, 8)
	waitReady, ready := Catch(sigs)
	within(t, 5*time.Second, waitReady, "Catch's first channel")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	if s := within(t, 5*time.Second, sigs, "SIGHUP from Catch"); s != syscall.SIGHUP {
		t.Fatalf("got %v, want SIGHUP", s)
	}
	within(t, 5*time.Second, ready, "Catch's second channel")
	syscall.Kill(os.Getpid(), syscall.SIGUSR2)
	if s := within(t, 5*time.Second, sigs, "SIGUSR2 from Catch"); s != syscall.SIGUSR2 {
		t.Fatalf("got %v, want SIGUSR2", s)
	}
	syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	if s := within(t, 5*time.Second, sigs, "SIGWINCH from Catch"); s != syscall.SIGWINCH {
		t.Fatalf("got %v, want SIGWINCH", s)
	}
	signal.Stop(sigs)
}
