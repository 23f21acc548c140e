//go:build !linux

package supervise

// tnl-do's supervision relies on Linux (PR_SET_PDEATHSIG, waitid); elsewhere
// Start refuses to run anything rather than run a command that could outlive
// its lock.

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
)

// Process is a running command.
type Process struct{}

var errUnsupported = errors.New("running a command under a lock is only supported on Linux")

// LookPath is not supported here.
func LookPath(name string) (string, error) {
	return "", &exitcode.Error{Code: exitcode.NotExecutable, Err: errUnsupported}
}

// Start is not supported here.
func Start(cfg Config) (*Process, error) {
	return nil, &exitcode.Error{Code: exitcode.NotExecutable, Err: errUnsupported}
}

func (p *Process) Pid() int                             { return 0 }
func (p *Process) Done() <-chan struct{}                { return nil }
func (p *Process) Status() syscall.WaitStatus           { return 0 }
func (p *Process) ExitCode() int                        { return 0 }
func (p *Process) Signal(sig syscall.Signal) error      { return errUnsupported }
func (p *Process) SignalGroup(sig syscall.Signal) error { return errUnsupported }
func (p *Process) Forward(sig os.Signal)                {}
func (p *Process) Supervise(o Options) Result           { return Result{} }

// TerminalWriter returns f.
func TerminalWriter(f *os.File) *os.File { return f }

// TerminatingSignals returns the signals that end a wait.
func TerminatingSignals() []os.Signal {
	return []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}
}

// Catch catches the signals that end a wait.
func Catch(ch chan<- os.Signal) (waitReady, ready <-chan struct{}) {
	signal.Notify(ch, TerminatingSignals()...)
	c := make(chan struct{})
	close(c)
	return c, c
}

func stopSelf() {}

// Watchdog is not supported here.
type Watchdog struct{}

// WatchdogFlag names the watchdog's argument.
const WatchdogFlag = "--watchdog-of"

// IsWatchdog reports false: there is no watchdog here.
func IsWatchdog(args []string) bool { return false }

// RunWatchdog is not supported here.
func RunWatchdog(arg string) int { return 2 }

// StartWatchdog returns a watchdog that does nothing.
func StartWatchdog() *Watchdog { return &Watchdog{} }

// Keep does nothing here.
func (w *Watchdog) Keep(rc syscall.RawConn) error { return errUnsupported }

// Close does nothing here.
func (w *Watchdog) Close() {}

// JobControlSignals returns nothing here.
func JobControlSignals() []os.Signal { return nil }

// IsTerminating reports whether sig ends the wait for a lock.
func IsTerminating(sig os.Signal) bool { return sig != nil }
