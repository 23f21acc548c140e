// Command tnl-lock acquires a network lock and holds it until its standard
// input ends or it is told to stop. See tnl-lock(1).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/acquire"
	"github.com/tnl-lock/tnl/cmd/internal/cli"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/supervise"
	"github.com/tnl-lock/tnl/lib/client"
)

var version = ""

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const prog = "tnl-lock"

const description = `Acquire the network lock NAME and hold it until standard input reaches end
of file, or SIGTERM, SIGINT, SIGHUP or SIGQUIT (then release it and exit 0). End of
input while waiting for the lock (-w) gives up the wait (status 123, -E).

When the lock is granted, tnl-lock prints its fencing token, a decimal number,
alone on one line on standard output, so that a script or a coprocess can wait
for that line:

  coproc LOCK { exec tnl-lock -w 30s build; }
  read -r TNL_FENCE <&"${LOCK[0]}" || exit 1   # held from here
  ...
  exec {LOCK[1]}>&-                             # release

Exit status: 0 released; 123 (-E) not granted or the wait timed out; 122 the
lock was lost while held (one line on standard error); 125 the server could
not be reached; 128+N signal N ended the wait; 2 usage.`

type grammar struct {
	Version kong.VersionFlag `help:"Print the version and exit."`
	cli.Client
	cli.Lock
	LostDeadline bool   `name:"lost-deadline" help:"When the lock is lost, print \"lost\" on standard output at once, and exit (122) only at the deadline by which whatever used it must have stopped: 3/4 of the dead-peer timeout after the server last heard from tnl-lock (sooner at end of input or a signal)."`
	Name         string `arg:"" help:"The lock name."`
}

func run(args []string, stdout, stderr io.Writer) int {
	return exitcode.Print(stderr, prog, lock(args, os.Stdin, stdout, stderr))
}

func lock(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var c grammar
	parser, err := cli.New(prog, description, &c, stdout, stderr, cli.VersionString(version))
	if err != nil {
		return err
	}
	if _, done, err := cli.Parse(parser, args); done || err != nil {
		return err
	}
	if err := c.Lock.Check(); err != nil {
		return err
	}
	if err := client.ValidName(c.Name); err != nil {
		return cli.Usage(err, "")
	}
	addr, err := c.Addr()
	if err != nil {
		return err
	}
	dial, err := c.DialOptions(addr)
	if err != nil {
		return err
	}
	req := acquire.Request{
		Prog:     prog,
		Name:     c.Name,
		Dial:     dial,
		Lock:     c.LockOptions(),
		Conflict: c.ConflictExitCode,
		Verbose:  c.IsVerbose(),
		Talk:     c.IsVerbose() || acquire.IsTerminal(stderr),
		Stderr:   stderr,
	}

	// Standard input is watched from the start, not only once the lock is
	// held: whoever started tnl-lock may go away while it waits (a script
	// killed, a coprocess whose shell exited), and a waiter nobody will
	// ever use must not keep its place in the queue until it is granted.
	// Its end gives up the wait at once (the conflict status, as a wait
	// that ran out). When the input has already ended before the lock is
	// asked for, nobody is there to wait for: tnl-lock asks once, as
	// without --wait, so that the outcome does not depend on which of the
	// end of input and the server's answer comes first.
	ended, eof := watchInput(stdin)
	if ended && req.Lock.Wait != 0 {
		if req.Verbose {
			fmt.Fprintf(stderr, "%s: input ended before the lock was asked for: asking once instead of waiting\n", prog)
		}
		req.Lock.Wait = 0
	}

	// INT, TERM, HUP and QUIT end a wait (128+N, as tnl-do) and, once the
	// lock is held, release it (exit 0); one ignored at start (nohup) stays
	// ignored. Other signals keep their default action: tnl-lock dies, its
	// connection closes, the server releases.
	sigs := make(chan os.Signal, 8)
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT} {
		if !signal.Ignored(sig) {
			signal.Notify(sigs, sig)
		}
	}
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
		return exitcode.Silent(exitcode.FromSignal(sig.(syscall.Signal)))
	}
	if err != nil {
		if lock == nil && sctx.Err() == nil && ctx.Err() != nil {
			// The end of input ended the wait; Do has left the queue.
			if req.Talk {
				return exitcode.New(req.Conflict, "lock %s not granted: end of input while waiting", c.Name)
			}
			return exitcode.Silent(req.Conflict)
		}
		return err
	}
	defer cl.Close()

	// The one line a script waits for. os.Stdout is not buffered, so it is
	// out the moment Fprintf returns.
	if _, err := fmt.Fprintf(stdout, "%d\n", lock.Token()); err != nil {
		lock.Release()
		return fmt.Errorf("cannot print the token: %w", err)
	}
	if req.Verbose {
		fmt.Fprintf(stderr, "%s: holding %s until end of input or SIGTERM\n", prog, c.Name)
	}

	select {
	case <-eof:
	case sig := <-sigs:
		if req.Verbose {
			fmt.Fprintf(stderr, "%s: %v\n", prog, sig)
		}
	case <-lock.Done():
		why := strings.TrimPrefix(fmt.Sprint(lock.Err()), client.ErrLost.Error()+": ")
		if !c.LostDeadline {
			return exitcode.New(exitcode.Lost, "lock %s lost: %s", c.Name, why)
		}
		// The line at once: whoever reads it stops using the lock now.
		// The exit at the deadline: what has not stopped by then must be
		// killed (tnl.sh's holders do), before the server can give the
		// lock to someone else. Until then the connection stays open, as
		// tnl-do keeps it for a command that is still stopping.
		fmt.Fprintln(stdout, "lost")
		fmt.Fprintf(stderr, "%s: lock %s lost: %s\n", prog, c.Name, why)
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
	if err := lock.Release(); err != nil {
		// The lock went away while we were letting it go: it is released
		// either way, but it was not held to the end.
		why := strings.TrimPrefix(err.Error(), client.ErrLost.Error()+": ")
		return exitcode.New(exitcode.Lost, "lock %s lost: %s", c.Name, why)
	}
	if req.Verbose {
		fmt.Fprintf(stderr, "%s: released %s\n", prog, c.Name)
	}
	return nil
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
