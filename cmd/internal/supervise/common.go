package supervise

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Config says what to run and how.
type Config struct {
	// Argv is the command and its arguments. Argv[0] is looked up in $PATH
	// unless it contains a slash, as a shell does.
	Argv []string
	// Path, if set, is Argv[0] as LookPath found it already.
	Path string
	// Env is the command's environment; nil means tnl-do's own.
	Env []string
	// Dir is the working directory; "" means tnl-do's own.
	Dir string
	// Stdin, Stdout, Stderr are passed to the command; nil means tnl-do's own.
	Stdin, Stdout, Stderr *os.File
	// NoTerminal keeps the terminal's foreground where it is, even when
	// tnl-do owns it. For tests and for callers that run several commands.
	NoTerminal bool
	// Watchdog, if set, is the watchdog whose process group the command
	// joins (see the package doc); Start waits for it to be running. Nil:
	// the command leads a group of its own, and only it is killed by the
	// kernel if tnl-do is killed.
	Watchdog *Watchdog
}

// OnLost is what to do with the command when the lock is lost.
type OnLost int

// The --on-lost actions.
const (
	Term   OnLost = iota // SIGTERM to the group, SIGKILL after a grace period
	Kill                 // SIGKILL to the group at once
	Ignore               // let it run
)

// ParseOnLost parses "term", "kill" or "ignore".
func ParseOnLost(s string) (OnLost, error) {
	switch s {
	case "term":
		return Term, nil
	case "kill":
		return Kill, nil
	case "ignore":
		return Ignore, nil
	}
	return Term, fmt.Errorf("invalid --on-lost %q: want term, kill or ignore", s)
}

func (o OnLost) String() string {
	switch o {
	case Kill:
		return "kill"
	case Ignore:
		return "ignore"
	}
	return "term"
}

// Options drive Supervise.
type Options struct {
	// Signals carries the signals tnl-do receives; each is passed on with
	// Forward.
	Signals <-chan os.Signal
	// Lost is closed when the lock is lost.
	Lost <-chan struct{}
	// OnLost and KillAfter say what happens then.
	OnLost    OnLost
	KillAfter time.Duration
	// KillBy, if set, is called when Lost closes. A non-zero time it
	// returns is the latest moment for SIGKILL under OnLost Term: the grace
	// after SIGTERM ends there when KillAfter would end later, and SIGKILL
	// comes at once when that moment has passed. (tnl-do passes its lease's
	// deadline, after which the server may give the lock to someone else.)
	KillBy func() time.Time
	// LostHook, if set, is called once when Lost closes, before acting, so
	// the caller can say so. grace is what the command gets between SIGTERM
	// and SIGKILL under OnLost Term: KillAfter, or less when KillBy cut it
	// (0: SIGKILL at once); 0 for the other actions.
	LostHook func(grace time.Duration)
}

// Result is how supervision ended.
type Result struct {
	Status syscall.WaitStatus // how the child ended
	Lost   bool               // the lock was lost before it ended
}

// CancelOnSignal watches sigs while tnl-do waits for its lock: the returned
// context ends when a terminating signal (see TerminatingSignals) arrives; a
// stop signal (TSTP, TTIN, TTOU) stops tnl-do as it would have had it not
// been caught; SIGCONT, SIGWINCH and SIGPIPE mean nothing yet. stop ends the
// watch, so that sigs can be handed to Supervise, and returns the signal that
// ended the context, or nil.
func CancelOnSignal(parent context.Context, sigs <-chan os.Signal) (ctx context.Context, stop func() os.Signal) {
	ctx, cancel := context.WithCancel(parent)
	quit := make(chan struct{})
	got := make(chan os.Signal, 1)
	go func() {
		for {
			select {
			case s := <-sigs:
				switch {
				case s == syscall.SIGPIPE:
					// While waiting, tnl-do writes only to its server, and a
					// write to a connection the server has closed (a TLS
					// server refusing our certificate, a server going away)
					// raises SIGPIPE, because it is caught. The write's
					// EPIPE already reports that; the signal is our own.
				case IsTerminating(s):
					got <- s
					cancel()
					return
				case s == syscall.SIGTSTP || s == syscall.SIGTTIN || s == syscall.SIGTTOU:
					stopSelf()
				}
			case <-quit:
				got <- nil
				return
			}
		}
	}()
	var sig os.Signal
	stopped := false
	return ctx, func() os.Signal {
		if !stopped {
			stopped = true
			close(quit)
			sig = <-got
		}
		return sig
	}
}
