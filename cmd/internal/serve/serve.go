// Package serve is tnl-server: its flags, and Run, which checks them,
// opens the fencing state, the secrets and TLS, and serves the lock table
// until SIGTERM or SIGINT, then closes every connection (which releases
// every lock).
//
// It does not parse the command line (tnl-server's main does, with kong)
// and holds no protocol or lock-table logic: that is lib/server's and
// lib/lockd's.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/tnl-lock/tnl/cmd/internal/cli"
	"github.com/tnl-lock/tnl/cmd/internal/security"
	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/server"
)

// Flags is tnl-server's command line, as kong reads it. The default of
// --listen comes from the variable default_listen (protocol.DefaultAddr).
type Flags struct {
	Listen           string           `help:"Address to listen on: HOST:PORT, or HOST with --port." env:"TNL_LISTEN" default:"${default_listen}" placeholder:"ADDR"`
	Port             *int             `help:"Port to listen on (overrides the port of --listen; 0 picks a free one)." placeholder:"N"`
	StateDir         string           `help:"Directory for durable state (fencing tokens, leases); without it tokens restart from 1 and leases end with the server." env:"TNL_STATE_DIR" placeholder:"DIR"`
	DeadPeerTimeout  cli.Duration     `help:"Release the locks of a client that vanished (no FIN, no RST) within this time." default:"30s"`
	RestartGrace     *cli.Duration    `help:"Grant nothing for this long after starting: when given, at every start; by default (the --dead-peer-timeout) only after a restart over earlier --state-dir state; 0: never." placeholder:"DURATION"`
	FirstLineTimeout cli.Duration     `help:"Close a connection that sends no complete request within this time." default:"10s"`
	MaxLineLength    int              `help:"Longest request line accepted, in bytes." default:"4096"`
	MaxConns         int              `help:"Refuse connections beyond this many (0: no cap)." default:"0"`
	MaxWaiters       int              `help:"Refuse waiters beyond this many per lock name (0: no cap)." default:"10000"`
	MaxSessionLocks  int              `help:"Refuse locks beyond this many held or awaited by one session (0: no cap)." default:"100000"`
	MaxSessionWaits  int              `help:"Refuse waits beyond this many in one session (0: no cap)." default:"10000"`
	MaxHold          cli.Duration     `help:"Take every lock away this long after its grant, legacy ones and leases too (0: no cap); a request's own max-hold, if smaller, wins." default:"0" placeholder:"DURATION"`
	MaxAnswerBytes   int              `help:"Cut a .holders answer at this many bytes (it then says truncated)." default:"1048576" placeholder:"BYTES"`
	AuthTokenFile    string           `help:"Require the shared secret in FILE from every client (.ping excepted)." env:"TNL_AUTH_TOKEN_FILE" placeholder:"FILE" type:"existingfile"`
	AdminTokenFile   string           `help:"Allow .break and .server-shutdown to clients that send the secret in FILE." env:"TNL_ADMIN_TOKEN_FILE" placeholder:"FILE" type:"existingfile"`
	TLSCert          string           `name:"tls-cert" help:"Serve TLS (1.3 or later) with this certificate (PEM)." placeholder:"FILE" type:"existingfile"`
	TLSKey           string           `name:"tls-key" help:"Private key (PEM) of --tls-cert." placeholder:"FILE" type:"existingfile"`
	TLSClientCA      string           `name:"tls-client-ca" help:"Require client certificates signed by these CAs (PEM)." placeholder:"FILE" type:"existingfile"`
	LogFormat        string           `help:"Log format: text or json." enum:"text,json" default:"text"`
	LogLevel         string           `help:"Log level: debug, info, warn or error." enum:"debug,info,warn,error" default:"info"`
	Info             bool             `help:"Same as --log-level info (tcpnetlock spelling)."`
	Debug            bool             `help:"Same as --log-level debug (tcpnetlock spelling)."`
	CPUProfile       string           `name:"cpu-profile" hidden:"" help:"Write a pprof CPU profile to FILE until exit (for make bench)." placeholder:"FILE"`
	FenceBlock       uint64           `name:"fence-block" hidden:"" default:"65536" help:"Fencing tokens reserved per write of the state file (for tests: a small block reaches the ceiling in a few grants)." placeholder:"N"`
	Version          kong.VersionFlag `help:"Print the version and exit."`
}

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// ExitCode is the status for e (exitcode.Coder, as package security's
// errors are).
func (e *exitError) ExitCode() int { return e.code }

