// Package hold is tnl-lock once its flags are read: take a lock and hold
// it until standard input ends, a signal says stop, or the lock is lost;
// print the fencing token the moment it is granted.
//
// It does not parse flags (tnl-lock's main does, with package cli) and
// does not run commands (package supervise does, for tnl-do).
package hold

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/acquire"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/supervise"
	"github.com/tnl-lock/tnl/lib/client"
)

// Config is what to hold and how.
type Config struct {
	// Request asks for the lock; its Prog, Name, Verbose and Stderr are
	// also used for what Run says.
	Request acquire.Request
	// LostDeadline: on a loss, print "lost" at once and exit only at the
	// deadline (tnl-lock --lost-deadline, for tnl.sh's holders).
	LostDeadline bool
	Stdin        io.Reader
	Stdout       io.Writer
}

// Run takes and holds the lock. It returns nil once the lock is released
// at the end of input or on a signal, or an error carrying its status:
// the conflict status, 122 (lost), 125 (server), 128+N (a signal ended the
// wait).
func Run(c Config) error {
	req := &c.Request
	// Standard input is watched from the start, not only once the lock is
	// held: whoever started tnl-lock may go away while it waits (a script
	// killed, a coprocess whose shell exited), and a waiter nobody will
	// ever use must not keep its place in the queue until it is granted.
	// Its end gives up the wait at once (the conflict status, as a wait
	// that ran out). When the input has already ended before the lock is
	// asked for, nobody is there to wait for: tnl-lock asks once, as
	// without --wait, so that the outcome does not depend on which of the
	// end of input and the server's answer comes first.
	ended, eof := watchInput(c.Stdin)
	if ended && req.Lock.Wait != 0 {
		if req.Verbose {
			fmt.Fprintf(req.Stderr, "%s: input ended before the lock was asked for: asking once instead of waiting\n", req.Prog)
		}
		req.Lock.Wait = 0
	}
	sigs := notify()
	cl, lock, err := take(req, sigs, eof)
	if err != nil {
		return err
	}
	defer cl.Close()

	// The one line a script waits for. os.Stdout is not buffered, so it is
	// out the moment Fprintf returns.
	if _, err := fmt.Fprintf(c.Stdout, "%d\n", lock.Token()); err != nil {
		lock.Release()
		return fmt.Errorf("cannot print the token: %w", err)
	}
	if req.Verbose {
		fmt.Fprintf(req.Stderr, "%s: holding %s until end of input or SIGTERM\n", req.Prog, req.Name)
	}
	return keep(c, lock, sigs, eof)
}

// notify catches INT, TERM, HUP and QUIT: they end a wait (128+N, as
// tnl-do) and, once the lock is held, release it (exit 0); one ignored at
// start (nohup) stays ignored. Other signals keep their default action:
// tnl-lock dies, its connection closes, the server releases.
func notify() chan os.Signal {
	sigs := make(chan os.Signal, 8)
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT} {
		if !signal.Ignored(sig) {
			signal.Notify(sigs, sig)
		}
	}
	return sigs
}

// take asks for the lock; a signal or the end of input ends a wait.
func take(req *acquire.Request, sigs chan os.Signal, eof <-chan struct{}) (*client.Client, *client.Lock, error) {
	sctx, stop := supervise.CancelOnSignal(context.Background(), sigs)
	ctx, giveUp := context.WithCancel(sctx)
	defer giveUp()
	if req.Lock.Wait != 0 {
		go func() {
			select {
			case <-eof:
				giveUp()
			case <-ctx.Done():
			}
		}()
	}
	cl, lock, err := req.Do(ctx)
	if sig := stop(); sig != nil {
		if lock != nil {
			lock.Release()
		}
		if cl != nil {
			cl.Close()
		}
		return nil, nil, exitcode.Silent(exitcode.FromSignal(sig.(syscall.Signal)))
	}
	if err != nil {
		if lock == nil && sctx.Err() == nil && ctx.Err() != nil {
			// The end of input ended the wait; Do has left the queue.
			if req.Talk {
				return nil, nil, exitcode.New(req.Conflict, "lock %s not granted: end of input while waiting", req.Name)
			}
			return nil, nil, exitcode.Silent(req.Conflict)
		}
		return nil, nil, err
	}
	return cl, lock, nil
}

// keep holds the lock until the end of input, a signal or its loss.
func keep(c Config, lock *client.Lock, sigs chan os.Signal, eof <-chan struct{}) error {
	req := &c.Request
	select {
	case <-eof:
	case sig := <-sigs:
		if req.Verbose {
			fmt.Fprintf(req.Stderr, "%s: %v\n", req.Prog, sig)
		}
	case <-lock.Done():
		return lost(c, lock, sigs, eof)
	}
	if err := lock.Release(); err != nil {
		// The lock went away while we were letting it go: it is released
		// either way, but it was not held to the end.
		why := acquire.LossWhy(err)
		return exitcode.New(exitcode.Lost, "lock %s lost: %s", req.Name, why)
	}
	if req.Verbose {
		fmt.Fprintf(req.Stderr, "%s: released %s\n", req.Prog, req.Name)
	}
	return nil
}

// lost says the lock is lost: at once and with status 122, or with
// --lost-deadline a "lost" line at once and the exit at the deadline.
func lost(c Config, lock *client.Lock, sigs chan os.Signal, eof <-chan struct{}) error {
	req := &c.Request
	why := acquire.LossWhy(lock.Err())
	if !c.LostDeadline {
		return exitcode.New(exitcode.Lost, "lock %s lost: %s", req.Name, why)
	}
	// The line at once: whoever reads it stops using the lock now.
	// The exit at the deadline: what has not stopped by then must be
	// killed (tnl.sh's holders do), before the server can give the
	// lock to someone else. Until then the connection stays open, as
	// tnl-do keeps it for a command that is still stopping.
	fmt.Fprintln(c.Stdout, "lost")
	fmt.Fprintf(req.Stderr, "%s: lock %s lost: %s\n", req.Prog, req.Name, why)
	if left := time.Until(lock.KillBy()); left > 0 {
		t := time.NewTimer(left)
		defer t.Stop()
		select {
		case <-t.C:
		case <-eof:
		case <-sigs:
		}
	}
	return exitcode.Silent(exitcode.Lost)
}

// watchInput reads and discards stdin until its end, which closes eof.
// ended reports whether the input had ended already, as far as can be told
// without waiting: everything readable at once was read and its end came.
func watchInput(stdin io.Reader) (ended bool, eof <-chan struct{}) {
	done := make(chan struct{})
	if f, ok := stdin.(*os.File); ok && drained(f) {
		close(done)
		return true, done
	}
	go func() {
		// Whatever comes on standard input is ignored; its end (or an
		// error reading it) counts as the end.
		io.Copy(io.Discard, stdin)
		close(done)
	}()
	return false, done
}
