//go:build linux

package supervise

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/test/deadline"
)

// TestMain doubles as a helper process: with SUPERVISE_HELPER set, the test
// binary runs a command under Start and reports on stdout, so that tests can
// kill a supervisor from outside or give it a terminal.
func TestMain(m *testing.M) {
	if IsWatchdog(os.Args[1:]) {
		// StartWatchdog runs /proc/self/exe: this test binary.
		os.Exit(RunWatchdog(os.Args[1]))
	}
	switch os.Getenv("SUPERVISE_HELPER") {
	case "":
		os.Exit(m.Run())
	case "run":
		os.Exit(helperRun(os.Args[len(os.Args)-1], false))
	case "watchdog":
		os.Exit(helperRun(os.Args[len(os.Args)-1], true))
	}
	os.Exit(3)
}

// helperRun starts sh -c script (under a watchdog, if asked), prints "child
// PID" and "group PGID", passes signals on, prints "exit CODE" when the
// child ends.
func helperRun(script string, watchdog bool) int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, TerminatingSignals()...)
	signal.Notify(sigs, JobControlSignals()...)
	var wd *Watchdog
	if watchdog {
		wd = StartWatchdog()
		defer wd.Close()
		if path := os.Getenv("SUPERVISE_KEEP"); path != "" {
			c, err := net.Dial("unix", path)
			if err != nil {
				fmt.Println("error", err)
				return 1
			}
			rc, _ := c.(*net.UnixConn).SyscallConn()
			if err := wd.Keep(rc); err != nil {
				fmt.Println("error", err)
				return 1
			}
		}
	}
	p, err := Start(Config{Argv: []string{"sh", "-c", script}, Watchdog: wd})
	if err != nil {
		fmt.Println("error", err)
		return exitcode.Of(err)
	}
	fmt.Printf("child %d\ngroup %d\n", p.Pid(), p.Pgid())
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
		if got := deadline.Within(t, 5*time.Second, out, "the child's line after "+name); got != strings.ToLower(name) {
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
				resc <- p.Supervise(Options{Lost: lost, OnLost: tc.onLost, KillAfter: 300 * time.Millisecond, LostHook: func(time.Duration) { hooked = true }})
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

// KillBy cuts the grace of OnLost Term: a command that ignores SIGTERM is
// killed at KillBy, not KillAfter later, and LostHook is told the grace
// it got; a KillBy that has passed means SIGKILL at once, without SIGTERM.
// A KillBy after KillAfter changes nothing.
func TestSuperviseKillBy(t *testing.T) {
	const killAfter = 10 * time.Second
	for _, tc := range []struct {
		name  string
		by    time.Duration // from when the lock is lost
		grace time.Duration // what LostHook is told, roughly
		term  bool          // SIGTERM came first
	}{
		{"cut", 300 * time.Millisecond, 300 * time.Millisecond, true},
		{"passed", -time.Second, 0, false},
		{"later than --kill-after", time.Hour, killAfter, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, out := startPiped(t, `trap 'echo got-term' TERM; echo ready; while :; do sleep 0.01; done`)
			expect(t, out, "ready")
			lost := make(chan struct{})
			var by time.Time
			resc := make(chan Result, 1)
			gracec := make(chan time.Duration, 1)
			go func() {
				resc <- p.Supervise(Options{Lost: lost, OnLost: Term, KillAfter: killAfter,
					KillBy: func() time.Time { return by }, LostHook: func(g time.Duration) { gracec <- g }})
			}()
			by = time.Now().Add(tc.by)
			close(lost)
			grace := <-gracec
			if d := grace - tc.grace; d > 0 || d < -50*time.Millisecond {
				t.Errorf("LostHook got grace %v, want %v", grace, tc.grace)
			}
			if tc.grace == killAfter {
				expect(t, out, "got-term")
				return // the cleanup kills it; it would take 10s
			}
			var res Result
			select {
			case res = <-resc:
			case <-time.After(5 * time.Second):
				t.Fatal("not killed 5s after the lock was lost")
			}
			killed := time.Now()
			if res.Status != syscall.WaitStatus(syscall.SIGKILL) {
				t.Errorf("status %#x, want killed by SIGKILL", uint32(res.Status))
			}
			if tc.term {
				expect(t, out, "got-term")
				// Never before KillBy; after it only by the time a loaded
				// machine takes to deliver SIGKILL and reap (a bound, not a
				// measurement: make bench measures).
				if late := killed.Sub(by); late < 0 || late > time.Second {
					t.Errorf("killed %v after KillBy, want at it", late)
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
	deadline.Within(t, 5*time.Second, waitReady, "Catch's first channel")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	if s := deadline.Within(t, 5*time.Second, sigs, "SIGHUP from Catch"); s != syscall.SIGHUP {
		t.Fatalf("got %v, want SIGHUP", s)
	}
	deadline.Within(t, 5*time.Second, ready, "Catch's second channel")
	syscall.Kill(os.Getpid(), syscall.SIGUSR2)
	if s := deadline.Within(t, 5*time.Second, sigs, "SIGUSR2 from Catch"); s != syscall.SIGUSR2 {
		t.Fatalf("got %v, want SIGUSR2", s)
	}
	syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	if s := deadline.Within(t, 5*time.Second, sigs, "SIGWINCH from Catch"); s != syscall.SIGWINCH {
		t.Fatalf("got %v, want SIGWINCH", s)
	}
	signal.Stop(sigs)
}

// startHelper runs helperRun in a process of its own (a process group of
// its own too, so that the test can kill that whole group), and returns it
// with its output lines.
func startHelper(t *testing.T, mode, script string, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", script)
	cmd.Env = append(append(os.Environ(), "SUPERVISE_HELPER="+mode), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, lines(stdout)
}

// expectPids reads lines "NAME PID" (in any order, as the helper and its
// command print them concurrently) until it has all the names.
func expectPids(t *testing.T, ch <-chan string, names ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	deadline := time.After(10 * time.Second)
	for len(got) < len(names) {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("output ended with %v, want %v", got, names)
			}
			name, num, _ := strings.Cut(l, " ")
			if pid, err := strconv.Atoi(num); err == nil && slices.Contains(names, name) {
				got[name] = pid
			}
		case <-deadline:
			t.Fatalf("timed out with %v, want %v", got, names)
		}
	}
	return got
}

// waitIgnoring waits until process pid ignores SIGTERM: the watchdog is up.
func waitIgnoring(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "SigIgn:\t"); ok {
				if m, err := strconv.ParseUint(v, 16, 64); err == nil && m&(1<<(syscall.SIGTERM-1)) != 0 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d does not ignore SIGTERM after 10s:\n%s", pid, b)
		}
		time.Sleep(time.Millisecond)
	}
}

// pidWatch is a process that the test waits for, by pidfd: no polling, and
// a pid that ended cannot be mistaken for a new process with the same pid.
type pidWatch struct{ fd int }

func watchPid(t *testing.T, pid int) *pidWatch {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	})
	return &pidWatch{fd}
}

