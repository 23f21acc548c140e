// Command tnl-stats shows who holds and who waits for the locks of a
// tnl-server, and the server's counters. See tnl-stats(1).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/cli"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/security"
	"github.com/tnl-lock/tnl/cmd/internal/stats"
	"github.com/tnl-lock/tnl/lib/client"
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
	cfg, done, err := parse(args, stdout, stderr, os.Getenv)
	if err == nil && !done {
		err = stats.Run(context.Background(), cfg, stdout)
	}
	return exitcode.Print(stderr, prog, err)
}

// parse reads the flags into what stats.Run needs; every usage error is
// found here, before the server is asked anything. done: --help or
// --version did all there was to do.
func parse(args []string, stdout, stderr io.Writer, getenv func(string) string) (stats.Config, bool, error) {
	var g grammar
	parser, err := cli.New(prog, description, &g, stdout, stderr, cli.VersionString(version))
	if err != nil {
		return stats.Config{}, false, err
	}
	if _, done, err := cli.Parse(parser, args); done || err != nil {
		return stats.Config{}, done, err
	}
	for _, n := range g.Names {
		if err := client.ValidName(n); err != nil {
			return stats.Config{}, false, cli.Usage(err, "")
		}
	}
	addr, err := g.Server.Resolve(getenv)
	if err != nil {
		return stats.Config{}, false, err
	}
	timeout := time.Duration(g.Timeout)
	if timeout <= 0 {
		return stats.Config{}, false, cli.Usage(fmt.Errorf("--timeout %v: must be more than 0", timeout), "")
	}
	token, tlsConfig, err := g.Security.Load(getenv)
	if err != nil {
		return stats.Config{}, false, err
	}
	cfg := stats.Config{
		Dial:    client.Options{Addr: addr, DialTimeout: timeout, AuthToken: token, TLS: tlsConfig},
		Timeout: timeout, Names: g.Names, JSON: g.JSON,
	}
	if g.Break != "" {
		return cfg, false, parseBreak(g, &cfg, getenv)
	}
	if g.AdminTokenFile != "" {
		return stats.Config{}, false, cli.Usage(errors.New("--admin-token-file is for --break"), "")
	}
	return cfg, false, nil
}

// parseBreak checks --break and reads the admin secret it needs.
func parseBreak(g grammar, cfg *stats.Config, getenv func(string) string) error {
	switch {
	case len(g.Names) > 0:
		return cli.Usage(fmt.Errorf("--break takes one lock name; got %q as well", g.Names[0]), "break one lock at a time: tnl-stats --break NAME")
	case g.JSON:
		return cli.Usage(errors.New("--break and --json cannot be used together"), "")
	}
	if err := client.ValidName(g.Break); err != nil {
		return cli.Usage(err, "")
	}
	path, from := g.AdminTokenFile, "--admin-token-file"
	if path == "" {
		path, from = getenv("TNL_ADMIN_TOKEN_FILE"), "$TNL_ADMIN_TOKEN_FILE"
	}
	if path == "" {
		return cli.Usage(errors.New("--break needs the operator's secret"),
			"give --admin-token-file FILE or set TNL_ADMIN_TOKEN_FILE: the file tnl-server was started with")
	}
	admin, err := security.ReadSecret(path, from)
	if err != nil {
		return err
	}
	cfg.Break, cfg.AdminToken, cfg.AdminFrom = g.Break, admin, from
	return nil
}