// Run serves as c says until SIGTERM or SIGINT (or an admin's
// .server-shutdown), then shuts down and returns nil. An error carries its
// status (ExitCode): 2 for flags and files that are wrong; the caller
// prints it.
func Run(c *Flags, version string, stderr io.Writer) error {
	addr, err := check(c)
	if err != nil {
		return err
	}
	log := newLogger(c, stderr)
	stopProfile, err := startProfile(c.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	tokens, restarted, err := openTokens(c, log)
	if err != nil {
		return err
	}
	leases, err := openLeases(c, log)
	if err != nil {
		return err
	}
	if leases != nil {
		defer leases.Close()
	}
	auth, admin, tlsConfig, err := loadSecurity(c, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	table, stopHoldOff, err := newTable(c, tokens, leases, restarted, log)
	if err != nil {
		return err
	}
	defer stopHoldOff()
	srv := server.New(table, server.Config{
		DeadPeerTimeout:  time.Duration(c.DeadPeerTimeout),
		FirstLineTimeout: time.Duration(c.FirstLineTimeout),
		MaxLineLength:    c.MaxLineLength,
		MaxConns:         c.MaxConns,
		MaxAnswerBytes:   c.MaxAnswerBytes,
		MaxSessionLocks:  noCap(c.MaxSessionLocks),
		MaxSessionWaits:  noCap(c.MaxSessionWaits),
		MaxHold:          time.Duration(c.MaxHold),
		AuthToken:        auth,
		AdminToken:       admin,
		OnShutdown:       stop,
		Logger:           log,
	})
	l, err := server.Listen(ctx, addr, time.Duration(c.DeadPeerTimeout))
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, unwrapOp(err))
	}
	if tlsConfig != nil {
		l = tls.NewListener(l, tlsConfig)
	}
	logFileLimit(log)
	log.Info("listening", "addr", l.Addr().String(), "version", version, "dead_peer_timeout", time.Duration(c.DeadPeerTimeout),
		"tls", tlsConfig != nil, "auth", auth != "", "max_hold", time.Duration(c.MaxHold))
	return serveUntilDone(ctx, srv, l, log)
}

// check validates what kong cannot, and returns the address to listen on.
func check(c *Flags) (string, error) {
	addr, err := listenAddr(c.Listen, c.Port)
	if err != nil {
		return "", &exitError{2, err}
	}
	if c.DeadPeerTimeout <= 0 || c.FirstLineTimeout <= 0 || c.MaxLineLength < 64 || c.MaxConns < 0 || c.MaxWaiters < 0 ||
		c.MaxSessionLocks < 0 || c.MaxSessionWaits < 0 {
		return "", &exitError{2, errors.New("invalid limits: timeouts must be > 0, --max-line-length >= 64, caps >= 0")}
	}
	if c.FenceBlock < 2 || c.FenceBlock > lockd.MaxBlock {
		return "", &exitError{2, fmt.Errorf("invalid --fence-block %d: want 2 to %d", c.FenceBlock, uint64(lockd.MaxBlock))}
	}
	if c.MaxHold < 0 || time.Duration(c.MaxHold) > protocol.MaxTTL {
		return "", &exitError{2, fmt.Errorf("invalid --max-hold %v: want 0 (no cap) to 366 days", time.Duration(c.MaxHold))}
	}
	if c.MaxAnswerBytes < minAnswerBytes || c.MaxAnswerBytes > protocol.MaxReplyLine {
		return "", &exitError{2, fmt.Errorf("invalid --max-answer-bytes %d: want %d to %d", c.MaxAnswerBytes, minAnswerBytes, protocol.MaxReplyLine)}
	}
	return addr, nil
}

