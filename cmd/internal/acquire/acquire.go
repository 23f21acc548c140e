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
	var lock *client.Lock
	c, err := r.do(ctx, func(ctx context.Context, c *client.Client) (uint64, error) {
		l, err := c.Lock(ctx, r.Name, r.Lock)
		if err != nil {
			return 0, err
		}
		lock = l
		return l.Token(), nil
	})
	return c, lock, err
}

// DoLease is Do for a lease of the given TTL: it returns the open client
// and the lease, which stays held when the client is closed, or the errors
// of Do.
func (r *Request) DoLease(ctx context.Context, ttl time.Duration) (*client.Client, *client.Lease, error) {
	var lease *client.Lease
	c, err := r.do(ctx, func(ctx context.Context, c *client.Client) (uint64, error) {
		l, err := c.AcquireLease(ctx, r.Name, ttl, r.Lock)
		if err != nil {
			return 0, err
		}
		lease = l
		return l.Token, nil
	})
	return c, lease, err
}

// Dial opens a session as the commands do: an error carries its status
// (125, with a hint when a flag would fix it), or is ctx.Err() when ctx
// ended first.
func Dial(ctx context.Context, o client.Options) (*client.Client, error) {
	c, err := client.Dial(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, security.DialError(o, err)
	}
	return c, nil
}

// asker asks once for the lock, and returns the token of the grant.
type asker func(ctx context.Context, c *client.Client) (uint64, error)

// do is Do with the asking left to ask.
func (r *Request) do(ctx context.Context, ask asker) (*client.Client, error) {
	if r.Now == nil {
		r.Now = time.Now
	}
	c, err := Dial(ctx, r.Dial)
	if err != nil {
		return nil, err
	}
	r.logf("connected to %s", r.Dial.Addr)
	if r.Ready != nil {
		<-r.Ready
	}
	for try := 0; ; try++ {
		token, err := r.lockOnce(ctx, c, ask)
		if err == nil {
			r.logf("granted %s (token %d)", r.Name, token)
			return c, nil
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
				return nil, ctx.Err()
			}
		}
		defer c.Close()
		return nil, r.failed(ctx, c, err, conflict)
	}
}

// failed is the error of a request that was not granted.
func (r *Request) failed(ctx context.Context, c *client.Client, err error, conflict bool) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case conflict:
		if !r.Talk {
			return exitcode.Silent(r.Conflict)
		}
		why := "not granted"
		if errors.Is(err, client.ErrTimeout) {
			why = "not granted: the wait timed out"
		}
		if held := r.heldBy(ctx, c); held != "" {
			why += ": held by " + held
		}
		return exitcode.New(r.Conflict, "lock %s %s", r.Name, why)
	}
	var se *client.ServerError
	if errors.As(err, &se) {
		// "server refused NAME: why" says it all.
		return &exitcode.Error{Code: exitcode.Unreachable, Err: err}
	}
	return exitcode.New(exitcode.Unreachable, "lock %s: %w", r.Name, err)
}

// lockOnce asks once. When the request may wait and Talk is set, it asks
// the server who holds the lock while the request waits, and says so.
func (r *Request) lockOnce(ctx context.Context, c *client.Client, ask asker) (uint64, error) {
	if !r.Talk || r.Lock.Wait == 0 {
		return ask(ctx, c)
	}
	type result struct {
		token uint64
		err   error
	}
	done := make(chan result, 1)
	go func() {
		token, err := ask(ctx, c)
		done <- result{token, err}
	}()
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	held := r.heldBy(hctx, c)
	cancel()
	select {
	case res := <-done:
		return res.token, res.err
	default:
	}
	if held != "" {
		r.printf("waiting for %s, held by %s", r.Name, held)
	}
	res := <-done
	return res.token, res.err
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
// "alice@build1 (pid 4242 on build1) since 10:42:01 (3m12s ago), 2 waiting";
// and until when, for a hold with an end: "..., ends in 1h58m".
func DescribeHolders(li protocol.LockInfo, now time.Time) string {
	if len(li.Holders) == 0 {
		if len(li.Waiters) > 0 {
			return fmt.Sprintf("nobody (%d waiting)", len(li.Waiters))
		}
		return ""
	}
	h := li.Holders[0]
	s := DescribeParty(h) + " since " + Since(h.Since, now)
	if h.Expires != nil {
		s += ", ends " + Until(h.Expires, now)
	}
	if n := len(li.Holders) - 1; n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	if n := len(li.Waiters); n > 0 {
		s += fmt.Sprintf(", %d waiting", n)
	}
	return s
}

// DescribeParty names a holder or waiter: "alice@build1 (pid 4242 on build1)";
// a lease by its fingerprint, since no process holds it: "cron (lease
// ab12cd34 on etl-1)".
func DescribeParty(h protocol.Party) string {
	var extra []string
	switch {
	case h.Lease != "":
		extra = append(extra, "lease "+h.Lease)
	case h.PID > 0:
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

// Until says when a party's hold ends, for people: "in 1h59m", "in 4m30s",
// "in 12s", cut down (never more time than is left); "now" once due;
// "-" when nothing ends it (nil).
func Until(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := t.Sub(now)
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("in %ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("in %dm%ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("in %dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
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
