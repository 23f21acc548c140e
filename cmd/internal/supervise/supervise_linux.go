package supervise

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
)

// LookPath finds the program named by name as a shell would: a name with a
// slash is used as it is, any other is searched in $PATH (an entry "." in
// $PATH is honoured, as shells do). The error carries exit status 127 when
// there is no such program and 126 when it cannot be executed.
func LookPath(name string) (string, error) {
	if name == "" {
		return "", exitcode.New(exitcode.NotFound, "cannot run the empty command")
	}
	path, err := exec.LookPath(name)
	if errors.Is(err, exec.ErrDot) {
		err = nil
	}
	if err == nil {
		return path, nil
	}
	why := err
	var ee *exec.Error
	if errors.As(err, &ee) {
		why = ee.Err
	}
	var pe *fs.PathError
	if errors.As(why, &pe) {
		why = pe.Err
	}
	code := exitcode.NotExecutable
	if errors.Is(why, exec.ErrNotFound) || errors.Is(why, fs.ErrNotExist) {
		code = exitcode.NotFound
	}
	return "", &exitcode.Error{Code: code, Err: fmt.Errorf("cannot run %s: %w", name, why)}
}

// Process is a running command.
type Process struct {
	pid     int
	pgid    int // its process group: its own pid, or its watchdog's
	ownPgrp int // tnl-do's process group
	tty     *os.File
	done    chan struct{}
	wd      *Watchdog // or nil

	mu      sync.Mutex
	reaped  bool
	stopped bool // a stop was seen and no SIGCONT sent since
	status  syscall.WaitStatus

	// jobControl reports whether someone (a shell with job control) will
	// continue tnl-do's process group after it stops; a variable for tests.
	jobControl func() bool
}

// Start starts the command. The error is an *exitcode.Error: 127 when the
// command is not found, 126 when it cannot be executed.
func Start(cfg Config) (*Process, error) {
	if len(cfg.Argv) == 0 {
		return nil, exitcode.New(exitcode.Usage, "no command given")
	}
	path := cfg.Path
	if path == "" {
		var err error
		if path, err = LookPath(cfg.Argv[0]); err != nil {
			return nil, err
		}
	}
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	files, closeFiles, err := stdFiles(cfg)
	if err != nil {
		return nil, err
	}
	defer closeFiles()

	p := &Process{ownPgrp: unix.Getpgrp(), done: make(chan struct{})}
	p.jobControl = p.parentHasJobControl
	attr := &syscall.SysProcAttr{
		Setpgid: true, // a process group of its own: see the package doc
		// The kernel kills the command when the forking thread dies; run
		// keeps that thread alive, and only it, until the child is reaped.
		Pdeathsig: syscall.SIGKILL,
	}
	if cfg.Watchdog != nil {
		// Not before the watchdog is there: the command joins the group
		// it leads, and never runs unguarded.
		wd, err := cfg.Watchdog.wait()
		if err != nil {
			return nil, exitcode.WithHint(exitcode.New(exitcode.NotExecutable, "cannot run %s: %w", cfg.Argv[0], err),
				"the watchdog is this program run again from /proc/self/exe: is /proc mounted?")
		}
		attr.Pgid = wd
		p.pgid = wd
		p.wd = cfg.Watchdog
	}
	if !cfg.NoTerminal {
		p.openTerminal(attr)
	}

	started := make(chan error, 1)
	go p.run(path, cfg.Argv, env, cfg.Dir, files, attr, started)
	if err := <-started; err != nil {
		if p.tty != nil {
			p.tty.Close()
		}
		if cfg.Watchdog != nil && errors.Is(err, syscall.EPERM) {
			// setpgid: the watchdog's group is gone, so is the watchdog.
			return nil, exitcode.New(exitcode.NotExecutable, "cannot run %s: its watchdog (pid %d) is gone", cfg.Argv[0], p.pgid)
		}
		return nil, startError(cfg.Argv[0], path, err)
	}
	return p, nil
}

