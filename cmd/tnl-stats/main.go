// Command tnl-stats shows who holds and who waits for the locks of a
// tnl-server, and the server's counters. See tnl-stats(1).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/cli"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/protocol"
)

var version = ""

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const prog = "tnl-stats"

const description = `Show the locks of a tnl-server, with their holders and waiters in queue
order, and the server's counters; only the named locks when NAMEs are given.

  tnl-stats [flags] [NAME...]
  tnl-stats --break NAME --admin-token-file FILE

Exit status: 0; 1 --break of a lock nobody holds; 125 the server could not be
reached, or refused (a secret it does not accept); 2 usage.`

type grammar struct {
	Version kong.VersionFlag `help:"Print the version and exit."`
	cli.Server
	cli.Security
	JSON           bool         `name:"json" help:"Print one JSON object (schema in tnl-stats(1)) instead of the table."`
	Timeout        cli.Duration `default:"10s" placeholder:"DURATION" help:"Give up on a server that does not answer within DURATION (30s, 2 = seconds). Default 10s."`
	Break          string       `name:"break" placeholder:"NAME" help:"Break the lock NAME: take it from its holders, for a holder that is alive but stuck (its tnl-do stops its command and exits 122). Needs --admin-token-file."`
	AdminTokenFile string       `name:"admin-token-file" placeholder:"FILE" help:"The operator's secret, for --break: the file given to tnl-server --admin-token-file. Default: $TNL_ADMIN_TOKEN_FILE."`
	Names          []string     `arg:"" optional:"" name:"name" help:"Lock names to show; all when none is given."`
}

func run(args []string, stdout, stderr io.Writer) int {
	return exitcode.Print(stderr, prog, stats(args, stdout, stderr))
}

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

func stats(args []string, stdout, stderr io.Writer) error {
	var c grammar
	parser, err := cli.New(prog, description, &c, stdout, stderr, cli.VersionString(version))
	if err != nil {
		return err
	}
	if _, done, err := cli.Parse(parser, args); done || err != nil {
		return err
	}
	for _, n := range c.Names {
		if err := client.ValidName(n); err != nil {
			return cli.Usage(err, "")
		}
	}
	addr, err := c.Addr()
	if err != nil {
		return err
	}
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		return cli.Usage(fmt.Errorf("--timeout %v: must be more than 0", timeout), "")
	}
	token, tlsConfig, err := c.Security.Load(os.Getenv)
	if err != nil {
		return err
	}
	opts := client.Options{Addr: addr, DialTimeout: timeout, AuthToken: token, TLS: tlsConfig}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if c.Break != "" {
		return breakLock(ctx, c, opts, stdout)
	}
	if c.AdminTokenFile != "" {
		return cli.Usage(errors.New("--admin-token-file is for --break"), "")
	}
	cl, err := client.Dial(ctx, opts)
	if err != nil {
		return cli.DialError(opts, err)
	}
	defer cl.Close()
	infos, trunc, err := cl.Holders(ctx, c.Names...)
	if err != nil {
		return exitcode.New(exitcode.Unreachable, "cannot read the holders from %s: %w", addr, err)
	}
	counters, err := cl.Stats(ctx)
	if err != nil {
		return exitcode.New(exitcode.Unreachable, "cannot read the counters from %s: %w", addr, err)
	}
	out := Output{Server: addr, Time: time.Now(), Locks: infos, Truncated: trunc, Stats: counters}
	if out.Locks == nil {
		out.Locks = []protocol.LockInfo{}
	}
	if out.Stats == nil {
		out.Stats = map[string]int64{}
	}
	for i := range out.Locks {
		// "holders": [], not null, whatever the server sent.
		if l := &out.Locks[i]; l.Holders == nil {
			l.Holders = []protocol.Party{}
		}
		if l := &out.Locks[i]; l.Waiters == nil {
			l.Waiters = []protocol.Party{}
		}
	}
	slices.SortStableFunc(out.Locks, func(a, b protocol.LockInfo) int { return strings.Compare(a.Name, b.Name) })

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
// statuses: 0 broken, 1 nobody held it (as grep finds nothing), 125 the
// server could not be reached or refused the secret, 2 usage.
func breakLock(ctx context.Context, c grammar, opts client.Options, stdout io.Writer) error {
	name := c.Break
	switch {
	case len(c.Names) > 0:
		return cli.Usage(fmt.Errorf("--break takes one lock name; got %q as well", c.Names[0]), "break one lock at a time: tnl-stats --break NAME")
	case c.JSON:
		return cli.Usage(errors.New("--break and --json cannot be used together"), "")
	}
	if err := client.ValidName(name); err != nil {
		return cli.Usage(err, "")
	}
	path, from := c.AdminTokenFile, "--admin-token-file"
	if path == "" {
		path, from = os.Getenv("TNL_ADMIN_TOKEN_FILE"), "$TNL_ADMIN_TOKEN_FILE"
	}
	if path == "" {
		return cli.Usage(errors.New("--break needs the operator's secret"),
			"give --admin-token-file FILE or set TNL_ADMIN_TOKEN_FILE: the file tnl-server was started with")
	}
	admin, err := cli.ReadSecret(path, from)
	if err != nil {
		return err
	}
	err = client.Break(ctx, opts, name, admin)
	var se *client.ServerError
	switch {
	case err == nil:
		_, err := fmt.Fprintf(stdout, "broke %s\n", name)
		return err
	case errors.Is(err, client.ErrNotHeld):
		return exitcode.New(exitcodeNotHeld, "lock %s is not held: nothing to break", name)
	case errors.As(err, &se):
		err = fmt.Errorf("server %s refused to break %s: %s", opts.Addr, name, se.Msg)
		if errors.Is(se, client.ErrAdminRequired) || errors.Is(se, client.ErrAuthFailed) || errors.Is(se, client.ErrAuthRequired) {
			return &exitcode.Error{Code: exitcode.Unreachable, Err: err,
				Hint: "the secret in " + from + " is not the server's admin secret (a server started without --admin-token-file refuses every --break)"}
		}
		return &exitcode.Error{Code: exitcode.Unreachable, Err: err}
	}
	return cli.DialError(opts, err)
}

