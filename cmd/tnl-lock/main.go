// Command tnl-lock acquires a network lock and holds it until its standard
// input ends or it is told to stop. See tnl-lock(1).
package main

import (
	"io"
	"os"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/acquire"
	"github.com/tnl-lock/tnl/cmd/internal/cli"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/hold"
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
	dial, err := c.DialOptions()
	if err != nil {
		return err
	}
	return hold.Run(hold.Config{
		Request: acquire.Request{
			Prog:     prog,
			Name:     c.Name,
			Dial:     dial,
			Lock:     c.LockOptions(),
			Conflict: c.ConflictExitCode,
			Verbose:  c.IsVerbose(),
			Talk:     c.IsVerbose() || acquire.IsTerminal(stderr),
			Stderr:   stderr,
		},
		LostDeadline: c.LostDeadline,
		Stdin:        stdin,
		Stdout:       stdout,
	})
}
