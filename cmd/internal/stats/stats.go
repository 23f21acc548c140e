// Package stats is what tnl-stats does once its flags are parsed: read who
// holds and who waits for the locks of a server, and its counters, and
// print them as a table or as JSON; or break one lock for an operator.
//
// It parses no flags and reads no files: the command hands it a Config.
package stats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tnl-lock/tnl/cmd/internal/acquire"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/security"
	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/protocol"
)

// Config is one run of tnl-stats.
type Config struct {
	Dial    client.Options // the server, with its secret and TLS
	Timeout time.Duration  // for the whole run: a server that does not answer by then is unreachable
	Names   []string       // the locks to show; all when empty
	JSON    bool           // print Output as JSON instead of the table

	// Break, when set, is the lock to break instead of showing anything,
	// with the admin secret AdminToken, read from AdminFrom (named in hints).
	Break      string
	AdminToken string
	AdminFrom  string

	Now func() time.Time // default time.Now
}

// ExitNotHeld is --break's status when nobody held the lock (as grep's 1
// when it finds nothing).
const ExitNotHeld = 1

// Output is the --json document. Its fields are a stable interface: new
// fields may be added, none is renamed or removed. Locks are in the
// protocol's holders schema, as the server sent them.
type Output struct {
	Server    string              `json:"server"`    // HOST:PORT asked
	Time      time.Time           `json:"time"`      // when the answer was read
	Locks     []protocol.LockInfo `json:"locks"`     // held or awaited names, sorted; never null, nor their holders and waiters
	Truncated bool                `json:"truncated"` // the server cut a very long list
	Stats     map[string]int64    `json:"stats"`     // the server's counters (lock_count, requests_count, ...)
}

