// Package cli holds the kong grammar shared by tnl's client commands
// (tnl-lock, tnl-do, tnl-stats): the common client flags of the contract
// (server, client id, wait, shared, limit, conflict exit code, verbose), the
// shared secret and TLS flags, their environment variables, tcpnetlock's
// spellings of them, and the small pieces every main package needs around
// kong (a parser that never calls os.Exit, usage errors with status 2, the
// version string).
//
// It does not dial, lock or run anything, and holds no rule of its own: it
// turns argv and the environment into values, with the rules of
// lib/protocol (durations, limits, the default address) and lib/client
// (the default client id), reads secrets and builds TLS through package
// security, and says clearly when they are wrong. Package acquire takes the
// values from there.
package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/exitcode"
	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/protocol"
)

// Server chooses the server. Precedence, first set wins: --server, $TNL_SERVER,
// $TCPNETLOCK_HOST and $TCPNETLOCK_PORT, protocol.DefaultAddr; then --host and
// --port (tcpnetlock's spelling) replace their half of the result, so a
// command line always beats the environment.
type Server struct {
	Server string `short:"s" placeholder:"HOST:PORT" help:"The server to ask. Default: $TNL_SERVER, else $TCPNETLOCK_HOST:$TCPNETLOCK_PORT, else ${default_server}."`
	Host   string `placeholder:"HOST" help:"The server's host (tcpnetlock spelling); replaces the host of --server."`
	Port   int    `placeholder:"PORT" help:"The server's port (tcpnetlock spelling); replaces the port of --server."`
}

// Addr resolves the server's HOST:PORT from the flags and the process
// environment.
func (s *Server) Addr() (string, error) { return s.Resolve(os.Getenv) }

// Resolve is Addr with the environment given as a lookup function.
func (s *Server) Resolve(getenv func(string) string) (string, error) {
	host, port := protocol.DefaultHost, strconv.Itoa(protocol.DefaultPort)
	switch {
	case s.Server != "":
		h, p, err := splitServer(s.Server)
		if err != nil {
			return "", usage(fmt.Errorf("--server %q: %w", s.Server, err))
		}
		host, port = h, p
	case getenv("TNL_SERVER") != "":
		v := getenv("TNL_SERVER")
		h, p, err := splitServer(v)
		if err != nil {
			return "", usage(fmt.Errorf("$TNL_SERVER %q: %w", v, err))
		}
		host, port = h, p
	case getenv("TCPNETLOCK_HOST") != "" || getenv("TCPNETLOCK_PORT") != "":
		if h := getenv("TCPNETLOCK_HOST"); h != "" {
			host = h
		}
		if p := getenv("TCPNETLOCK_PORT"); p != "" {
			if err := checkPort(p); err != nil {
				return "", usage(fmt.Errorf("$TCPNETLOCK_PORT %q: %w", p, err))
			}
			port = p
		}
	}
	if s.Host != "" {
		host = strings.TrimSuffix(strings.TrimPrefix(s.Host, "["), "]")
	}
	if s.Port != 0 {
		if err := checkPort(strconv.Itoa(s.Port)); err != nil {
			return "", usage(fmt.Errorf("--port %d: %w", s.Port, err))
		}
		port = strconv.Itoa(s.Port)
	}
	return net.JoinHostPort(host, port), nil
}

// splitServer splits HOST:PORT; a lone host (also a bare or bracketed IPv6
// address) gets the default port.
func splitServer(v string) (host, port string, err error) {
	if h, p, err := net.SplitHostPort(v); err == nil {
		if h == "" {
			h = protocol.DefaultHost
		}
		if err := checkPort(p); err != nil {
			return "", "", err
		}
		return h, p, nil
	}
	h := strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	if h == "" || strings.ContainsAny(h, "[]") || (strings.Contains(h, ":") && net.ParseIP(h) == nil) {
		return "", "", errors.New("want HOST:PORT")
	}
	return h, strconv.Itoa(protocol.DefaultPort), nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return errors.New("port must be a number from 1 to 65535")
	}
	return nil
}

