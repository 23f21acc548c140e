// Command tnl-server is the tnl lock server. See tnl-server(1).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/cli"
	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/cmd/internal/serve"
	"github.com/tnl-lock/tnl/lib/protocol"
)

var version = ""

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var c serve.Flags
	exit := -1
	parser, err := kong.New(&c,
		kong.Name("tnl-server"),
		kong.Description("A network lock server for shell scripts, cron jobs and Makefiles."),
		kong.Vars{"version": versionString(), "default_listen": protocol.DefaultAddr},
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code }),
		kong.UsageOnError(),
	)
	if err != nil {
		fmt.Fprintf(stderr, "tnl-server: %v\n", err)
		return 1
	}
	_, err = parser.Parse(args)
	if exit >= 0 {
		return exit // --help, --version
	}
	if err != nil {
		fmt.Fprintf(stderr, "tnl-server: %v\n", err)
		return 2
	}
	if err := serve.Run(&c, versionString(), stderr); err != nil {
		fmt.Fprintf(stderr, "tnl-server: %v\n", err)
		var ce exitcode.Coder
		if errors.As(err, &ce) {
			return ce.ExitCode()
		}
		return 1
	}
	return 0
}

func versionString() string { return cli.VersionString(version) }