// stdFiles returns the command's descriptors 0, 1 and 2; closeNulls closes the
// /dev/null opened for any of them, once the command has started.
func stdFiles(cfg Config) (files []uintptr, closeNulls func(), err error) {
	files = []uintptr{fdOf(cfg.Stdin, os.Stdin), fdOf(cfg.Stdout, os.Stdout), fdOf(cfg.Stderr, os.Stderr)}
	var nulls []*os.File
	closeNulls = func() {
		for _, f := range nulls {
			f.Close()
		}
	}
	for i, fd := range files {
		if _, err := unix.FcntlInt(fd, unix.F_GETFD, 0); err != nil {
			// tnl-do was started with this descriptor closed: give the
			// command /dev/null there, as it would otherwise fail to start
			// (and a closed 0, 1 or 2 would be reused by its first open).
			null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				closeNulls()
				return nil, nil, exitcode.New(exitcode.NotExecutable, "cannot run %s: %w", cfg.Argv[0], err)
			}
			nulls = append(nulls, null)
			files[i] = null.Fd()
		}
	}
	return files, closeNulls, nil
}

// openTerminal keeps the controlling terminal, if any, for job control;
// when we are its foreground, the command's group takes it over.
func (p *Process) openTerminal(attr *syscall.SysProcAttr) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return
	}
	p.tty = tty
	if fg, err := tcgetpgrp(tty); err == nil && fg == p.ownPgrp {
		// We are the terminal's foreground: the child puts its new
		// group in the foreground itself, before exec, with its signals
		// still blocked (so no SIGTTOU), and before it can read.
		attr.Foreground = true
		attr.Ctty = int(tty.Fd())
	}
}

func fdOf(f, def *os.File) uintptr {
	if f == nil {
		f = def
	}
	return f.Fd()
}

// startError turns an exec failure into the status a shell would give.
func startError(name, path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		if _, serr := os.Stat(path); serr == nil {
			// The file is there, so what is missing is its interpreter.
			return exitcode.New(exitcode.NotExecutable, "cannot run %s: bad interpreter: %w", name, err)
		}
		return exitcode.New(exitcode.NotFound, "cannot run %s: %w", name, err)
	default:
		return exitcode.New(exitcode.NotExecutable, "cannot run %s: %w", name, err)
	}
}

// run forks the child and waits for it on one locked OS thread: Pdeathsig
// fires when the thread that forked the child exits (golang/go#27505), so the
// goroutine holds its thread until the child is reaped.
func (p *Process) run(path string, argv, env []string, dir string, files []uintptr, attr *syscall.SysProcAttr, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Dir: dir, Env: env, Files: files, Sys: attr})
	if err != nil {
		started <- err
		return
	}
	p.pid = pid
	if p.pgid == 0 {
		p.pgid = pid
	}
	started <- nil
	p.wait()
}

// wait follows the child until it exits. waitid(WNOWAIT) only watches; the
// event is then consumed by wait4 under p.mu, so that Signal never sends to a
// pid that has been reaped (and might have been reused).
func (p *Process) wait() {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOWAIT, nil)
		if err == syscall.EINTR {
			continue
		}
		p.mu.Lock()
		var ws syscall.WaitStatus
		wpid, werr := syscall.Wait4(p.pid, &ws, syscall.WNOHANG|syscall.WUNTRACED, nil)
		switch {
		case err == nil && (werr == syscall.EINTR || (werr == nil && wpid == 0)):
			p.mu.Unlock()
			continue
		case err == nil && werr == nil && ws.Stopped():
			p.stopped = true
			p.mu.Unlock()
			p.onStop()
			continue
		}
		// Exited or killed; or waiting failed (ECHILD: someone else reaped it),
		// which we report as a kill by SIGKILL rather than pretend success.
		if err != nil || werr != nil {
			ws = syscall.WaitStatus(syscall.SIGKILL)
		}
		p.reaped = true
		p.status = ws
		if p.wd != nil {
			// The group may outlive the command, but tnl-do now ends:
			// a watchdog that dies now need not be replaced.
			p.wd.retire()
		}
		p.restoreTerminal()
		p.mu.Unlock()
		if p.tty != nil {
			p.tty.Close()
		}
		close(p.done)
		return
	}
}