// Client is the server plus who we are and how much to say.
type Client struct {
	Server   `embed:""`
	ClientID string `name:"client-id" placeholder:"ID" help:"A label for this client, shown to whoever looks for the holder. Default: $TNL_CLIENT_ID, else $TCPNETLOCK_CLIENT_ID, else user@host (the pid is sent too)."`
	Verbose  bool   `short:"v" help:"Say on standard error what happens: who holds the lock while waiting, the grant and its token, the release."`
	Security `embed:""`

	// tcpnetlock's logging flags: accepted, and mean -v.
	Debug bool `hidden:"" help:"Same as -v (tcpnetlock spelling)."`
	Info  bool `hidden:"" help:"Same as -v (tcpnetlock spelling)."`
	// tcpnetlock's keepalive flags: tnl always sends heartbeats, at a pace
	// derived from the server's dead-peer timeout, so they change nothing.
	KeepAlive     bool `name:"keep-alive" group:"tcpnetlock" help:"Accepted for tcpnetlock and ignored: heartbeats are always on."`
	KeepAliveSecs int  `name:"keep-alive-secs" group:"tcpnetlock" placeholder:"SECONDS" help:"Accepted for tcpnetlock and ignored."`
}

// DialOptions returns what client.Dial needs to reach the server as this
// client: the server's address, the client id, the shared secret and TLS,
// from the flags and the process environment.
func (c *Client) DialOptions() (client.Options, error) {
	addr, err := c.Addr()
	if err != nil {
		return client.Options{}, err
	}
	token, tlsConfig, err := c.Security.Load(os.Getenv)
	if err != nil {
		return client.Options{}, err
	}
	return client.Options{Addr: addr, ClientID: c.ID(), AuthToken: token, TLS: tlsConfig}, nil
}

// IsVerbose reports whether -v or one of tcpnetlock's --debug/--info was given.
func (c *Client) IsVerbose() bool { return c.Verbose || c.Debug || c.Info }

// ID returns the client id to send: --client-id, else $TNL_CLIENT_ID, else
// $TCPNETLOCK_CLIENT_ID, else client.DefaultID (user@host). An empty
// variable counts as unset.
func (c *Client) ID() string { return c.ResolveID(os.Getenv) }

// ResolveID is ID with the environment given as a lookup function.
func (c *Client) ResolveID(getenv func(string) string) string {
	for _, v := range []string{c.ClientID, getenv("TNL_CLIENT_ID"), getenv("TCPNETLOCK_CLIENT_ID")} {
		if v != "" {
			return v
		}
	}
	return client.DefaultID()
}

// Lock is how to ask for a lock: wait, mode, semaphore limit, and the status
// for a refusal.
type Lock struct {
	Wait             Wait `short:"w" env:"TNL_WAIT" default:"0" placeholder:"DURATION" help:"Wait up to DURATION for the lock, in the server's first-come first-served queue: 30s, 5m, 2 (seconds), inf. Default 0: try once."`
	Shared           bool `help:"Ask for a shared lock: many shared holders at once, never with an exclusive one."`
	Limit            int  `default:"1" placeholder:"N" help:"Semaphore: up to N holders of the name at once; everyone using the name must give the same N. Default 1."`
	ConflictExitCode int  `short:"E" name:"conflict-exit-code" default:"123" placeholder:"N" help:"Exit status when the lock is not granted or the wait runs out. Default 123."`
	// MaxHold is a Duration, not a time.Duration: kong would take "2" as
	// 2ns, and the commands read every span as the wire does (2 = seconds).
	MaxHold Duration `name:"max-hold" placeholder:"DURATION" help:"Hold the lock at most DURATION from its grant: then the server takes it away, as a loss (status 122). The server's own --max-hold wins when it is smaller. Default: no cap."`
}

// Check validates the values kong cannot.
func (l *Lock) Check() error {
	mode := protocol.Exclusive
	if l.Shared {
		mode = protocol.Shared
	}
	// The range first, as before: --shared --limit 0 is a bad limit.
	if err := protocol.CheckLimit(protocol.Exclusive, l.Limit); err != nil {
		return usage(fmt.Errorf("--limit %d: must be from 1 to %d", l.Limit, protocol.MaxLimit))
	}
	if l.ConflictExitCode < 0 || l.ConflictExitCode > 255 {
		return usage(fmt.Errorf("--conflict-exit-code %d: must be from 0 to 255", l.ConflictExitCode))
	}
	if err := protocol.CheckLimit(mode, l.Limit); err != nil {
		return usage(errors.New("--shared and --limit cannot be used together"))
	}
	return CheckSpan("--max-hold", time.Duration(l.MaxHold), true)
}

