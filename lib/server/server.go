// Package server serves the tnl wire protocol (lib/protocol) over TCP on top
// of a lock table: any table.Table, the embedded one (lib/lockd) or one kept
// elsewhere. The server speaks the wire and owns connections, sessions and
// wait timeouts; the table keeps the locks.
//
// Each connection has one goroutine, and no writer goroutine. Everything
// that concerns a connection happens on it: it blocks in Read with a
// deadline that is the earliest of what the connection waits for (its first
// line, its waits' timeouts, a session's heartbeat), so the wait timers of a
// connection are that one read deadline, not a timer per wait. When another
// connection's release grants one of its waiters, the table calls Granted,
// which only queues the grant and moves the read deadline into the past (or,
// for a session idle in Read, writes the answer with one non-blocking write),
// so that a slow or hostile peer can never block the goroutine that released
// the lock. On Linux an idle legacy holder gives its goroutine up to the
// parker, one epoll set for the server, until its peer sends something or
// goes away.
//
// Leases are the table's (it ends them at their TTL); the server makes
// their ids, kept only until the grant is answered and never logged, and
// enforces the maximum hold of connection-bound holders with a timer each
// (lease.go).
//
// It deliberately does not authenticate, encrypt or persist anything beyond
// what the table persists; those belong to the listener and the table.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tnl-lock/tnl/lib/internal/sockopt"
	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/table"
)

// Defaults for Config.
const (
	DefaultDeadPeerTimeout  = 30 * time.Second
	DefaultFirstLineTimeout = 10 * time.Second
	DefaultMaxLineLength    = 4096
	DefaultMaxListed        = 10000
	// DefaultMaxAnswerBytes bounds a .holders answer: about 6,000 holders
	// or waiters with their client ids, more than a person reads, and
	// little enough that a peer that does not read pins nothing much.
	DefaultMaxAnswerBytes = 1 << 20
	// DefaultMaxSessionLocks and DefaultMaxSessionWaits are far above what
	// a program takes in one session, and keep what one peer can make the
	// server hold to some tens of megabytes.
	DefaultMaxSessionLocks = 100000
	DefaultMaxSessionWaits = 10000
)

// Config configures a Server. The zero value is usable.
type Config struct {
	// DeadPeerTimeout bounds how long a vanished client keeps its locks: TCP
	// keepalive and TCP_USER_TIMEOUT for every connection, and for sessions
	// the longest silence allowed.
	DeadPeerTimeout time.Duration
	// FirstLineTimeout is how long a new connection may take to send its
	// first complete request line.
	FirstLineTimeout time.Duration
	// MaxLineLength is the longest request line accepted, newline included.
	MaxLineLength int
	// MaxConns caps open connections; 0 means no cap.
	MaxConns int
	// MaxListed caps the names listed by one .holders answer, and the
	// holders and waiters listed per name.
	MaxListed int
	// MaxAnswerBytes caps the length of one .holders answer, line and
	// newline included; what does not fit is left out, and the answer
	// says "truncated":true. 0: DefaultMaxAnswerBytes; at least
	// protocol.MinHoldersAnswer.
	MaxAnswerBytes int
	// MaxSessionLocks caps the names one session holds or waits for, and
	// MaxSessionWaits those it waits for; a request over a cap is answered
	// err. 0: the default; negative: no cap.
	MaxSessionLocks int
	MaxSessionWaits int
	// AuthToken, when set, is the shared secret every request must carry
	// (key auth:) on a fresh connection or in .session; .ping is exempt.
	AuthToken string
	// AdminToken, when set, allows .break and .server-shutdown to requests
	// that carry it. It also passes as an AuthToken.
	AdminToken string
	// MaxHold, when above 0, caps how long any holder keeps a lock from
	// its grant, legacy holders too; a request's own max-hold, if
	// smaller, wins. At the cap a connection-bound holder is taken away
	// (a session is told with a lost line, any other connection is
	// closed); a lease ends there, renewed or not.
	MaxHold time.Duration
	// OnShutdown is called after an admin's .server-shutdown was answered.
	OnShutdown func()
	// Logger receives the server's log lines; default slog.Default().
	Logger *slog.Logger
}

// Server is a tnl lock server.
type Server struct {
	cfg   Config
	table table.Table
	log   *slog.Logger
	rlog  *rateLog // for the lines a peer can make the server repeat
	start time.Time

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     *conn // intrusive list of open connections
	closed    bool
	wg        sync.WaitGroup

	parker *parker // nil: idle holders keep their goroutine
	rec    *reclaimer

	parkWarned atomic.Bool // parkFailed logged its warning

	stopping  atomic.Bool // Shutdown has begun
	nconns    atomic.Int64
	nsessions atomic.Int64
	requests  atomic.Uint64
	maxHolds  atomic.Uint64 // holders taken away at their maximum hold
}

