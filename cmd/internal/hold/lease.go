package hold

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/acquire"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/supervise"
	"github.com/tnl-lock/tnl/lib/client"
)

// LeaseConfig is a lease to take (tnl-lock --ttl).
type LeaseConfig struct {
	// Request asks for the lock; its Prog, Name, Verbose and Stderr are
	// also used for what TakeLease says.
	Request acquire.Request
	TTL     time.Duration
	Stdout  io.Writer
}

// TakeLease takes a lease and prints the shell assignments of its id, its
// fencing token and its name, for eval, then returns with the lease held:
// it is the server's to keep until it is released or its TTL runs out.
// The errors are Run's: the conflict status, 125, 128+N.
func TakeLease(c LeaseConfig) error {
	req := &c.Request
	ctx, stop := supervise.CancelOnSignal(context.Background(), notify())
	cl, lease, err := req.DoLease(ctx, c.TTL)
	if cl != nil {
		defer cl.Close()
	}
	if sig := stop(); sig != nil {
		if lease != nil {
			// Granted as the signal came: nobody will have the id, and the
			// name would stay held until the TTL ends.
			dropLease(cl, lease)
		}
		return exitcode.Silent(exitcode.FromSignal(sig.(syscall.Signal)))
	}
	if err != nil {
		return err
	}
	// A reader that went away (the script that ran eval "$(...)" died)
	// must not kill us with SIGPIPE before the lease is given back: nobody
	// would ever have its id. Ignored, the write fails with EPIPE instead.
	signal.Ignore(syscall.SIGPIPE)
	if _, err := io.WriteString(c.Stdout, Exports(lease)); err != nil {
		dropLease(cl, lease)
		return fmt.Errorf("cannot print the lease: %w", err)
	}
	if req.Verbose {
		fmt.Fprintf(req.Stderr, "%s: lease of %s held for %v; renew it with %s --renew, end it with %s --release\n",
			req.Prog, req.Name, lease.TTL.Truncate(time.Second), req.Prog, req.Prog)
	}
	return nil
}

// dropLease releases a lease whose id cannot reach anyone; a failure leaves
// it to its TTL.
func dropLease(cl *client.Client, lease *client.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cl.ReleaseLease(ctx, lease.ID)
}

// Exports is what tnl-lock --ttl prints: three lines of exported shell
// assignments, each value single-quoted, for eval "$(tnl-lock --ttl ...)".
func Exports(lease *client.Lease) string {
	return "export TNL_LEASE=" + shellQuote(lease.ID) + "\n" +
		"export TNL_FENCE=" + shellQuote(strconv.FormatUint(lease.Token, 10)) + "\n" +
		"export TNL_LOCK=" + shellQuote(lease.Name) + "\n"
}

// shellQuote quotes s for any POSIX shell: in single quotes, with each '
// written '\” (close, an escaped quote, open again). No valid lock name
// or id has a quote; the rule holds whatever comes.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Action is what tnl-lock does with a lease it is given the id of.
type Action int

// The lease actions.
const (
	Renew   Action = iota + 1 // --renew
	Release                   // --release
	IsHeld                    // --is-held
)

// ActConfig is an action on a lease (tnl-lock --renew, --release,
// --is-held).
type ActConfig struct {
	Prog   string
	Dial   client.Options
	Action Action
	Lease  string        // the id, valid
	Name   string        // when not empty, the lease must be one of this name
	TTL    time.Duration // Renew: the new TTL; 0 the one it was granted with
	// Verbose says what happened; without it only failures are said, and
	// for IsHeld not even "not held" (the status says it).
	Verbose bool
	Stderr  io.Writer
}

// Act does the action. It returns nil (0) when done, or an error with its
// status: 122 when the lease is not held (unknown, expired, released, or
// of another name than Name), 125 when the server cannot be reached or
// refuses, 128+N when signal N came first.
func Act(c ActConfig) error {
	ctx, stop := supervise.CancelOnSignal(context.Background(), notify())
	err := act(ctx, c)
	if sig := stop(); sig != nil {
		return exitcode.Silent(exitcode.FromSignal(sig.(syscall.Signal)))
	}
	if err == nil || exitcode.Of(err) != exitcode.Lost || c.Action != IsHeld || c.Verbose {
		return err
	}
	return exitcode.Silent(exitcode.Lost)
}

func act(ctx context.Context, c ActConfig) error {
	cl, err := acquire.Dial(ctx, c.Dial)
	if err != nil {
		return err
	}
	defer cl.Close()
	if c.Name != "" && c.Action != IsHeld {
		// Checked first, so that a lease of another name is left alone.
		st, err := cl.LeaseHeld(ctx, c.Lease)
		if err := c.check(st, err); err != nil {
			return err
		}
	}
	var st client.LeaseStatus
	switch c.Action {
	case Renew:
		st, err = cl.Renew(ctx, c.Lease, c.TTL)
	case Release:
		err = cl.ReleaseLease(ctx, c.Lease)
	case IsHeld:
		st, err = cl.LeaseHeld(ctx, c.Lease)
	}
	if err := c.check(st, err); err != nil {
		return err
	}
	c.say(st)
	return nil
}

// check turns the answer about the lease into the action's status.
func (c *ActConfig) check(st client.LeaseStatus, err error) error {
	var se *client.ServerError
	switch {
	case errors.Is(err, client.ErrNoLease):
		return exitcode.New(exitcode.Lost, "lease not held: %s", client.ErrNoLease)
	case errors.As(err, &se):
		return &exitcode.Error{Code: exitcode.Unreachable, Err: err}
	case err != nil:
		return exitcode.New(exitcode.Unreachable, "lease: %w", err)
	case c.Name != "" && st.Name != "" && st.Name != c.Name:
		return exitcode.New(exitcode.Lost, "lease not held: it is a lease of %s, not of %s", st.Name, c.Name)
	}
	return nil
}

// say tells, with -v, what was done.
func (c *ActConfig) say(st client.LeaseStatus) {
	if !c.Verbose {
		return
	}
	left := st.TTL.Truncate(time.Second)
	switch c.Action {
	case Renew:
		fmt.Fprintf(c.Stderr, "%s: renewed the lease of %s (token %d): %v left\n", c.Prog, st.Name, st.Token, left)
	case Release:
		fmt.Fprintf(c.Stderr, "%s: released the lease\n", c.Prog)
	case IsHeld:
		fmt.Fprintf(c.Stderr, "%s: the lease of %s is held (token %d): %v left\n", c.Prog, st.Name, st.Token, left)
	}
}