// CheckSpan checks a lease TTL or a maximum hold (flag names it) against
// the server's bounds, protocol.MinTTL to protocol.MaxTTL; 0 is "not
// given", allowed when optional.
func CheckSpan(flag string, d time.Duration, optional bool) error {
	if d == 0 && optional {
		return nil
	}
	if d < protocol.MinTTL || d > protocol.MaxTTL {
		return usage(fmt.Errorf("%s %v: must be from 1ms to 366 days", flag, d))
	}
	return nil
}

// LockOptions turns the lock flags into the client's options.
func (l *Lock) LockOptions() client.LockOptions {
	o := client.LockOptions{Wait: l.Wait.D, Shared: l.Shared, Limit: l.Limit, MaxHold: time.Duration(l.MaxHold)}
	if l.Wait.Inf {
		o.Wait = client.Forever
	}
	return o
}

// Waits reports whether the flags ask to wait for the lock at all.
func (l *Lock) Waits() bool { return l.Wait.Inf || l.Wait.D > 0 }

// Duration is a time span as protocol.ParseDuration reads it: a Go-style
// duration ("250ms", "5m", "1h30m") or a plain number of seconds ("2",
// "0.5"), as flock(1) and tcpnetlock take seconds; rounded to the nearest
// nanosecond. White space around it is dropped (an environment variable
// may carry some).
type Duration time.Duration

// UnmarshalText parses a Duration; kong calls it for flags and variables.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// parseDuration is protocol.ParseDuration in the words of a command line.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := protocol.ParseDuration(s)
	switch {
	case errors.Is(err, protocol.ErrDurationNegative):
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	case errors.Is(err, protocol.ErrDurationRange):
		return 0, fmt.Errorf("invalid duration %q: too large", s)
	case err != nil:
		return 0, fmt.Errorf("invalid duration %q: want 30s, 5m, 1h30m or a number of seconds", s)
	}
	return d, nil
}

// Wait is a Duration that may also be "inf" (or "infinity"): wait as long as
// it takes. An empty value (an empty $TNL_WAIT) is 0.
type Wait struct {
	D   time.Duration
	Inf bool
}

// UnmarshalText parses a Wait.
func (w *Wait) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(b))) {
	case "inf", "infinity", "forever":
		*w = Wait{Inf: true}
		return nil
	case "":
		*w = Wait{}
		return nil
	}
	d, err := parseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%w (or inf)", err)
	}
	if d > protocol.MaxWait { // refused by the server too: a usage error here
		return fmt.Errorf("invalid wait %q: too large, over 31 years (use inf)", strings.TrimSpace(string(b)))
	}
	*w = Wait{D: d}
	return nil
}

func (w Wait) String() string {
	if w.Inf {
		return "inf"
	}
	return w.D.String()
}

func usage(err error) error { return &exitcode.Error{Code: exitcode.Usage, Err: err} }

// Usage returns err as a usage error (status 2) with a hint.
func Usage(err error, hint string) error {
	return &exitcode.Error{Code: exitcode.Usage, Err: err, Hint: hint}
}

// exitRequest is what kong's Exit hook panics with, so that --help and
// --version return through run instead of calling os.Exit.
type exitRequest int

// New builds a kong parser for a command whose grammar is the struct grammar:
// output goes to stdout/stderr, and kong never exits the process.
func New(name, description string, grammar any, stdout, stderr io.Writer, version string, opts ...kong.Option) (*kong.Kong, error) {
	opts = append([]kong.Option{
		kong.Name(name),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitRequest(code)) }),
		kong.Vars{"version": name + " " + version, "default_server": protocol.DefaultAddr},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
		kong.ExplicitGroups([]kong.Group{{Key: "tcpnetlock", Title: "tcpnetlock compatibility"}}),
	}, opts...)
	return kong.New(grammar, opts...)
}

// Parse parses args. done is true when kong already did all there was to do
// (--help, --version): the caller returns err's status (0). A parse error
// comes back as a usage error (status 2) with a hint pointing at --help.
func Parse(p *kong.Kong, args []string) (ctx *kong.Context, done bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			code, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			ctx, done, err = nil, true, nil
			if code != 0 {
				err = exitcode.Silent(int(code))
			}
		}
	}()
	ctx, err = p.Parse(args)
	if err != nil {
		return nil, false, Usage(err, "see "+p.Model.Name+" --help")
	}
	return ctx, false, nil
}

// VersionString returns the version to print: the one set at link time with
// -X main.version, else the module version or VCS revision recorded by the
// Go toolchain, else "devel".
func VersionString(linked string) string {
	if linked != "" {
		return linked
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