// ended reports whether the process has ended within d.
func (w *pidWatch) ended(d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left < 0 {
			left = 0
		}
		n, err := unix.Poll(fds, int(left.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

// SIGKILL of the supervisor, or of its whole process group, leaves nothing
// of the command's process group running: the direct child dies by
// Pdeathsig, the rest (here a grandchild) by the watchdog. Signals sent to
// the watchdog, as they are to the command's group (the terminal's Ctrl-C
// and Ctrl-Z, --on-lost's SIGTERM), do not end it. Without a watchdog, the
// grandchild runs on.
func TestWatchdogKill9(t *testing.T) {
	for _, tc := range []struct {
		name     string
		watchdog bool
		group    bool // kill -9 -PGID of the supervisor's group
	}{
		{"pid", true, false},
		{"group", true, true},
		{"no watchdog", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := "run"
			if tc.watchdog {
				mode = "watchdog"
			}
			cmd, out := startHelper(t, mode, `sleep 300 & echo "grandchild $!"; wait`)
			pids := expectPids(t, out, "child", "group", "grandchild")
			child, pgid, gc := pids["child"], pids["group"], pids["grandchild"]
			grandchild := watchPid(t, gc)
			if pg, err := unix.Getpgid(gc); err != nil || pg != pgid {
				t.Fatalf("grandchild's group %d (%v), want the command's %d", pg, err, pgid)
			}
			if tc.watchdog {
				if pgid == child {
					t.Fatalf("the command leads its group %d: no watchdog", pgid)
				}
				wd := watchPid(t, pgid)
				waitIgnoring(t, pgid)
				for _, s := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
					syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGUSR1, syscall.SIGPIPE, syscall.SIGALRM, syscall.Signal(40)} {
					syscall.Kill(pgid, s)
				}
				if wd.ended(100 * time.Millisecond) {
					t.Fatal("the watchdog ended by a signal meant for the command's group")
				}
				if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pgid)); strings.Contains(string(st), ") T ") {
					t.Fatal("the watchdog stopped by a signal meant for the command's group")
				}
			}
			if tc.group {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			} else {
				cmd.Process.Kill()
			}
			start := time.Now()
			wait := 5 * time.Second
			if !tc.watchdog {
				wait = 500 * time.Millisecond // to show that it would run on
			}
			gone := grandchild.ended(wait)
			switch {
			case tc.watchdog && !gone:
				t.Fatalf("the grandchild still runs %v after its supervisor was killed", wait)
			case !tc.watchdog && gone:
				t.Fatal("without a watchdog, the grandchild ended too: the test proves nothing")
			case gone:
				t.Logf("grandchild gone %v after its supervisor", time.Since(start).Round(time.Microsecond))
			}
		})
	}
}