// New returns a server for table t. The server times waits out itself
// (Table.Cancel, Table.CountTimeout): t needs no timers.
func New(t table.Table, cfg Config) *Server {
	if cfg.DeadPeerTimeout <= 0 {
		cfg.DeadPeerTimeout = DefaultDeadPeerTimeout
	}
	if cfg.FirstLineTimeout <= 0 {
		cfg.FirstLineTimeout = DefaultFirstLineTimeout
	}
	if cfg.MaxLineLength <= 0 {
		cfg.MaxLineLength = DefaultMaxLineLength
	}
	if cfg.MaxListed <= 0 {
		cfg.MaxListed = DefaultMaxListed
	}
	if cfg.MaxAnswerBytes <= 0 {
		cfg.MaxAnswerBytes = DefaultMaxAnswerBytes
	}
	cfg.MaxAnswerBytes = max(cfg.MaxAnswerBytes, protocol.MinHoldersAnswer)
	cfg.MaxSessionLocks = capDefault(cfg.MaxSessionLocks, DefaultMaxSessionLocks)
	cfg.MaxSessionWaits = capDefault(cfg.MaxSessionWaits, DefaultMaxSessionWaits)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, table: t, log: cfg.Logger, start: time.Now(), listeners: map[net.Listener]struct{}{},
		rlog: newRateLog(cfg.Logger.Handler()), parker: newParker(cfg.Logger), rec: newReclaimer()}
}

// capDefault is a cap's value in force: 0 is the default, negative no cap
// (0 then, as the code reads it).
func capDefault(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("server closed")

// Listen opens a TCP listener on addr with the keepalive settings that go
// with the dead-peer timeout.
func Listen(ctx context.Context, addr string, deadPeer time.Duration) (net.Listener, error) {
	if deadPeer <= 0 {
		deadPeer = DefaultDeadPeerTimeout
	}
	lc := net.ListenConfig{KeepAliveConfig: sockopt.KeepAlive(deadPeer)}
	return lc.Listen(ctx, "tcp", addr)
}

// Serve accepts connections on l until Shutdown or Close. It always returns
// a non-nil error; ErrServerClosed after a shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors, for instance: back off instead
				// of spinning, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		n := s.nconns.Add(1)
		if s.cfg.MaxConns > 0 && n > int64(s.cfg.MaxConns) {
			s.nconns.Add(-1)
			s.rlog.Warn("connection refused: too many connections", "remote", nc.RemoteAddr().String(), "max", s.cfg.MaxConns)
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = nc.Write([]byte("err,too many connections\n"))
			_ = nc.Close()
			continue
		}
		s.rec.opened(n)
		if err := sockopt.Apply(nc, s.cfg.DeadPeerTimeout); err != nil {
			s.log.Debug("socket options", "err", err)
		}
		c := newConn(s, nc)
		if !s.track(c) {
			s.nconns.Add(-1)
			_ = nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	c.lnext = s.conns
	if s.conns != nil {
		s.conns.lprev = c
	}
	s.conns = c
	// Counted under s.mu, with the check of s.closed: once Shutdown has set
	// closed, its wg.Wait sees every connection that was let in.
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	if c.lprev != nil {
		c.lprev.lnext = c.lnext
	} else if s.conns == c {
		s.conns = c.lnext
	}
	if c.lnext != nil {
		c.lnext.lprev = c.lprev
	}
	c.lnext, c.lprev = nil, nil
	s.mu.Unlock()
	s.rec.closed(s, s.nconns.Add(-1))
}

// Shutdown stops accepting, closes every connection (which releases every
// lock and cancels every wait) and waits for the connection goroutines to end
// or ctx to expire.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		_ = l.Close()
	}
	for c := s.conns; c != nil; c = c.lnext {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	if s.parker != nil {
		s.parker.close()
	}
	reclaimed := s.rec.close()
	s.rlog.flushAll()
	done := make(chan struct{})
	go func() { s.wg.Wait(); <-reclaimed; close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close is Shutdown without waiting.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Table returns the server's lock table.
func (s *Server) Table() table.Table { return s.table }

// Stats are the server's counters.
type Stats struct {
	table.Counters
	Requests    uint64
	Connections int64
	Sessions    int64
	Uptime      time.Duration
	// MaxHolds counts the connection-bound holders taken away at their
	// maximum hold. (A lease that reaches it ends as it would at its TTL,
	// and is counted in Expired.)
	MaxHolds uint64
	// Degraded is why the table cannot grant every lock now (for lib/lockd:
	// fencing tokens cannot be made durable), or nil: Table.Degraded.
	Degraded error
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Counters:    s.table.Counters(),
		Requests:    s.requests.Load(),
		Connections: s.nconns.Load(),
		Sessions:    s.nsessions.Load(),
		Uptime:      time.Since(s.start),
		MaxHolds:    s.maxHolds.Load(),
		Degraded:    s.table.Degraded(),
	}
}
