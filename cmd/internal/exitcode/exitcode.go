// Package exitcode is the one table of exit statuses of the tnl client
// commands (tnl-lock, tnl-do, and through them the shell helpers), and an
// error type that carries its status to the single place in each main package
// that turns an error into os.Exit's argument.
//
// The table follows flock(1), env(1) and bash, so that a script can tell what
// happened from the status alone:
//
//	child's own  tnl-do ran the command; its status is passed on unchanged
//	128+N        the command was killed by signal N (as bash reports it)
//	123          the lock was not granted, or the wait ran out (-E changes it)
//	122          the lock was lost while held
//	125          could not reach or talk to the server, or tnl itself failed
//	126, 127     the command could not be executed, or was not found
//	2            usage error
//
// It deliberately knows nothing about locks, signals or the network: callers
// decide which status an outcome deserves, this package only names the numbers
// and carries them.
package exitcode

import (
	"errors"
	"fmt"
	"io"
	"syscall"
)

// The statuses of the table above.
const (
	OK            = 0
	Usage         = 2   // bad flags or arguments, as every Unix command
	Lost          = 122 // the lock was lost while held (tcpnetlock's tnl_client)
	Conflict      = 123 // not granted or the wait ran out (tcpnetlock, xargs' 123)
	Unreachable   = 125 // cannot reach or talk to the server; also any failure of tnl itself, as env(1) and timeout(1) use 125
	NotExecutable = 126 // found but could not be executed (bash, env)
	NotFound      = 127 // not found (bash, env)
	SignalBase    = 128 // 128+N: killed by signal N (bash)
)

// Coder is implemented by errors that know the exit status they deserve.
type Coder interface {
	ExitCode() int
}

// Error is an error with an exit status and, optionally, a hint: one line
// telling the user how to fix it ("put -- before the command").
type Error struct {
	Code int
	Err  error
	Hint string
}

// Error returns the message of the wrapped error.
func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the status the program should exit with.
func (e *Error) ExitCode() int { return e.Code }

// New returns an *Error with the given status and a message built like
// fmt.Errorf (so %w works).
func New(code int, format string, args ...any) *Error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Wrap attaches code to err; it returns nil when err is nil.
func Wrap(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// WithHint returns err with a hint attached, keeping err's status.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Code: Of(err), Err: err, Hint: hint}
}

// Silent is a status without a message: the program has already said what
// there was to say (or the status is the command's own and needs no words).
func Silent(code int) error { return &Error{Code: code} }

// Of returns the exit status for err: 0 for nil, the status of the first error
// in the chain that implements Coder, else Unreachable (125): an error nobody
// classified is a failure of tnl itself, which env(1) and timeout(1) report as
// 125 too.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var c Coder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return Unreachable
}

// HintOf returns the hint of the first *Error in err's chain that has one.
func HintOf(err error) string {
	for err != nil {
		if e, ok := err.(*Error); ok && e.Hint != "" {
			return e.Hint
		}
		err = errors.Unwrap(err)
	}
	return ""
}

// Message reports whether err has something to say: an *Error made by Silent
// has not.
func Message(err error) bool {
	var e *Error
	if errors.As(err, &e) && e.Err == nil {
		return false
	}
	return err != nil
}

// FromSignal returns 128+N for signal N, the status bash reports for a
// command killed by that signal.
func FromSignal(sig syscall.Signal) int { return SignalBase + int(sig) }

// FromWaitStatus returns the status a shell would report for a child that
// ended with ws: its exit status, or 128+N when signal N killed it.
func FromWaitStatus(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return FromSignal(ws.Signal())
	}
	return Unreachable
}

// Print writes err to w as tnl's commands report errors, one line
// "prog: message", then "prog: hint: ..." when the error has a hint, and
// returns the exit status for err. Nothing is written for nil or for a Silent
// error.
func Print(w io.Writer, prog string, err error) int {
	if Message(err) {
		fmt.Fprintf(w, "%s: %s\n", prog, err)
	}
	if h := HintOf(err); h != "" {
		fmt.Fprintf(w, "%s: hint: %s\n", prog, h)
	}
	return Of(err)
}