// A watchdog that dies while the command runs (killed by a signal in its
// first millisecond, before it ignores signals; by hand; by the OOM
// killer) is replaced by another in the command's group, which does its
// job when the supervisor is then killed.
func TestWatchdogReplaced(t *testing.T) {
	cmd, out := startHelper(t, "watchdog", `sleep 300 & echo "grandchild $!"; wait`)
	pids := expectPids(t, out, "child", "group", "grandchild")
	pgid, gc := pids["group"], pids["grandchild"]
	grandchild := watchPid(t, gc)
	first := watchPid(t, pgid)
	syscall.Kill(pgid, syscall.SIGKILL)
	if !first.ended(5 * time.Second) {
		t.Fatal("the watchdog survived SIGKILL")
	}
	next := waitWatchdog(t, pgid, pgid)
	waitIgnoring(t, next)
	cmd.Process.Kill()
	if !grandchild.ended(5 * time.Second) {
		t.Fatal("the grandchild still runs 5s after its supervisor was killed")
	}
}

// waitWatchdog waits for a watchdog other than not in process group pgid.
func waitWatchdog(t *testing.T, pgid, not int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			pid, _ := strconv.Atoi(filepath.Base(d))
			if pid == not {
				continue
			}
			argv, _ := os.ReadFile(d + "/cmdline")
			if pg, err := unix.Getpgid(pid); err == nil && pg == pgid && strings.Contains(string(argv), WatchdogFlag+"=") {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new watchdog in group %d after 10s", pgid)
		}
		time.Sleep(time.Millisecond)
	}
}

