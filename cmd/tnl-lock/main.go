// Command tnl-lock acquires a network lock and holds it until its standard
// input ends or it is told to stop. See tnl-lock(1).
package main

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/acquire"
	"github.com/tnl-lock/tnl/cmd/internal/cli"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/hold"
	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/protocol"
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

With --ttl, tnl-lock takes a lease instead: a lock held by a secret id, not by
tnl-lock, until it is released or its TTL runs out. It prints three lines for
eval, and exits 0 with the lease held:

  eval "$(tnl-lock --ttl 2h deploy)"   # TNL_LEASE, TNL_FENCE, TNL_LOCK
  ...                                   # later, from any host:
  tnl-lock --renew                      # or --release, --is-held

--renew, --release and --is-held act on the lease --lease ID, else
$TNL_LEASE; NAME may be given, and then the lease must be one of NAME.

Exit status: 0 released (a lease action: done, or held); 123 (-E) not granted
or the wait timed out; 122 the lock was lost while held (one line on standard
error), or the lease is not held; 125 the server could not be reached; 128+N
signal N ended the wait; 2 usage.`

type grammar struct {
	Version kong.VersionFlag `help:"Print the version and exit."`
	cli.Client
	cli.Lock
	LostDeadline bool `name:"lost-deadline" help:"When the lock is lost, print \"lost\" on standard output at once, and exit (122) only at the deadline by which whatever used it must have stopped: 3/4 of the dead-peer timeout after the server last heard from tnl-lock (sooner at end of input or a signal)."`
	Leases       `embed:""`
	Name         string `arg:"" optional:"" help:"The lock name; with --renew, --release or --is-held, the name the lease must be of."`
}

// Leases are tnl-lock's lease flags.
type Leases struct {
	TTL     cli.Duration `name:"ttl" placeholder:"DURATION" help:"Take a lease of DURATION (1ms to 366 days) instead of holding the lock: print export lines of TNL_LEASE, TNL_FENCE and TNL_LOCK for eval, and exit 0 with the lease held until --release or the end of its TTL. With --renew: the new TTL."`
	Renew   bool         `help:"Renew the lease (--lease, else $TNL_LEASE): its TTL starts again, from now: --ttl, else the TTL it was granted with."`
	Release bool         `help:"Release the lease (--lease, else $TNL_LEASE)."`
	IsHeld  bool         `name:"is-held" help:"Exit 0 when the lease (--lease, else $TNL_LEASE) is held, 122 when not (silently, unless -v)."`
	Lease   string       `placeholder:"ID" help:"The lease id for --renew, --release and --is-held. Default: $TNL_LEASE."`
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
	action, err := c.check()
	if err != nil {
		return err
	}
	dial, err := c.DialOptions()
	if err != nil {
		return err
	}
	if action != 0 {
		return c.act(action, dial, stderr)
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
	if c.TTL != 0 {
		return hold.TakeLease(hold.LeaseConfig{Request: req, TTL: time.Duration(c.TTL), Stdout: stdout})
	}
	return hold.Run(hold.Config{Request: req, LostDeadline: c.LostDeadline, Stdin: stdin, Stdout: stdout})
}

// check validates the command line, and says which lease action it asks
// for (0: none, take the lock).
func (c *grammar) check() (hold.Action, error) {
	if err := c.Lock.Check(); err != nil {
		return 0, err
	}
	var action hold.Action
	n := 0
	for a, on := range map[hold.Action]bool{hold.Renew: c.Renew, hold.Release: c.Release, hold.IsHeld: c.IsHeld} {
		if on {
			action, n = a, n+1
		}
	}
	switch {
	case n > 1:
		return 0, cli.Usage(errors.New("--renew, --release and --is-held: give one"), "")
	case n == 0 && c.Name == "":
		return 0, cli.Usage(errors.New(`expected "<name>"`), "see "+prog+" --help")
	case n == 0 && c.Lease != "":
		return 0, cli.Usage(errors.New("--lease is for --renew, --release and --is-held"), "")
	case n == 1 && (c.Shared || c.Limit != 1 || c.MaxHold != 0 || c.LostDeadline):
		return 0, cli.Usage(errors.New("--shared, --limit, --max-hold and --lost-deadline are for taking a lock, not for --renew, --release or --is-held"), "")
	case action != hold.Renew && action != 0 && c.TTL != 0:
		return 0, cli.Usage(errors.New("--ttl is for taking a lease and for --renew"), "")
	case c.TTL != 0 && c.LostDeadline:
		return 0, cli.Usage(errors.New("--lost-deadline is for a held lock, not a lease (--ttl)"), "")
	}
	if err := cli.CheckSpan("--ttl", time.Duration(c.TTL), true); err != nil {
		return 0, err
	}
	if c.Name != "" {
		if err := client.ValidName(c.Name); err != nil {
			return 0, cli.Usage(err, "")
		}
	}
	return action, nil
}

// act does a lease action on --lease, else $TNL_LEASE.
func (c *grammar) act(action hold.Action, dial client.Options, stderr io.Writer) error {
	id, from := c.Lease, "--lease"
	if id == "" {
		id, from = os.Getenv("TNL_LEASE"), "$TNL_LEASE"
	}
	switch {
	case id == "":
		return cli.Usage(errors.New("no lease: give --lease ID or set $TNL_LEASE"), "eval \"$("+prog+" --ttl DURATION NAME)\" sets it")
	case !protocol.ValidLeaseID(id):
		return cli.Usage(errors.New(from+": not a lease id: want 32 lowercase hex digits"), "")
	}
	return hold.Act(hold.ActConfig{Prog: prog, Dial: dial, Action: action, Lease: id, Name: c.Name,
		TTL: time.Duration(c.TTL), Verbose: c.IsVerbose(), Stderr: stderr})
}