// startProfile starts the CPU profile of --cpu-profile, if given; stop
// ends it and closes its file.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("--cpu-profile: %w", err)}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// openTokens opens the fencing state of --state-dir (nil without it).
// restarted says it holds an earlier run's tokens.
func openTokens(c *Flags, log *slog.Logger) (tokens lockd.TokenSource, restarted bool, err error) {
	if c.StateDir == "" {
		log.Warn("no --state-dir: fencing tokens start from 1 again after a restart, and leases end with the server")
		return nil, false, nil
	}
	ft, err := lockd.OpenFileTokens(c.StateDir, c.FenceBlock)
	if err != nil {
		return nil, false, err
	}
	log.Info("fencing state", "dir", c.StateDir, "next_token", ft.Last()+1)
	watchFence(ft, log)
	// The state of an earlier run: this is a restart, after a crash or
	// not, and that run's holders may still be running their commands.
	return ft, ft.Last() > 0, nil
}

// openLeases opens the lease log of --state-dir (nil without it), whose
// unexpired leases the table holds again before it grants anything. After
// openTokens: on a fresh directory the fencing state wants no other file.
func openLeases(c *Flags, log *slog.Logger) (*lockd.FileLeases, error) {
	if c.StateDir == "" {
		return nil, nil
	}
	fl, err := lockd.OpenFileLeases(c.StateDir)
	if err != nil {
		return nil, err
	}
	if w := fl.Warning(); w != nil {
		log.Warn("lease state: dropped a damaged last line (a crash in the middle of a write)", "err", w)
	}
	log.Info("lease state", "dir", c.StateDir, "leases", len(fl.Leases()))
	return fl, nil
}

// loadSecurity reads the secrets and builds TLS (package security).
func loadSecurity(c *Flags, log *slog.Logger) (auth, admin string, tlsConfig *tls.Config, err error) {
	if auth, err = readSecret(c.AuthTokenFile, "--auth-token-file", log); err != nil {
		return "", "", nil, err
	}
	if admin, err = readSecret(c.AdminTokenFile, "--admin-token-file", log); err != nil {
		return "", "", nil, err
	}
	if tlsConfig, err = security.ServerTLS(c.TLSCert, c.TLSKey, c.TLSClientCA); err != nil {
		return "", "", nil, err
	}
	if auth != "" && tlsConfig == nil {
		log.Warn("--auth-token-file without TLS: the secret crosses the network in clear text")
	}
	return auth, admin, tlsConfig, nil
}

// newTable makes the lock table, granting nothing for the restart grace
// when there is one; stop cancels the grace's timer.
func newTable(c *Flags, tokens lockd.TokenSource, leases *lockd.FileLeases, restarted bool, log *slog.Logger) (table *lockd.Table, stop func(), err error) {
	grace := time.Duration(c.DeadPeerTimeout)
	if c.RestartGrace != nil {
		grace = time.Duration(*c.RestartGrace)
	}
	if grace < 0 {
		return nil, nil, &exitError{2, errors.New("invalid --restart-grace: must be >= 0")}
	}
	// An explicit --restart-grace applies at every start: only the operator
	// knows whether an earlier run (one without --state-dir, or with another
	// one, or whose state was lost) may have holders still running.
	holdOff := grace > 0 && (restarted || c.RestartGrace != nil)
	opts := lockd.Options{Tokens: tokens, MaxWaiters: c.MaxWaiters, HoldOff: holdOff}
	if leases != nil {
		// Not a nil *FileLeases in the interface: lockd reads nil as
		// "in memory".
		opts.Leases = leases
	}
	// The leases of the earlier run are held again here, at once, with
	// their tokens and expiries: the grace is for the holders the server
	// cannot know of, and a lease's holder is known.
	table = lockd.New(opts)
	if !holdOff {
		return table, func() {}, nil
	}
	// Why the whole dead-peer timeout: a holder of the previous run
	// that could not hear it die (a partition) declares its lock lost
	// after half of it and has its command killed by 3/4 of it, counted
	// from the last word it had from that run. That is the bound the
	// server keeps for a client that vanishes; a restart must keep it
	// too.
	if restarted {
		log.Info("restarted over earlier state: granting no lock for the restart grace, so that the previous run's holders have stopped", "for", grace)
	} else {
		log.Info("granting no lock for the restart grace (--restart-grace given), so that the holders of any earlier run have stopped", "for", grace)
	}
	t := time.AfterFunc(grace, func() {
		log.Info("granting locks")
		table.EndHoldOff()
	})
	return table, func() { t.Stop() }, nil
}