// exitcodeNotHeld is --break's status when nobody held the lock.
const exitcodeNotHeld = 1

// printTable writes one row per holder and per waiter, then the counters:
//
//	NAME   MODE       STATE   CLIENT    HOST  PID   SINCE               TOKEN
//	build  exclusive  held    alice@h1  h1    4242  10:42:01 (3s ago)   17
//	build  exclusive  wait 1  bob@h2    h2    977   10:42:03 (1s ago)   -
func printTable(w io.Writer, out Output, asked []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	now := out.Time
	if len(out.Locks) == 0 && len(asked) == 0 {
		fmt.Fprintf(w, "no locks are held or awaited on %s\n", out.Server)
	} else {
		fmt.Fprintln(tw, "NAME\tMODE\tSTATE\tCLIENT\tHOST\tPID\tSINCE\tTOKEN")
		seen := map[string]bool{}
		for _, l := range out.Locks {
			seen[l.Name] = true
			mode := l.Mode
			if l.Limit > 1 {
				mode += " (limit " + strconv.Itoa(l.Limit) + ")"
			}
			for _, h := range l.Holders {
				row(tw, l.Name, mode, "held", h, now, strconv.FormatUint(h.Token, 10))
			}
			for i, h := range l.Waiters {
				row(tw, l.Name, mode, "wait "+strconv.Itoa(i+1), h, now, "-")
			}
		}
		for _, n := range asked {
			if !seen[n] {
				seen[n] = true
				fmt.Fprintf(tw, "%s\t-\tfree\t-\t-\t-\t-\t-\n", n)
			}
		}
		tw.Flush()
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

func row(tw io.Writer, name, mode, state string, h protocol.Party, now time.Time, token string) {
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
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, mode, state, client, host, pid, cli.Since(h.Since, now), token)
}