// onStop runs when the child stopped. If it had the terminal, the stop came
// from the terminal (Ctrl-Z) or from a read or write in the wrong place: do
// what a shell's job control expects of a foreground job, stop with it.
func (p *Process) onStop() {
	if p.tty == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return
	}
	fg, err := tcgetpgrp(p.tty)
	if err != nil || fg != p.pgid {
		// Stopped by someone else (kill -STOP, a TSTP passed on in the
		// background): whoever stopped it continues it.
		return
	}
	if !p.jobControl() {
		// Nobody would ever continue us: undo the stop, as the kernel
		// discards terminal stops for orphaned process groups.
		p.stopped = false
		syscall.Kill(-p.pgid, syscall.SIGCONT)
		return
	}
	_ = tcsetpgrp(p.tty, p.ownPgrp)
	// Stop tnl-do's whole group, the job the shell knows; SIGSTOP because our
	// own SIGTSTP is caught to be passed on. The shell's "fg" or "bg" sends
	// SIGCONT, which Forward turns into resume.
	p.mu.Unlock()
	syscall.Kill(-p.ownPgrp, syscall.SIGSTOP)
	p.mu.Lock()
}

// parentHasJobControl reports whether tnl-do's parent is a shell managing
// tnl-do's group as a job: in the same session, in another group.
func (p *Process) parentHasJobControl() bool {
	ppid := os.Getppid()
	ppg, err1 := unix.Getpgid(ppid)
	psid, err2 := unix.Getsid(ppid)
	sid, err3 := unix.Getsid(0)
	return err1 == nil && err2 == nil && err3 == nil && ppg != p.ownPgrp && psid == sid
}

// restoreTerminal gives the terminal back to tnl-do's group if the child's
// group still has it. Called with p.mu held.
func (p *Process) restoreTerminal() {
	if p.tty == nil {
		return
	}
	if fg, err := tcgetpgrp(p.tty); err == nil && fg == p.pgid {
		_ = tcsetpgrp(p.tty, p.ownPgrp)
	}
}

// Pid returns the child's process id.
func (p *Process) Pid() int { return p.pid }

// Pgid returns the child's process group id: its own pid, or with a
// Watchdog the watchdog's.
func (p *Process) Pgid() int { return p.pgid }

// Done is closed when the child has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Status returns how the child ended; valid once Done is closed.
func (p *Process) Status() syscall.WaitStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// ExitCode returns the status a shell would report for the child: its exit
// status, or 128+N for signal N. Valid once Done is closed.
func (p *Process) ExitCode() int { return exitcode.FromWaitStatus(p.Status()) }

// Signal sends sig to the child alone. It returns os.ErrProcessDone once the
// child has been reaped.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return os.ErrProcessDone
	}
	return syscall.Kill(p.pid, sig)
}

// SignalGroup sends sig to the child's whole process group. It returns
// os.ErrProcessDone once the child has been reaped.
func (p *Process) SignalGroup(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return os.ErrProcessDone
	}
	if sig == syscall.SIGKILL && p.wd != nil {
		p.wd.retire() // it dies with the group, as it should
	}
	return syscall.Kill(-p.pgid, sig)
}

// Forward passes a signal that tnl-do received on to the child, once. SIGCONT
// is special: it means tnl-do itself was continued (after a stop, or by "fg"
// or "bg"), so the child is given the terminal again if tnl-do has it, and
// its whole group is continued if it was stopped.
func (p *Process) Forward(sig os.Signal) {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return
	}
	if s == syscall.SIGCONT {
		p.resume()
		return
	}
	_ = p.Signal(s)
	switch s {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT:
		// A stopped child acts on these only once it runs again, and
		// tnl-do would wait for it, holding the lock, until someone
		// continued it.
		_ = p.SignalGroup(syscall.SIGCONT)
	}
}

