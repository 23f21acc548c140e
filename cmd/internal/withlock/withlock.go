// Package withlock is tnl-do once its flags are read: take a lock, run a
// command under it with TNL_LOCK, TNL_FENCE and TNL_SERVER in its
// environment, stop the command's process group when the lock is lost,
// and release the moment the command exits, with tnl-do's exit statuses.
//
// It does not parse flags (tnl-do's main does, with package cli); the
// signals, the watchdog and the process group are package supervise's.
package withlock

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/acquire"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/supervise"
	"github.com/tnl-lock/tnl/lib/client"
)

// Config is what to run under which lock, and how.
type Config struct {
	// Request asks for the lock; its Prog, Name, Verbose and Stderr are
	// also used for what Run says. Its Ready is set by Run.
	Request acquire.Request
	Addr    string   // the server, for TNL_SERVER
	Argv    []string // the command; Argv[0] is looked up in $PATH
	// OnLost and KillAfter: what to do with the command when the lock is
	// lost (--on-lost, --kill-after).
	OnLost    supervise.OnLost
	KillAfter time.Duration
	// Signals is where supervise.Catch delivers; SignalsReady and
	// HandlersReady are the two channels it returned.
	Signals       chan os.Signal
	SignalsReady  <-chan struct{}
	HandlersReady <-chan struct{}
	// Stdout and Stderr are the command's (os.Stdout and os.Stderr
	// unless they are files); Request.Stderr is tnl-do's own.
	Stdout, Stderr io.Writer
}

// Run takes the lock and runs the command. It returns an error carrying
// tnl-do's status: the command's own (exitcode.Silent), 128+N, the
// conflict status, 122, 125, 126 or 127.
func Run(c Config) error {
	// The watchdog that kills what is left of the command if tnl-do is
	// killed (see supervise.StartWatchdog): started now, so that its start
	// overlaps the round trips to the server; the command waits for it.
	wd := supervise.StartWatchdog()
	defer wd.Close()
	// Find the command before asking for the lock: a typo costs nobody a
	// turn, and fails with 127 at once.
	path, err := supervise.LookPath(c.Argv[0])
	if err != nil {
		return err
	}
	// INT, TERM, HUP and QUIT are caught before the lock is asked for
	// (req.Ready): while tnl-do waits, they end the wait (128+N) and nothing
	// runs.
	ctx, stop := supervise.CancelOnSignal(context.Background(), c.Signals)
	req := &c.Request
	req.Ready = c.SignalsReady
	cl, lock, err := req.Do(ctx)
	if sig := stop(); sig != nil {
		// A signal ended the wait, or came right after the grant: the
		// command must not start.
		if lock != nil {
			lock.Release()
		}
		if cl != nil {
			cl.Close()
		}
		if req.Verbose {
			fmt.Fprintf(req.Stderr, "%s: %v while waiting for %s; nothing was run\n", req.Prog, sig, req.Name)
		}
		return exitcode.Silent(exitcode.FromSignal(sig.(syscall.Signal)))
	}
	if err != nil {
		return err
	}
	defer cl.Close()
	// Before cl.Close (deferred calls run last first): the watchdog's copy
	// of the connection must not keep it open (see Watchdog.Close).
	defer wd.Close()
	return runHeld(c, path, wd, cl, lock)
}

// runHeld runs the command under the held lock and releases it after.
func runHeld(c Config, path string, wd *supervise.Watchdog, cl *client.Client, lock *client.Lock) error {
	req := &c.Request
	env := append(os.Environ(),
		"TNL_LOCK="+req.Name,
		"TNL_FENCE="+strconv.FormatUint(lock.Token(), 10),
		"TNL_SERVER="+c.Addr,
	)
	<-c.HandlersReady
	select {
	case <-lock.Done():
		// Lost between the grant and now: do not start the command at all.
		return exitcode.New(exitcode.Lost, "lock %s lost before the command started: %s; nothing was run", req.Name, why(lock))
	default:
	}
	// The watchdog holds a copy of the connection: if tnl-do is killed, the
	// server releases the lock only once the command's group has been sent
	// SIGKILL. Without it (an error here) the group is still killed, as the
	// lock is released.
	if rc, err := cl.SyscallConn(); err == nil {
		_ = wd.Keep(rc)
	}
	p, err := supervise.Start(supervise.Config{Path: path, Argv: c.Argv, Env: env, Watchdog: wd,
		Stdin: fileOr(nil, os.Stdin), Stdout: fileOr(c.Stdout, os.Stdout), Stderr: fileOr(c.Stderr, os.Stderr)})
	if err != nil {
		lock.Release()
		return err
	}
	res := p.Supervise(supervise.Options{
		Signals:   c.Signals,
		Lost:      lock.Done(),
		OnLost:    c.OnLost,
		KillAfter: c.KillAfter,
		// After a loss the server may give the lock to someone else soon
		// after the dead-peer timeout has passed without a word from us:
		// SIGKILL comes at 3/4 of it at the latest (client.Lock.KillBy).
		KillBy:   lock.KillBy,
		LostHook: func(grace time.Duration) { sayLost(c, cl, lock, grace) },
	})
	// No signal.Stop: it costs as much as Notify, and we are about to exit.
	if res.Lost {
		return exitcode.Silent(exitcode.Lost)
	}
	release(req, lock)
	return exitcode.Silent(exitcode.FromWaitStatus(res.Status))
}

// sayLost tells what happens to the command now that the lock is lost.
func sayLost(c Config, cl *client.Client, lock *client.Lock, grace time.Duration) {
	req, stderr := &c.Request, c.Request.Stderr
	prog, name, why := req.Prog, req.Name, why(lock)
	switch {
	case c.OnLost == supervise.Term && grace > 0:
		fmt.Fprintf(stderr, "%s: lock %s lost: %s; stopping the command (SIGTERM, SIGKILL after %v)\n", prog, name, why, grace.Round(time.Millisecond))
	case c.OnLost == supervise.Term, c.OnLost == supervise.Kill:
		fmt.Fprintf(stderr, "%s: lock %s lost: %s; killing the command\n", prog, name, why)
	case c.OnLost == supervise.Ignore:
		fmt.Fprintf(stderr, "%s: warning: lock %s lost: %s; the command keeps running (--on-lost ignore)\n", prog, name, why)
	}
	if c.OnLost == supervise.Term && grace < c.KillAfter {
		fmt.Fprintf(stderr, "%s: warning: --kill-after %v cut to %v: SIGKILL is due %v (3/4 of the dead-peer timeout) after the server last heard from us, before it could give %s to another client\n",
			prog, c.KillAfter, grace.Round(time.Millisecond), cl.DeadPeerTimeout()*3/4, name)
	}
}

// release lets the lock go the moment the command is done, and waits for
// the server to confirm, so that a script's next "tnl-do NAME" finds the
// lock free. (Closing the connection would release it too, but the server
// might see the close only after that next request.) A failure changes
// nothing for the command; the server releases on close anyway.
func release(req *acquire.Request, lock *client.Lock) {
	if err := lock.Release(); err != nil {
		if req.Verbose {
			fmt.Fprintf(req.Stderr, "%s: releasing %s: %v\n", req.Prog, req.Name, err)
		}
	} else if req.Verbose {
		fmt.Fprintf(req.Stderr, "%s: released %s\n", req.Prog, req.Name)
	}
}

// why is the lock's loss without the "lock lost: " every message has.
func why(lock *client.Lock) string { return acquire.LossWhy(lock.Err()) }

func fileOr(w any, def *os.File) *os.File {
	if f, ok := w.(*os.File); ok {
		return f
	}
	return def
}
