// Command tnl-do runs a command while holding a network lock. See tnl-do(1).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/acquire"
	"github.com/tnl-lock/tnl/cmd/internal/cli"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/supervise"
	"github.com/tnl-lock/tnl/cmd/internal/withlock"
	"github.com/tnl-lock/tnl/lib/client"
)

var version = ""

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const prog = "tnl-do"

const description = `Run COMMAND while holding the network lock NAME, then release it.

  tnl-do [flags] NAME [--] COMMAND [ARG...]
  tnl-do [flags] -c NAME 'COMMAND LINE'
  tnl-do --lock-name NAME [--retry N] [--retry-wait SECONDS] [--shell] -- COMMAND

Exit status: the command's own; 128+N when signal N killed it; 123 (-E) not
granted or the wait timed out; 122 the lock was lost; 125 the server could not
be reached; 126/127 the command could not be run / was not found; 2 usage.`

type grammar struct {
	Version kong.VersionFlag `help:"Print the version and exit."`
	cli.Client
	cli.Lock

	Shell     bool         `short:"c" help:"Run the command with /bin/sh -c; give the whole command line as one argument."`
	OnLost    string       `name:"on-lost" enum:"term,kill,ignore" default:"term" placeholder:"ACTION" help:"When the lock is lost while the command runs: term (SIGTERM to its process group, SIGKILL after --kill-after), kill (SIGKILL at once) or ignore (a warning). The exit status is 122. Default term."`
	KillAfter cli.Duration `name:"kill-after" default:"10s" placeholder:"DURATION" help:"Grace between SIGTERM and SIGKILL with --on-lost term. Default 10s."`
	LockName  string       `name:"lock-name" group:"tcpnetlock" placeholder:"NAME" help:"The lock name (tcpnetlock spelling); then NAME is not given."`
	Retry     int          `group:"tcpnetlock" placeholder:"N" help:"When the lock is not granted, try N more times, --retry-wait apart (tcpnetlock; --wait keeps a place in the queue instead)."`
	RetryWait cli.Duration `name:"retry-wait" group:"tcpnetlock" default:"10" placeholder:"SECONDS" help:"Time between two tries of --retry. Default 10."`
	Name      string       `arg:"" optional:"" help:"The lock name."`
	Command   []string     `arg:"" optional:"" passthrough:"partial" help:"The command and its arguments; put -- before it when it has options of its own."`
}

func run(args []string, stdout, stderr io.Writer) int {
	if supervise.IsWatchdog(args) {
		// This is tnl-do run again by supervise.StartWatchdog.
		return supervise.RunWatchdog(args[0])
	}
	errw := stderr
	if f, ok := stderr.(*os.File); ok {
		// tnl-do may have to write while the command owns the terminal.
		errw = supervise.TerminalWriter(f)
	}
	return exitcode.Print(errw, prog, do(args, stdout, stderr, errw))
}

func do(args []string, stdout, rawStderr, stderr io.Writer) error {
	// Start catching signals at once, in the background: see
	// supervise.Catch.
	sigs := make(chan os.Signal, 64)
	waitReady, ready := supervise.Catch(sigs)
	c, name, argv, err := parse(args, stdout, stderr)
	if err != nil || name == "" {
		return err // name == "": --help or --version, done
	}
	onLost, err := supervise.ParseOnLost(c.OnLost)
	if err != nil {
		return cli.Usage(err, "")
	}
	dial, err := c.DialOptions()
	if err != nil {
		return err
	}
	return withlock.Run(withlock.Config{
		Request: acquire.Request{
			Prog:      prog,
			Name:      name,
			Dial:      dial,
			Lock:      c.LockOptions(),
			Conflict:  c.ConflictExitCode,
			Retry:     c.Retry,
			RetryWait: time.Duration(c.RetryWait),
			Verbose:   c.IsVerbose(),
			Talk:      c.IsVerbose() || acquire.IsTerminal(rawStderr),
			Stderr:    stderr,
		},
		Addr:          dial.Addr,
		Argv:          argv,
		OnLost:        onLost,
		KillAfter:     time.Duration(c.KillAfter),
		Signals:       sigs,
		SignalsReady:  waitReady,
		HandlersReady: ready,
		Stdout:        stdout,
		Stderr:        rawStderr,
	})
}