func (p *Process) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return
	}
	if p.tty != nil {
		if fg, err := tcgetpgrp(p.tty); err == nil && fg == p.ownPgrp {
			_ = tcsetpgrp(p.tty, p.pgid)
		}
	}
	if p.stopped {
		p.stopped = false
		syscall.Kill(-p.pgid, syscall.SIGCONT)
		return
	}
	syscall.Kill(p.pid, syscall.SIGCONT)
}

// Supervise passes signals on and acts on a lost lock until the child is
// reaped; the select loop over {signal, lock lost, child done} of consul lock.
func (p *Process) Supervise(o Options) Result {
	var res Result
	lost := o.Lost
	var kill <-chan time.Time
	for {
		select {
		case s := <-o.Signals:
			p.Forward(s)
		case <-lost:
			lost = nil
			res.Lost = true
			grace := time.Duration(0)
			if o.OnLost == Term {
				grace = o.KillAfter
				if o.KillBy != nil {
					if by := o.KillBy(); !by.IsZero() {
						grace = max(min(grace, time.Until(by)), 0)
					}
				}
			}
			if o.LostHook != nil {
				o.LostHook(grace)
			}
			switch {
			case o.OnLost == Term && grace > 0:
				// SIGCONT after SIGTERM: a stopped process acts on SIGTERM
				// only once it runs again.
				_ = p.SignalGroup(syscall.SIGTERM)
				_ = p.SignalGroup(syscall.SIGCONT)
				t := time.NewTimer(grace)
				defer t.Stop()
				kill = t.C
			case o.OnLost == Term, o.OnLost == Kill:
				_ = p.SignalGroup(syscall.SIGKILL)
			}
		case <-kill:
			kill = nil
			_ = p.SignalGroup(syscall.SIGKILL)
		case <-p.done:
			res.Status = p.Status()
			if res.Lost && o.OnLost != Ignore {
				// The lock is gone and the command has ended: whatever it
				// left in its process group (a child that ignores
				// SIGTERM) must not run on. The group outlives the
				// command; its id still names it while a member
				// lives, and for good while a watchdog leads it.
				if p.wd != nil {
					p.wd.retire()
				}
				_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
			}
			return res
		}
	}
}

// tcgetpgrp returns the terminal's foreground process group.
func tcgetpgrp(tty *os.File) (int, error) {
	return unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
}

// tcsetpgrp makes pgrp the terminal's foreground group. A process outside the
// foreground group that does this gets SIGTTOU unless it blocks it, and we
// catch SIGTTOU to pass it on, so it is blocked on this thread for the call.
func tcsetpgrp(tty *os.File, pgrp int) error {
	var err error
	withTTOUBlocked(func() {
		err = unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, pgrp)
	})
	return err
}

// withTTOUBlocked runs f on a locked thread with SIGTTOU blocked: the
// terminal then lets a background process write or change the foreground
// group instead of stopping it (or, with a caught SIGTTOU, signalling it in a
// loop).
func withTTOUBlocked(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	set.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		f()
		return
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	f()
}

// TerminalWriter wraps f, typically os.Stderr, so that writing to it works
// while the command has the terminal's foreground, also under "stty tostop"
// (which would otherwise stop tnl-do, or signal it in a loop).
func TerminalWriter(f *os.File) *TermWriter { return &TermWriter{f: f} }

// TermWriter is returned by TerminalWriter.
type TermWriter struct{ f *os.File }

func (w *TermWriter) Write(b []byte) (n int, err error) {
	withTTOUBlocked(func() { n, err = w.f.Write(b) })
	return n, err
}