// serveUntilDone serves l until ctx ends, then closes every connection,
// which releases every lock.
func serveUntilDone(ctx context.Context, srv *server.Server, l net.Listener, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	st := srv.Stats()
	log.Info("shutting down: closing every connection, which releases every lock", "connections", st.Connections, "held", st.Held, "waiting", st.Waiting)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	log.Info("stopped")
	return nil
}

// watchFence logs each change of the fencing state's durability: once at
// error level when the state file cannot be written (not once per refused
// request: the refusals say why to each client), once when it can again.
func watchFence(ft *lockd.FileTokens, log *slog.Logger) {
	var since time.Time // only the writer goroutine calls, one call at a time
	ft.Watch(func(err error) {
		if err != nil {
			since = time.Now()
			log.Error("fencing state not durable: cannot write the next ceiling; locks needing a token above it are refused until the state directory takes writes again (retrying)",
				"err", err, "ceiling", ft.Ceiling(), "last_token", ft.Last())
			return
		}
		log.Warn("fencing state durable again: granting locks", "after", time.Since(since).Round(time.Millisecond), "ceiling", ft.Ceiling())
	})
}

// readSecret reads a token file with security.ReadSecret, as the client
// commands read theirs, and warns when others may read it too.
func readSecret(path, flag string, log *slog.Logger) (string, error) {
	if path == "" {
		return "", nil
	}
	tok, err := security.ReadSecret(path, flag)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("secret file is readable by others", "file", path, "mode", fi.Mode().Perm().String())
	}
	return tok, nil
}

// listenAddr combines --listen and --port: tcpnetlock's --listen is a host.
func listenAddr(listen string, portFlag *int) (string, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		if ae, ok := errors.AsType[*net.AddrError](err); ok && ae.Err == "missing port in address" {
			host, p, err = strings.Trim(listen, "[]"), strconv.Itoa(protocol.DefaultPort), nil
		} else {
			return "", fmt.Errorf("invalid --listen %q: %w", listen, err)
		}
	}
	if portFlag != nil {
		port := *portFlag
		if port < 0 || port > 65535 {
			return "", fmt.Errorf("invalid --port %d: want 0 to 65535", port)
		}
		p = strconv.Itoa(port)
	}
	return net.JoinHostPort(host, p), nil
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

func newLogger(c *Flags, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	if c.Info {
		level = slog.LevelInfo
	}
	if c.Debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// logFileLimit logs the open-files limit. Go (since 1.19) already raised the
// soft limit to the hard limit at start; each held lock on its own connection
// needs one descriptor.
func logFileLimit(log *slog.Logger) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		log.Info("open files limit", "soft", rl.Cur, "hard", rl.Max)
	}
}

// minAnswerBytes is the least --max-answer-bytes: room for a few holders
// with the longest client ids and hosts.
const minAnswerBytes = 4096

// noCap turns a flag's 0 (no cap) into server.Config's spelling of it.
func noCap(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