// Run does what c says and writes the result to stdout. Its errors carry
// tnl-stats' exit status (exitcode).
func Run(ctx context.Context, c Config, stdout io.Writer) error {
	if c.Now == nil {
		c.Now = time.Now
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if c.Break != "" {
		return breakLock(ctx, c, stdout)
	}
	out, err := read(ctx, c)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	ew := &errWriter{w: stdout}
	printTable(ew, out, c.Names)
	if ew.err != nil {
		return fmt.Errorf("cannot write the table: %w", ew.err)
	}
	return nil
}

// read asks the server for the holders and the counters.
func read(ctx context.Context, c Config) (Output, error) {
	addr := c.Dial.Addr
	cl, err := client.Dial(ctx, c.Dial)
	if err != nil {
		return Output{}, security.DialError(c.Dial, err)
	}
	defer cl.Close()
	infos, trunc, err := cl.Holders(ctx, c.Names...)
	if err != nil {
		return Output{}, exitcode.New(exitcode.Unreachable, "cannot read the holders from %s: %w", addr, err)
	}
	counters, err := cl.Stats(ctx)
	if err != nil {
		return Output{}, exitcode.New(exitcode.Unreachable, "cannot read the counters from %s: %w", addr, err)
	}
	out := Output{Server: addr, Time: c.Now(), Locks: infos, Truncated: trunc, Stats: counters}
	if out.Locks == nil {
		out.Locks = []protocol.LockInfo{}
	}
	if out.Stats == nil {
		out.Stats = map[string]int64{}
	}
	for i := range out.Locks {
		// "holders": [], not null, whatever the server sent.
		l := &out.Locks[i]
		if l.Holders == nil {
			l.Holders = []protocol.Party{}
		}
		if l.Waiters == nil {
			l.Waiters = []protocol.Party{}
		}
	}
	slices.SortStableFunc(out.Locks, func(a, b protocol.LockInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// errWriter keeps the first write error, so that a full disk or a closed
// pipe is not a silent success.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

// breakLock is --break: one .break request with the admin secret. The
// statuses: 0 broken, 1 nobody held it, 125 the server could not be
// reached or refused the secret.
func breakLock(ctx context.Context, c Config, stdout io.Writer) error {
	name, addr := c.Break, c.Dial.Addr
	err := client.Break(ctx, c.Dial, name, c.AdminToken)
	var se *client.ServerError
	switch {
	case err == nil:
		_, err := fmt.Fprintf(stdout, "broke %s\n", name)
		return err
	case errors.Is(err, client.ErrNotHeld):
		return exitcode.New(ExitNotHeld, "lock %s is not held: nothing to break", name)
	case errors.As(err, &se):
		err = fmt.Errorf("server %s refused to break %s: %s", addr, name, se.Msg)
		if errors.Is(se, client.ErrAdminRequired) || errors.Is(se, client.ErrAuthFailed) || errors.Is(se, client.ErrAuthRequired) {
			return &exitcode.Error{Code: exitcode.Unreachable, Err: err,
				Hint: "the secret in " + c.AdminFrom + " is not the server's admin secret (a server started without --admin-token-file refuses every --break)"}
		}
		return &exitcode.Error{Code: exitcode.Unreachable, Err: err}
	}
	return security.DialError(c.Dial, err)
}

// printTable writes one row per holder and per waiter, then the counters:
//
//	NAME   MODE       STATE   CLIENT    HOST  PID   SINCE               TOKEN
//	build  exclusive  held    alice@h1  h1    4242  10:42:01 (3s ago)   17
//	build  exclusive  wait 1  bob@h2    h2    977   10:42:03 (1s ago)   -
//
// and, when a party has an end (a lease, a maximum hold), with EXPIRES:
//
//	NAME    MODE       STATE  CLIENT      HOST   PID             SINCE              EXPIRES   TOKEN
//	deploy  exclusive  held   cron@etl-1  etl-1  lease:ab12cd34  10:42:01 (1m ago)  in 1h59m  21
func printTable(w io.Writer, out Output, asked []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(out.Locks) == 0 && len(asked) == 0 {
		fmt.Fprintf(w, "no locks are held or awaited on %s\n", out.Server)
	} else {
		printLocks(tw, out, asked)
	}
	if out.Truncated {
		fmt.Fprintln(w, "(the server cut the list short; tnl-stats NAME lists one lock)")
	}
	fmt.Fprintf(w, "\nSERVER %s\n", out.Server)
	keys := make([]string, 0, len(out.Stats))
	for k := range out.Stats {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%d\n", k, out.Stats[k])
	}
	tw.Flush()
}

// printLocks writes the table of locks, with a "free" row for each name
// asked for that nobody holds or awaits. An EXPIRES column comes only when
// a party has an end (a lease, a maximum hold), so that the table of a
// server without either stays as it always was.
func printLocks(tw *tabwriter.Writer, out Output, asked []string) {
	expires := hasExpiry(out.Locks)
	if expires {
		fmt.Fprintln(tw, "NAME\tMODE\tSTATE\tCLIENT\tHOST\tPID\tSINCE\tEXPIRES\tTOKEN")
	} else {
		fmt.Fprintln(tw, "NAME\tMODE\tSTATE\tCLIENT\tHOST\tPID\tSINCE\tTOKEN")
	}
	seen := map[string]bool{}
	for _, l := range out.Locks {
		seen[l.Name] = true
		mode := l.Mode
		if l.Limit > 1 {
			mode += " (limit " + strconv.Itoa(l.Limit) + ")"
		}
		for _, h := range l.Holders {
			row(tw, l.Name, mode, "held", h, out.Time, strconv.FormatUint(h.Token, 10), expires)
		}
		for i, h := range l.Waiters {
			row(tw, l.Name, mode, "wait "+strconv.Itoa(i+1), h, out.Time, "-", expires)
		}
	}
	for _, n := range asked {
		if !seen[n] {
			seen[n] = true
			if expires {
				fmt.Fprintf(tw, "%s\t-\tfree\t-\t-\t-\t-\t-\t-\n", n)
			} else {
				fmt.Fprintf(tw, "%s\t-\tfree\t-\t-\t-\t-\t-\n", n)
			}
		}
	}
	tw.Flush()
}

// hasExpiry reports whether a party of locks has an end.
func hasExpiry(locks []protocol.LockInfo) bool {
	for _, l := range locks {
		for _, ps := range [][]protocol.Party{l.Holders, l.Waiters} {
			for _, p := range ps {
				if p.Expires != nil {
					return true
				}
			}
		}
	}
	return false
}

// row writes one party. A lease has no connection, hence no address, and
// the pid it was taken with names a process that may be long gone: its
// PID column shows its fingerprint, lease:ab12cd34, instead.
func row(tw io.Writer, name, mode, state string, h protocol.Party, now time.Time, token string, expires bool) {
	client, host, pid := h.ClientID, h.Host, "-"
	if client == "" {
		client = "-"
	}
	if host == "" {
		host = h.Addr
	}
	if host == "" {
		host = "-"
	}
	if h.PID > 0 {
		pid = strconv.Itoa(h.PID)
	}
	if h.Lease != "" {
		pid = "lease:" + h.Lease
	}
	since := acquire.Since(h.Since, now)
	if !expires {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, mode, state, client, host, pid, since, token)
		return
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, mode, state, client, host, pid, since, acquire.Until(h.Expires, now), token)
}