// The watchdog holds what Keep gave it (tnl-do: its connection to the
// server) until it has sent SIGKILL to the command's group: when the
// supervisor is killed, the other end sees the connection close (the
// server: releases the lock) only then. Here the watchdog is stopped for a
// while, to show that the connection stays open as long as the group has
// not been killed. The test is a subreaper, so that the orphans stay in its
// session and the kernel does not continue the stopped watchdog (it does,
// with SIGHUP and SIGCONT, for a process group that becomes orphaned).
func TestWatchdogHoldsConnection(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skip("no subreaper:", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	path := filepath.Join(t.TempDir(), "sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd, out := startHelper(t, "watchdog", `sleep 300 & echo "grandchild $!"; wait`, "SUPERVISE_KEEP="+path)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pids := expectPids(t, out, "child", "group", "grandchild")
	wdPid, gc := pids["group"], pids["grandchild"]
	defer func() {
		// The orphans are ours to reap (and, if the test failed, to end).
		for _, pid := range []int{wdPid, pids["child"], gc} {
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	}()
	grandchild := watchPid(t, gc)
	waitIgnoring(t, wdPid)
	syscall.Kill(wdPid, syscall.SIGSTOP)
	waitState(t, wdPid, 'T')
	cmd.Process.Kill()
	cmd.Wait()

	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from the kept connection while the watchdog is stopped: %v, want a timeout (it stays open)", err)
	}
	if grandchild.ended(0) {
		t.Fatal("the grandchild ended, with the watchdog stopped")
	}
	syscall.Kill(wdPid, syscall.SIGCONT)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from the kept connection once the watchdog runs: %v, want EOF", err)
	}
	if !grandchild.ended(5 * time.Second) {
		t.Fatal("the grandchild still runs 5s after the watchdog was continued")
	}
}

// When the supervisor ends as it should, Close shuts down what Keep was
// given: the other end (the server) sees the connection end at once, not
// when the watchdog gets a processor to exit (here: stopped).
func TestWatchdogCloseShutsDown(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skip("no subreaper:", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	dir := t.TempDir()
	path, gate := filepath.Join(dir, "sock"), filepath.Join(dir, "go")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd, out := startHelper(t, "watchdog", `while [ ! -e `+gate+` ]; do sleep 0.01; done`, "SUPERVISE_KEEP="+path)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pids := expectPids(t, out, "child", "group")
	wdPid := pids["group"]
	defer func() {
		syscall.Kill(wdPid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(wdPid, &ws, 0, nil)
	}()
	waitIgnoring(t, wdPid)
	syscall.Kill(wdPid, syscall.SIGSTOP)
	waitState(t, wdPid, 'T')
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, out, "exit "); got != "0" {
		t.Fatalf("exit %s, want 0", got)
	}
	cmd.Wait()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from the kept connection after a normal end, the watchdog stopped: %v, want EOF", err)
	}
}

// waitState waits until the state letter of pid (in /proc/PID/stat) is st.
func waitState(t *testing.T, pid int, st byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == st {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not in state %c after 10s: %s", pid, st, b)
		}
		time.Sleep(time.Millisecond)
	}
}

// When the supervisor ends as it should, the watchdog exits by itself and
// kills nothing: what a command that exited normally left behind is left
// alone, as without a watchdog.
func TestWatchdogStandsDown(t *testing.T) {
	cmd, out := startHelper(t, "watchdog", `sleep 300 & echo "grandchild $!"`)
	pids := expectPids(t, out, "child", "group", "grandchild")
	pgid, gc := pids["group"], pids["grandchild"]
	wd := watchPid(t, pgid)
	grandchild := watchPid(t, gc)
	if got := expect(t, out, "exit "); got != "0" {
		t.Fatalf("exit %s, want 0", got)
	}
	// The helper exits now; the stdout pipe stays open (the grandchild has
	// it), so wait for the process itself.
	if err := cmd.Process.Signal(syscall.Signal(0)); err == nil {
		if _, err := cmd.Process.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if !wd.ended(5 * time.Second) {
		t.Fatal("the watchdog still runs 5s after its supervisor ended")
	}
	if grandchild.ended(50 * time.Millisecond) {
		t.Fatal("the watchdog killed what the command left when it ended normally")
	}
}

// A watchdog that StartWatchdog did not start refuses to run, so that a
// stray "--watchdog-of" kills nobody's process group.
func TestWatchdogRefusesStrangers(t *testing.T) {
	for _, stdin := range []string{"null", "socket of another pid"} {
		cmd := exec.Command(os.Args[0], WatchdogFlag+"="+strconv.Itoa(os.Getpid()+1))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if stdin == "null" {
			cmd.Stdin = nil
		} else {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			f := os.NewFile(uintptr(fds[1]), "socket")
			defer f.Close()
			defer unix.Close(fds[0])
			cmd.Stdin = f
		}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--watchdog-of is for its own use") {
			t.Errorf("stdin %s: %v, %q; want status 2 and a line", stdin, err, out)
		}
	}
}