// parse reads the command line: the fast path or kong, then the lock name
// and the command, checked. name is "" when kong did all there was to do
// (--help, --version).
func parse(args []string, stdout, stderr io.Writer) (c grammar, name string, argv []string, err error) {
	// Split at the first "--": what follows is the command, untouched by
	// flag parsing, as flock(1) and tcpnetlock's tnl_do take it.
	head, tail, dashdash := args, []string(nil), false
	if i := slices.Index(args, "--"); i >= 0 {
		head, tail, dashdash = args[:i], args[i+1:], true
	}
	c, ok := fastParse(head, dashdash)
	if !ok {
		parser, err := cli.New(prog, description, &c, stdout, stderr, cli.VersionString(version))
		if err != nil {
			return c, "", nil, err
		}
		_, done, err := cli.Parse(parser, head)
		if done {
			return c, "", nil, err
		}
		if err != nil {
			if !dashdash && strings.HasPrefix(err.Error(), "unknown flag") {
				return c, "", nil, cli.Usage(errors.Unwrap(err), "put -- before the command when it has options of its own: tnl-do [flags] NAME -- COMMAND [ARG...]")
			}
			return c, "", nil, err
		}
	}
	if name, argv, err = c.nameAndCommand(tail, dashdash); err != nil {
		return c, "", nil, err
	}
	if err := c.Lock.Check(); err != nil {
		return c, "", nil, err
	}
	if err := client.ValidName(name); err != nil {
		return c, "", nil, cli.Usage(err, "")
	}
	if c.Retry < 0 {
		return c, "", nil, cli.Usage(fmt.Errorf("--retry %d: must not be negative", c.Retry), "")
	}
	return c, name, argv, nil
}

// fastParse handles the most common command line, "tnl-do NAME -- COMMAND
// [ARG...]" without flags, without kong: building kong's model costs about
// half a millisecond, a good part of what tnl-do adds to the command's own
// run time. Anything else, and a $TNL_WAIT it cannot read, goes to kong.
// TestFastParse checks that both give the same result. The other variables
// ($TNL_SERVER, $TNL_CLIENT_ID, $TNL_AUTH_TOKEN_FILE, $TNL_TLS...) are read
// after parsing, by the same code on both paths.
func fastParse(head []string, dashdash bool) (c grammar, ok bool) {
	if !dashdash || len(head) != 1 || strings.HasPrefix(head[0], "-") {
		return grammar{}, false
	}
	c.Name = head[0]
	c.Limit = 1
	c.ConflictExitCode = exitcode.Conflict
	c.OnLost = "term"
	c.KillAfter = cli.Duration(10 * time.Second)
	c.RetryWait = cli.Duration(10 * time.Second)
	if v, set := os.LookupEnv("TNL_WAIT"); set {
		if err := c.Wait.UnmarshalText([]byte(v)); err != nil {
			return grammar{}, false
		}
	}
	return c, true
}

// nameAndCommand sorts out the lock name and the command from the
// positional arguments, in both spellings.
func (c *grammar) nameAndCommand(tail []string, dashdash bool) (string, []string, error) {
	name, cmd := c.Name, c.Command
	if dashdash {
		if len(cmd) > 0 || (c.LockName != "" && name != "") {
			// The command began before this "--" (tnl-do NAME grep -- -v
			// X): it is one of the command's own arguments.
			cmd = append(append(slices.Clone(cmd), "--"), tail...)
			dashdash = false
		} else {
			cmd = tail
		}
	}
	if c.LockName != "" {
		if dashdash && name != "" {
			return "", nil, cli.Usage(fmt.Errorf("lock name given twice: %q and --lock-name %q", name, c.LockName), "")
		}
		if !dashdash && name != "" {
			// tnl_do --lock-name NAME COMMAND ARG...: the first word
			// kong took for NAME is the command.
			cmd = append([]string{name}, cmd...)
		}
		name = c.LockName
	}
	switch {
	case name == "":
		return "", nil, cli.Usage(errors.New("missing the lock name"), "usage: tnl-do [flags] NAME -- COMMAND [ARG...]")
	case len(cmd) == 0:
		return "", nil, cli.Usage(errors.New("missing the command to run"), "usage: tnl-do [flags] NAME -- COMMAND [ARG...]")
	}
	if c.Shell {
		if len(cmd) != 1 {
			return "", nil, cli.Usage(fmt.Errorf("--shell takes the command line as one argument, got %d", len(cmd)), "quote it: tnl-do -c NAME 'COMMAND | ...'")
		}
		return name, []string{"/bin/sh", "-c", cmd[0]}, nil
	}
	return name, cmd, nil
}
