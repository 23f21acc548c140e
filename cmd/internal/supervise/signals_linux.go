package supervise

import (
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The signals tnl-do catches, in two sets.
//
// Terminating: every catchable signal whose default action ends the process.
// While tnl-do waits for the lock, one of these ends the wait with status
// 128+N and nothing runs; once the command runs, each is passed on to it.
//
// Job control: SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGWINCH. While tnl-do
// waits, a stop signal stops it (as it would have without tnl-do catching
// it) and the others are dropped; once the command runs, each is passed on.
//
// Not caught: SIGKILL and SIGSTOP (nobody can), SIGCHLD (it is about our own
// child), SIGURG (the Go runtime sends it to itself to preempt goroutines),
// SIGPROF (the runtime's profiler), the fault signals SEGV, BUS, FPE, ILL, TRAP,
// SYS and STKFLT (a Go program cannot catch them), and signals 32 to 34 (libc
// internals). Real-time signals 35 to 64 are passed on like the others, once
// caught: see Catch.
var (
	terminating = []syscall.Signal{
		syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGABRT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGALRM,
		syscall.SIGTERM, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM,
		syscall.SIGIO, syscall.SIGPWR,
	}
	jobControl = []syscall.Signal{
		syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGWINCH,
	}
)

func init() {
	for s := 35; s <= 64; s++ {
		terminating = append(terminating, syscall.Signal(s))
	}
}

// startIgnored records, before anyone calls signal.Notify, which signals
// were ignored when the process started: those stay ignored (see the package
// doc), so they are left out of both sets.
var startIgnored = sync.OnceValue(func() map[syscall.Signal]bool {
	m := map[syscall.Signal]bool{}
	for _, set := range [][]syscall.Signal{terminating, jobControl} {
		for _, s := range set {
			if signal.Ignored(s) {
				m[s] = true
			}
		}
	}
	return m
})

func filter(set []syscall.Signal, more ...syscall.Signal) []os.Signal {
	set = append(set, more...)
	ign := startIgnored()
	out := make([]os.Signal, 0, len(set))
	for _, s := range set {
		if !ign[s] {
			out = append(out, s)
		}
	}
	return out
}

// TerminatingSignals returns the signals to catch from the start: those whose
// default action ends the process and that were not ignored at start. Call it
// before any signal.Notify.
func TerminatingSignals() []os.Signal { return filter(terminating) }

// lateDelay is how long after the others Catch waits to catch the signals
// of lateSet and the real-time ones.
const lateDelay = 50 * time.Millisecond

var lateSet = []syscall.Signal{syscall.SIGABRT, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM, syscall.SIGIO, syscall.SIGPWR}

var waitSet = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM}

// JobControlSignals returns the signals to catch once the command runs.
func JobControlSignals() []os.Signal { return filter(jobControl) }

// IsTerminating reports whether sig ends the wait for a lock.
func IsTerminating(sig os.Signal) bool {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return false
	}
	for _, t := range terminating {
		if t == s {
			return true
		}
	}
	return false
}

// Catch starts delivering every signal of both sets to ch. Catching a signal
// costs a round trip to the Go runtime's signal thread (two context switches,
// 30 to 50µs; there are some 50 signals), too much to do first when
// "tnl-do NAME -- true" must cost little more than flock(1). So it happens in
// the background, in order of need, overlapping argument parsing and the
// network round trips:
//
//   - waitReady is closed once HUP, INT, QUIT and TERM are caught: wait for
//     it before asking for the lock, so that they end a wait with 128+N;
//   - ready is closed once USR1, USR2, PIPE, ALRM and the job-control
//     signals are caught: wait for it before starting the command;
//   - the signals nobody uses to steer a command from outside (ABRT, XCPU,
//     XFSZ, VTALRM, IO, PWR, and the real-time signals 35 to 64) are caught
//     lateDelay later, so that a short run does not pay for them: one that
//     arrives in tnl-do's first 50 ms ends tnl-do as it would have without
//     tnl-do catching it (and the kernel then ends the command, if it has
//     started: see Pdeathsig in the package doc).
//
// A signal that arrives before it is caught has its default action: the
// job-control ones stop or continue tnl-do, the others end it (before the
// command has started, but for the late ones).
func Catch(ch chan<- os.Signal) (waitReady, ready <-chan struct{}) {
	var first, rest, late []os.Signal
	for _, s := range append(filter(terminating), filter(jobControl)...) {
		n := s.(syscall.Signal)
		switch {
		case slices.Contains(waitSet, n):
			first = append(first, s)
		case n >= 35 || slices.Contains(lateSet, n):
			late = append(late, s)
		default:
			rest = append(rest, s)
		}
	}
	w, r := make(chan struct{}), make(chan struct{})
	go func() {
		signal.Notify(ch, first...)
		close(w)
		signal.Notify(ch, rest...)
		close(r)
		time.Sleep(lateDelay)
		signal.Notify(ch, late...)
	}()
	return w, r
}

// stopSelf does what a stop signal would have done to a waiting tnl-do, had
// it not been caught: stop, when a shell's job control can continue it.
func stopSelf() {
	p := &Process{ownPgrp: unix.Getpgrp()}
	if p.parentHasJobControl() {
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
}
