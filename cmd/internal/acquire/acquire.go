// Package acquire is how tnl's commands (tnl-lock, tnl-do) get a lock:
// dial the server, ask, wait in its queue, retry (tcpnetlock's --retry),
// and say who holds the lock while they wait or when they give up, with
// the exit statuses of package exitcode. One policy, so that both commands
// wait, talk and fail alike.
//
// It does not parse flags (package cli turns them into a Request's values)
// and does not hold or supervise what runs under the lock.
package acquire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/security"
	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/protocol"
)

// Request is one ask for a lock as tnl's commands make it, so that tnl-lock
// and tnl-do wait, talk and fail alike.
type Request struct {
	Prog string // "tnl-do", for messages
	Name string
	Dial client.Options
	Lock client.LockOptions
	// Conflict is the exit status for "not granted" and "the wait ran out".
	Conflict int
	// Retry more tries, RetryWait apart, when the lock is not granted
	// (tcpnetlock's --retry and --retry-wait).
	Retry     int
	RetryWait time.Duration
	// Verbose says what happens; Talk (verbose, or standard error is a
	// terminal) says who holds the lock when we have to wait or give up.
	Verbose, Talk bool
	Stderr        io.Writer
	// Now is the clock for "since" (tests); default time.Now.
	Now func() time.Time
	// Ready, if set, is waited for after dialling and before asking for the
	// lock: tnl-do's signal handlers (see supervise.Catch), so that setting
	// them up overlaps the connection's round trips.
	Ready <-chan struct{}
}

// Do dials the server and asks for the lock. It returns the open client
// and the held lock, or an error that carries its exit status: the
// conflict status for "not granted" and "timed out" (with a line only when
// Talk is set), 125 when the server cannot be reached or refuses, and
// ctx.Err() itself when ctx ended the wait (the caller knows which signal
// did it). Nothing is held when Do fails.
func (r *Request) Do(ctx context.Context) (*client.Client, *client.Lock, error) {
	if r.Now == nil {
		r.Now = time.Now
	}
	c, err := client.Dial(ctx, r.Dial)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, security.DialError(r.Dial, err)
	}
	r.logf("connected to %s", r.Dial.Addr)
	if r.Ready != nil {
		<-r.Ready
	}
	for try := 0; ; try++ {
		lock, err := r.lockOnce(ctx, c)
		if err == nil {
			r.logf("granted %s (token %d)", r.Name, lock.Token())
			return c, lock, nil
		}
		conflict := errors.Is(err, client.ErrNotGranted) || errors.Is(err, client.ErrTimeout)
		if conflict && try < r.Retry {
			r.logf("%s not granted; try %d of %d in %v", r.Name, try+2, r.Retry+1, r.RetryWait)
			t := time.NewTimer(r.RetryWait)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				c.Close()
				return nil, nil, ctx.Err()
			}
		}
		defer c.Close()
		switch {
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case conflict:
			if !r.Talk {
				return nil, nil, exitcode.Silent(r.Conflict)
			}
			why := "not granted"
			if errors.Is(err, client.ErrTimeout) {
				why = "not granted: the wait timed out"
			}
			if held := r.heldBy(ctx, c); held != "" {
				why += ": held by " + held
			}
			return nil, nil, exitcode.New(r.Conflict, "lock %s %s", r.Name, why)
		}
		var se *client.ServerError
		if errors.As(err, &se) {
			// "server refused NAME: why" says it all.
			return nil, nil, &exitcode.Error{Code: exitcode.Unreachable, Err: err}
		}
		return nil, nil, exitcode.New(exitcode.Unreachable, "lock %s: %w", r.Name, err)
	}
}

// lockOnce asks once. When the request may wait and Talk is set, it asks
// the server who holds the lock while the request waits, and says so.
func (r *Request) lockOnce(ctx context.Context, c *client.Client) (*client.Lock, error) {
	if !r.Talk || r.Lock.Wait == 0 {
		return c.Lock(ctx, r.Name, r.Lock)
	}
	type result struct {
		l   *client.Lock
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := c.Lock(ctx, r.Name, r.Lock)
		done <- result{l, err}
	}()
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	held := r.heldBy(hctx, c)
	cancel()
	select {
	case res := <-done:
		return res.l, res.err
	default:
	}
	if held != "" {
		r.printf("waiting for %s, held by %s", r.Name, held)
	}
	res := <-done
	return res.l, res.err
}

// heldBy describes the holders of the lock, or "" when that cannot be told.
func (r *Request) heldBy(ctx context.Context, c *client.Client) string {
	infos, _, err := c.Holders(ctx, r.Name)
	if err != nil {
		return ""
	}
	for _, li := range infos {
		if li.Name == r.Name {
			return DescribeHolders(li, r.Now())
		}
	}
	return ""
}

// DescribeHolders says who holds a lock and since when, in one phrase:
// "alice@build1 (pid 4242 on build1) since 10:42:01 (3m12s ago), 2 waiting".
func DescribeHolders(li protocol.LockInfo, now time.Time) string {
	if len(li.Holders) == 0 {
		if len(li.Waiters) > 0 {
			return fmt.Sprintf("nobody (%d waiting)", len(li.Waiters))
		}
		return ""
	}
	h := li.Holders[0]
	s := DescribeParty(h) + " since " + Since(h.Since, now)
	if n := len(li.Holders) - 1; n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	if n := len(li.Waiters); n > 0 {
		s += fmt.Sprintf(", %d waiting", n)
	}
	return s
}

// DescribeParty names a holder or waiter: "alice@build1 (pid 4242 on build1)".
func DescribeParty(h protocol.Party) string {
	var extra []string
	if h.PID > 0 {
		extra = append(extra, fmt.Sprintf("pid %d", h.PID))
	}
	if h.Host != "" {
		extra = append(extra, "on "+h.Host)
	} else if h.Addr != "" {
		extra = append(extra, "from "+h.Addr)
	}
	id := h.ClientID
	if id == "" {
		id = "a client"
	}
	if len(extra) == 0 {
		return id
	}
	return id + " (" + strings.Join(extra, " ") + ")"
}

// Since formats a moment in the recent past for people: the local clock
// time (with the date when it is not today) and how long ago.
func Since(t, now time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	lt := t.Local()
	layout := "15:04:05"
	if y, m, d := lt.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
		layout = "2006-01-02 15:04:05"
	}
	ago := now.Sub(t).Round(time.Second)
	if ago < 0 {
		ago = 0
	}
	return fmt.Sprintf("%s (%v ago)", lt.Format(layout), ago)
}

func (r *Request) logf(format string, args ...any) {
	if r.Verbose {
		r.printf(format, args...)
	}
}

func (r *Request) printf(format string, args ...any) {
	fmt.Fprintf(r.Stderr, "%s: %s\n", r.Prog, fmt.Sprintf(format, args...))
}

// IsTerminal reports whether w is a terminal, for Talk.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty(f)
}

// LossWhy is what happened to a lost lock, for the commands' "lock NAME
// lost: WHY" line: the client's LostError says it without the "lock lost"
// every loss starts with; another error says it in its own words.
func LossWhy(err error) string {
	if le, ok := errors.AsType[*client.LostError](err); ok {
		return le.Why
	}
	return fmt.Sprint(err)
}
