// Package client is the Go client of tnl-server: one session (one TCP
// connection) that holds any number of locks, with heartbeats both ways.
//
//	c, err := client.Dial(ctx, client.Options{Addr: "10.0.0.5:7654"})
//	lock, err := c.Lock(ctx, "nightly-backup", client.LockOptions{Wait: 5 * time.Minute})
//	defer lock.Release()
//	select { case <-lock.Done(): /* lost: lock.Err() says why */ ... }
//
// Lock loss is honest and early: the client sends a heartbeat every sixth of
// the dead-peer timeout and declares every lock lost when the server has
// been silent for half of it, so that a program can stop its work before the
// server (which waits the whole timeout) could grant the lock to anyone else.
// A lost lock says by when that work must have stopped at the latest
// (Lock.KillBy): 3/4 of the timeout after the last word from the server.
//
// Errors are typed, for errors.Is and errors.As, never for matching words:
// ErrNotGranted and ErrTimeout when the lock is not granted, a *LostError
// (ErrLost) when it was lost, a *ServerError, whose reason errors.Is tells
// (ErrNotHeld, ErrAuthFailed, ErrNoLease, ...), when the server refused.
// Holders returns the server's own holders schema, protocol.LockInfo.
//
// Beside the session's own locks: leases (AcquireLease, Renew, LeaseHeld,
// ReleaseLease), locks held by a secret id rather than by the session,
// which outlive it until released or until their TTL runs out; a maximum
// hold on any lock (LockOptions.MaxHold); and Mutex, a lock name used with
// Lock and Unlock as a DLM's or Consul's lock is. A server that predates a
// request answers it with an *UnknownActionError.
//
// It deliberately does not retry or reconnect: a lost lock is lost, and
// a new Dial makes a new session, which is what lock users must reason about.
// It speaks tnl's extension protocol only (a session; Break's one request),
// never tcpnetlock's legacy forms, so it needs a tnl-server. Every line it
// sends is formatted by lib/protocol.
package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tnl-lock/tnl/lib/internal/sockopt"
	"github.com/tnl-lock/tnl/lib/protocol"
)

// DefaultAddr is where tnl-server listens unless told otherwise
// (protocol.DefaultAddr).
const DefaultAddr = protocol.DefaultAddr

// Forever, as LockOptions.Wait, waits without a time limit.
const Forever = protocol.WaitForever

// Errors a Lock or a Client can report. Test with errors.Is: a loss is a
// *LostError, which is ErrLost.
var (
	ErrNotGranted = errors.New("lock not granted: held by someone else")
	ErrTimeout    = errors.New("lock not granted: the wait timed out")
	ErrLost       = errors.New("lock lost")
	ErrReleased   = errors.New("lock released")
	ErrClosed     = errors.New("client closed")
)

// LostError says why a lock, or a whole session, was lost: the server went
// silent, the connection ended, the server broke the protocol, or an
// operator broke the lock. errors.Is(err, ErrLost) is true for it; read
// Why with errors.As, rather than cutting "lock lost: " off Error.
type LostError struct {
	// Name is the lock lost (in Lock.Err and from Lock.Release); empty
	// when the error is the session's (Client.Err, and what calls return
	// once the session ended).
	Name string
	// Why is what happened, for people: "no word from server
	// 10.0.0.5:7654 for 15s", "broken by an operator on server ...".
	Why string
	// Err is the network error underneath, if there was one; its words
	// end Why.
	Err error
}

func (e *LostError) Error() string { return ErrLost.Error() + ": " + e.Why }

// Is makes every LostError ErrLost for errors.Is.
func (e *LostError) Is(target error) bool { return target == ErrLost }

// Unwrap returns the network error underneath, if any.
func (e *LostError) Unwrap() error { return e.Err }

// lost is the LostError of a session that ended: what happened, then the
// words of err, when there is one.
func lost(err error, format string, args ...any) *LostError {
	why := fmt.Sprintf(format, args...)
	if err != nil {
		why += ": " + err.Error()
	}
	return &LostError{Why: why, Err: err}
}

// forLock is err as the lock name's own error: a session's loss, named.
func forLock(name string, err error) error {
	var le *LostError
	if errors.As(err, &le) && le.Name == "" {
		named := *le
		named.Name = name
		return &named
	}
	return err
}

// ServerError is an "err,..." answer: the server refused the request.
// errors.Is tells the reasons a program may act on (ErrNotHeld,
// ErrAuthFailed, ...); Msg is for people.
type ServerError struct {
	Name string // the lock the answer named, in a session; else empty
	Msg  string // the server's words after "err,"
}

func (e *ServerError) Error() string {
	if e.Name != "" {
		return "server refused " + e.Name + ": " + e.Msg
	}
	return "server refused: " + e.Msg
}

// Is reports whether the server gave target as its reason, for the
// reasons below: errors.Is(err, ErrAuthFailed).
func (e *ServerError) Is(target error) bool {
	for _, r := range reasons {
		if target == r {
			return protocol.IsReason(e.Msg, r.Error())
		}
	}
	return false
}

// The reasons of a *ServerError that a program may act on, for errors.Is.
// They are never returned themselves: the *ServerError is, so that the
// server's own words reach people.
var (
	ErrNotHeld       = errors.New(protocol.ReasonNotHeld)       // release or break of a name not held
	ErrInvalidName   = errors.New(protocol.ReasonInvalidName)   // a name the server does not allow
	ErrAuthRequired  = errors.New(protocol.ReasonAuthRequired)  // the server wants its shared secret
	ErrAuthFailed    = errors.New(protocol.ReasonAuthFailed)    // the secret given is not the server's
	ErrAdminRequired = errors.New(protocol.ReasonAdminRequired) // no admin secret, or not the server's
	ErrLimitMismatch = errors.New(protocol.ReasonLimitMismatch) // held or awaited with another Limit
	ErrQueueFull     = errors.New(protocol.ReasonQueueFull)     // the name has too many waiters
)

var reasons = [...]error{ErrNotHeld, ErrInvalidName, ErrAuthRequired, ErrAuthFailed, ErrAdminRequired, ErrLimitMismatch, ErrQueueFull, ErrNoLease}

// UnknownActionError is a server's bad-action answer to a request: the
// server does not know the action (it predates it: leases, say).
type UnknownActionError struct {
	Addr   string // the server
	Action string // the request's action, ".is-held"
}

func (e *UnknownActionError) Error() string {
	return "server " + e.Addr + " does not know " + e.Action + " (it answered bad-action): it predates it"
}

// refusedError is a refused session: its own words, and the ServerError
// underneath for errors.As.
type refusedError struct {
	msg string
	err error
}

func (e *refusedError) Error() string { return e.msg }
func (e *refusedError) Unwrap() error { return e.err }

// Options configure Dial. The zero value talks to DefaultAddr.
type Options struct {
	Addr     string // HOST:PORT
	ClientID string // shown to others; default DefaultID()
	Host     string // default os.Hostname()
	PID      int    // default os.Getpid()
	// DialTimeout bounds connecting and opening the session; default 10s.
	DialTimeout time.Duration
	// DeadPeerTimeout is the server's bound on a vanished client keeping
	// its locks (default 30s; the server's own value is used if smaller).
	// Locks are declared lost after half of it without a word from the
	// server.
	DeadPeerTimeout time.Duration
	// AuthToken is the server's shared secret, when it asks for one.
	AuthToken string
	// TLS, when set, makes the connection TLS with this configuration.
	TLS *tls.Config
	// Dial, if set, opens the connection (tests). Default net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger gets debug lines about heartbeats and loss; default discards.
	Logger *slog.Logger
}

// LockOptions say how to ask for a lock.
type LockOptions struct {
	// Wait is how long to wait in the server's FIFO queue: 0 tries once,
	// Forever waits without limit. The context can end a wait sooner.
	Wait time.Duration
	// Shared asks for a shared (reader) lock instead of an exclusive one.
	Shared bool
	// Limit makes the lock a semaphore of Limit holders (exclusive only).
	Limit int
	// MaxHold, when not 0, caps how long the lock is held from its grant
	// (max-hold:, protocol.MinTTL to protocol.MaxTTL): at the cap the
	// server takes it away and the Lock is lost, with the server's why. The
	// server's own --max-hold applies when it is smaller. For a lease it is
	// the longest its renewals can make it last.
	MaxHold time.Duration
}

// Client is an open session with tnl-server. It is safe for concurrent use.
type Client struct {
	opts     Options
	nc       net.Conn
	log      *slog.Logger
	deadPeer time.Duration

	// heard is the last time the server is known to have heard from us:
	// when the last heartbeat it answered was sent (at first, the session
	// request), as time since born, when that request was sent.
	born  time.Time
	heard atomic.Int64

	wmu  sync.Mutex // serialises writes
	wbuf []byte     // the request line being written, under wmu

	mu       sync.Mutex
	calls    map[string]*call // lock requests in flight, by name
	releases map[string]*call // release requests in flight, by name
	locks    map[string]*Lock // held
	queries  []*call          // .ping/.stats/.holders, answered in order
	beats    []time.Duration  // heartbeats in flight: when each was sent
	err      error            // why the session ended
	// wseq counts the lines written; it moves under wmu and mu both.
	wseq uint64

	done chan struct{}
}

type call struct {
	name      string
	cancelled bool // the caller gave up; a grant is released at once
	// A cancelled call ends with the answer to its release: "cancelled"
	// alone (it was still waiting), or its lock's answer (ok, not-granted,
	// timeout, err) followed by the release's (released, err not held).
	// lockAnswered says the first of the two came.
	lockAnswered bool
	// seq is the place on the wire of the request this call waits on the
	// answer of (a release's, for releases and cancelled calls), to tell
	// which of two released,name:N answers is whose (see leaseReleaseFirst).
	seq uint64
	// want is the answer a lease query waits for (KindRenewed, KindHeld,
	// KindReleased); KindUnknown for the other queries.
	want   protocol.Kind
	action protocol.Action // of a query
	// lock is the Lock made of a grant, held from the moment the answer
	// is read: a loss right behind the grant (a tiny maximum hold) finds it.
	lock  *Lock
	reply protocol.Reply
	err   error
	done  chan struct{}
}

// Dial connects to the server and opens a session.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.DeadPeerTimeout <= 0 {
		o.DeadPeerTimeout = 30 * time.Second
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if o.ClientID == "" {
		o.ClientID = DefaultID()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	dial := o.Dial
	if dial == nil {
		d := &net.Dialer{KeepAliveConfig: sockopt.KeepAlive(o.DeadPeerTimeout / 2)}
		dial = d.DialContext
	}
	nc, err := connect(dctx, &o, dial)
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts: o, nc: nc, log: o.Logger,
		calls: map[string]*call{}, releases: map[string]*call{}, locks: map[string]*Lock{},
		done: make(chan struct{}),
	}
	r := bufio.NewReaderSize(nc, 4096)
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	// The caller's context (a signal, say) ends the exchange at once, also
	// with a server that accepted the connection and then stalled.
	stopExchange := context.AfterFunc(dctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	defer stopExchange()
	hello := protocol.AppendRequest(nil, protocol.Request{Action: protocol.ActSession,
		ClientID: o.ClientID, Host: o.Host, PID: o.PID, Auth: o.AuthToken})
	c.born = time.Now()
	if _, err := nc.Write(hello); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cannot talk to server %s: %w", o.Addr, unwrapOp(err))
	}
	b, err := r.ReadSlice('\n')
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) || dctx.Err() != nil {
			return nil, fmt.Errorf("cannot talk to server %s: no answer within %v", o.Addr, o.DialTimeout)
		}
		return nil, fmt.Errorf("cannot talk to server %s: %w", o.Addr, unwrapOp(err))
	}
	rep, err := protocol.ParseReply(b)
	if err != nil || rep.Kind != protocol.KindSession {
		nc.Close()
		if rep.Kind == protocol.KindErr {
			return nil, &refusedError{fmt.Sprintf("server %s refused the session: %s", o.Addr, rep.Msg), &ServerError{Msg: rep.Msg}}
		}
		return nil, fmt.Errorf("server %s does not speak the tnl session protocol (answered %q)", o.Addr, trimNL(b))
	}
	if !stopExchange() { // ended just as the answer came
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot talk to server %s: no answer within %v", o.Addr, o.DialTimeout)
	}
	_ = nc.SetDeadline(time.Time{})
	c.deadPeer = o.DeadPeerTimeout
	if rep.DeadPeer > 0 && rep.DeadPeer < c.deadPeer {
		c.deadPeer = rep.DeadPeer
	}
	go c.readLoop(r)
	go c.heartbeat()
	return c, nil
}

// connect dials, applies the dead-peer socket options and does the TLS
// handshake, within ctx.
func connect(ctx context.Context, o *Options, dial func(context.Context, string, string) (net.Conn, error)) (net.Conn, error) {
	nc, err := dial(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot reach server %s: %w", o.Addr, unwrapOp(err))
	}
	_ = sockopt.Apply(nc, o.DeadPeerTimeout/2)
	if o.TLS != nil {
		cfg := o.TLS.Clone()
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(o.Addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("cannot talk to server %s: %w", o.Addr, unwrapOp(err)) // "tls: ..."
		}
		nc = tc
	}
	return nc, nil
}

// Break takes name away from its holders, as an operator does with a lock
// held by a live but stuck client (the holders' tnl-do stop their commands).
// It needs the server's admin token, and reports how it went as an error:
// nil when something was broken, a *ServerError otherwise.
func Break(ctx context.Context, o Options, name, adminToken string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	req := protocol.Request{Action: protocol.ActBreak, Name: name, HasName: true, Auth: adminToken}
	return oneShot(ctx, o, req, protocol.KindReleased)
}

// oneShot sends one request on a fresh connection and reads its answer.
func oneShot(ctx context.Context, o Options, req protocol.Request, want protocol.Kind) error {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.DeadPeerTimeout <= 0 {
		o.DeadPeerTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	dial := o.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	nc, err := connect(ctx, &o, dial)
	if err != nil {
		return err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := nc.Write(protocol.AppendRequest(nil, req)); err != nil {
		return fmt.Errorf("cannot talk to server %s: %w", o.Addr, unwrapOp(err))
	}
	b, err := readLine(bufio.NewReader(nc))
	if err != nil {
		return fmt.Errorf("cannot talk to server %s: %w", o.Addr, unwrapOp(err))
	}
	rep, err := protocol.ParseReply(b)
	switch {
	case err != nil:
		return fmt.Errorf("server %s sent %q", o.Addr, trimNL(b))
	case rep.Kind == want:
		return nil
	case rep.Kind == protocol.KindErr:
		return &ServerError{Name: rep.Name, Msg: rep.Msg}
	}
	return &ServerError{Name: rep.Name, Msg: rep.Kind.String()}
}

// DefaultID is the client id sent when none is given, by Dial and by tnl's
// commands: user@host. The user is $USER, else $LOGNAME, else the name of
// the process's uid, else the uid in decimal; the host is os.Hostname, else
// "localhost". It never fails and never returns "": the id is only a label
// shown to whoever looks for the holder.
func DefaultID() string {
	// $USER first: user.Current reads /etc/passwd, measurable in a
	// command that runs for a few milliseconds.
	name := os.Getenv("USER")
	if name == "" {
		name = os.Getenv("LOGNAME")
	}
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		name = strconv.Itoa(os.Getuid())
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return name + "@" + host
}

// checkLimit applies protocol.CheckLimit to o; a Limit of 0 is not given,
// which is 1.
func checkLimit(o LockOptions) error {
	mode, limit := protocol.Exclusive, o.Limit
	if o.Shared {
		mode = protocol.Shared
	}
	if limit == 0 {
		limit = 1
	}
	err := protocol.CheckLimit(mode, limit)
	if errors.Is(err, protocol.ErrLimitRange) {
		return fmt.Errorf("invalid limit %d: %w", o.Limit, err)
	}
	return err
}

// ValidName returns an error unless name is a valid lock name.
func ValidName(name string) error {
	if !protocol.ValidName(name) {
		return fmt.Errorf("invalid lock name %q: use letters, digits, '_' and '-' (and '.', '/', ':', '@' after the first), at most %d bytes", name, protocol.MaxNameLen)
	}
	return nil
}

func trimNL(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Err
		}
		return oe.Err
	}
	return err
}

// DeadPeerTimeout is the timeout in force: the smaller of the client's and
// the server's. Locks are declared lost after half of it in silence.
func (c *Client) DeadPeerTimeout() time.Duration { return c.deadPeer }

// Addr is the server's address.
func (c *Client) Addr() string { return c.opts.Addr }

// SyscallConn returns the raw connection under the session (under TLS, the
// TCP socket's), for a supervisor that hands a copy of its descriptor to
// another process. tnl-do's watchdog holds one, so that when tnl-do is
// killed the server sees the session end only once the watchdog has killed
// the command. A copy held elsewhere keeps the connection open after
// Close, and after the process that called Dial is gone.
func (c *Client) SyscallConn() (syscall.RawConn, error) {
	nc := c.nc
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, errors.New("the connection has no file descriptor")
	}
	return sc.SyscallConn()
}

// Done is closed when the session ends (Close, or the server lost).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the session ended (ErrClosed after Close, a *LostError
// otherwise), or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the session; the server releases everything it held. Call it
// also after the session was lost: a session lost to silence keeps its
// connection open until Close (see end).
func (c *Client) Close() error {
	c.fail(ErrClosed)
	_ = c.nc.Close()
	return nil
}

// send writes the request line of r. The line is built in the client's
// buffer: a lock or a release costs no allocation for its line.
func (c *Client) send(r protocol.Request) error { return c.sendFor(r, nil) }

// sendFor is send that also gives cl, when not nil, the line's place on
// the wire (call.seq), set before the line is written.
func (c *Client) sendFor(r protocol.Request, cl *call) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.done:
		return c.Err()
	default:
	}
	c.mu.Lock()
	c.wseq++
	if cl != nil {
		cl.seq = c.wseq
	}
	c.mu.Unlock()
	c.wbuf = protocol.AppendRequest(c.wbuf[:0], r)
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.deadPeer / 2))
	if _, err := c.nc.Write(c.wbuf); err != nil {
		c.end(lost(unwrapOp(err), "cannot write to server %s", c.opts.Addr), isTimeout(err))
		return c.Err()
	}
	return nil
}

// heartbeat keeps the session alive and lets readLoop notice a silent server.
func (c *Client) heartbeat() {
	t := time.NewTicker(max(c.deadPeer/6, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.mu.Lock()
			c.beats = append(c.beats, time.Since(c.born))
			c.mu.Unlock()
			if c.send(protocol.Request{Action: protocol.ActKeepalive}) != nil {
				return
			}
		}
	}
}

// readLoop reads every answer. Its read deadline is the loss detector: half
// the dead-peer timeout after the last line from the server, every lock is
// lost, well before the server could give the locks to anyone else.
func (c *Client) readLoop(r *bufio.Reader) {
	silence := c.deadPeer / 2
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(silence))
		b, err := readLine(r)
		if err != nil {
			var cause error
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				c.end(lost(nil, "no word from server %s for %v", c.opts.Addr, silence), true)
				return
			case errors.Is(err, errLongLine):
				cause = lost(nil, "server %s sent an overlong line", c.opts.Addr)
			default:
				cause = lost(unwrapOp(err), "connection to server %s ended", c.opts.Addr)
			}
			c.fail(cause)
			return
		}
		rep, err := protocol.ParseReply(b)
		if err != nil {
			c.fail(lost(nil, "server %s sent %q", c.opts.Addr, trimNL(b)))
			return
		}
		c.dispatch(rep)
	}
}

var errLongLine = errors.New("line too long")

// cancelAnswerWait bounds how long a Lock whose context ended waits for the
// answer to its release.
const cancelAnswerWait = time.Second

// aLongTimeAgo is a deadline in the past: setting it ends a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// dispatchCancelled takes an answer for a call whose caller gave up and sent
// its release: the call ends with the release's answer, so that no answer
// of the pair is left over to be taken for the next call on the same name.
func (c *Client) dispatchCancelled(cl *call, rep protocol.Reply) {
	switch rep.Kind {
	case protocol.KindCancelled:
	case protocol.KindOK, protocol.KindNotGranted, protocol.KindTimeout, protocol.KindErr,
		protocol.KindReleased:
		if !cl.lockAnswered && rep.Kind != protocol.KindReleased {
			cl.lockAnswered = true
			if rep.Lease != "" {
				// A lease granted as the wait was withdrawn: the release
				// by name does not end it (it is not the session's), and
				// nobody will ever have its id; end it now rather than
				// let its name be held for its whole TTL.
				go c.ReleaseLease(context.Background(), rep.Lease)
			}
			return
		}
	default:
		return
	}
	delete(c.calls, cl.name)
	cl.reply = rep
	close(cl.done)
}

// readLine reads one line; holders answers can be long, but not unbounded.
func readLine(r *bufio.Reader) ([]byte, error) {
	const maxLine = protocol.MaxReplyLine
	b, err := r.ReadSlice('\n')
	if err == nil || !errors.Is(err, bufio.ErrBufferFull) {
		return b, err
	}
	long := append([]byte(nil), b...)
	for {
		b, err = r.ReadSlice('\n')
		long = append(long, b...)
		if len(long) > maxLine {
			return nil, errLongLine
		}
		if err == nil || !errors.Is(err, bufio.ErrBufferFull) {
			return long, err
		}
	}
}

func (c *Client) dispatch(rep protocol.Reply) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaseAnswer(rep) {
		c.popQuery(rep, nil)
		return
	}
	if cl := c.calls[rep.Name]; rep.Name != "" && cl != nil && cl.cancelled {
		c.dispatchCancelled(cl, rep)
		return
	}
	switch rep.Kind {
	case protocol.KindAlive:
		// The answer to the oldest heartbeat in flight: the server heard
		// from us when we sent it, or later.
		if len(c.beats) > 0 {
			c.heard.Store(int64(c.beats[0]))
			c.beats = c.beats[1:]
		}
		return
	case protocol.KindOK, protocol.KindNotGranted, protocol.KindTimeout:
		cl := c.calls[rep.Name]
		if cl == nil {
			return
		}
		delete(c.calls, rep.Name)
		if rep.Kind == protocol.KindOK && rep.Lease == "" {
			cl.lock = &Lock{c: c, name: rep.Name, token: rep.Token, done: make(chan struct{})}
			c.locks[rep.Name] = cl.lock
		}
		cl.reply = rep
		close(cl.done)
	case protocol.KindReleased, protocol.KindCancelled:
		if cl := c.releases[rep.Name]; cl != nil {
			delete(c.releases, rep.Name)
			cl.reply = rep
			close(cl.done)
		}
	case protocol.KindErr:
		se := &ServerError{Name: rep.Name, Msg: rep.Msg}
		if cl := c.calls[rep.Name]; rep.Name != "" && cl != nil {
			delete(c.calls, rep.Name)
			cl.err = se
			close(cl.done)
			return
		}
		if cl := c.releases[rep.Name]; rep.Name != "" && cl != nil {
			delete(c.releases, rep.Name)
			cl.err = se
			close(cl.done)
			return
		}
		if len(c.queries) > 0 && (rep.Name == "" || c.queries[0].want != protocol.KindUnknown) {
			c.popQuery(rep, se)
		}
	case protocol.KindPong, protocol.KindStats, protocol.KindHolders:
		c.popQuery(rep, nil)
	case protocol.KindBadAction:
		// A server that predates a query's action (a lease request to a
		// server without leases) answers it so, at once, in order.
		if len(c.queries) > 0 {
			c.popQuery(rep, &UnknownActionError{Addr: c.opts.Addr, Action: c.queries[0].action.String()})
		}
	case protocol.KindLost:
		// An operator broke the lock (tnl-stats --break), or the server
		// took it away and says why (its maximum hold).
		if l := c.locks[rep.Name]; l != nil {
			delete(c.locks, rep.Name)
			why := "broken by an operator"
			if rep.Why != "" {
				why = rep.Why
			}
			go l.end(&LostError{Name: rep.Name, Why: why + " on server " + c.opts.Addr}, c.killBy())
		}
	}
}

func (c *Client) popQuery(rep protocol.Reply, err error) {
	if len(c.queries) == 0 {
		return
	}
	q := c.queries[0]
	c.queries = c.queries[1:]
	q.reply, q.err = rep, err
	close(q.done)
}

// fail ends the session with cause and closes the connection.
func (c *Client) fail(cause error) { c.end(cause, false) }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// end ends the session with cause: every call fails, every lock is lost.
//
// keepOpen leaves the connection open, without heartbeats, until Close. Why:
// a server that is slow rather than gone (stalled by a GC pause, a frozen VM,
// swapping) would read our close as soon as it runs again and give our
// locks to the next waiter at once, while the program that held them, told
// of the loss a moment ago, is still stopping (tnl-do's --kill-after). Left
// open, the connection keeps the locks until the program calls Close, once
// it has stopped, or until the server's dead-peer timeout ends the silent
// session, which comes later than our own loss by half of it.
func (c *Client) end(cause error, keepOpen bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = cause
	close(c.done)
	calls, releases, locks, queries := c.calls, c.releases, c.locks, c.queries
	c.calls, c.releases, c.locks, c.queries = map[string]*call{}, map[string]*call{}, map[string]*Lock{}, nil
	c.mu.Unlock()
	if !keepOpen {
		_ = c.nc.Close()
	}
	for _, cl := range calls {
		cl.err = cause
		close(cl.done)
	}
	for _, cl := range releases {
		cl.err = cause
		close(cl.done)
	}
	for _, q := range queries {
		q.err = cause
		close(q.done)
	}
	kb := c.killBy()
	for _, l := range locks {
		if errors.Is(cause, ErrClosed) {
			l.end(ErrReleased, time.Time{})
		} else {
			l.end(forLock(l.name, cause), kb)
		}
	}
	if !errors.Is(cause, ErrClosed) {
		c.log.Debug("session ended", "server", c.opts.Addr, "cause", cause)
	}
}

// Lock asks for name. It returns a held Lock, or ErrNotGranted (held and
// Wait was 0), ErrTimeout (the wait ran out), ctx.Err() (the context ended
// the wait; the server's queue is left at once), a *ServerError, or an error
// about the connection (a *LostError when the session ended).
func (c *Client) Lock(ctx context.Context, name string, o LockOptions) (*Lock, error) {
	req, err := lockRequest(name, o)
	if err != nil {
		return nil, err
	}
	_, l, err := c.ask(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	if l == nil {
		return nil, fmt.Errorf("server %s granted %s as a lease, unasked", c.opts.Addr, name)
	}
	return l, nil
}

// lockRequest checks o and makes the request for name.
func lockRequest(name string, o LockOptions) (protocol.Request, error) {
	if err := ValidName(name); err != nil {
		return protocol.Request{}, err
	}
	if err := checkLimit(o); err != nil {
		return protocol.Request{}, err
	}
	if o.Wait < 0 {
		return protocol.Request{}, fmt.Errorf("invalid wait %v: want >= 0", o.Wait)
	}
	if err := checkSpan("maximum hold", o.MaxHold, true); err != nil {
		return protocol.Request{}, err
	}
	req := protocol.Request{Action: protocol.ActLock, Name: name, HasName: true, Wait: o.Wait, MaxHold: o.MaxHold}
	if o.Shared {
		req.Mode = protocol.Shared
	}
	if o.Limit > 1 { // 1 is a plain lock, sent without a limit
		req.Limit = o.Limit
	}
	return req, nil
}

// checkSpan checks a TTL or a maximum hold against the server's bounds; 0
// is "not given", allowed when optional.
func checkSpan(what string, d time.Duration, optional bool) error {
	if d == 0 && optional {
		return nil
	}
	if d < protocol.MinTTL || d > protocol.MaxTTL {
		return fmt.Errorf("invalid %s %v: want %v to %v", what, d, protocol.MinTTL, protocol.MaxTTL)
	}
	return nil
}

// ask sends a lock request and waits for its grant: the ok answer and the
// Lock of the session that dispatch made of it (nil for a lease), or
// ErrNotGranted, ErrTimeout, ctx.Err(), a *ServerError, the session's end.
func (c *Client) ask(ctx context.Context, req protocol.Request) (protocol.Reply, *Lock, error) {
	name := req.Name
	cl := &call{name: name, done: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return protocol.Reply{}, nil, c.err
	}
	if c.calls[name] != nil || c.locks[name] != nil || c.releases[name] != nil {
		c.mu.Unlock()
		return protocol.Reply{}, nil, fmt.Errorf("lock %s: already held or awaited by this client", name)
	}
	c.calls[name] = cl
	c.mu.Unlock()
	if err := c.send(req); err != nil {
		return protocol.Reply{}, nil, err
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		if gone, err := c.withdraw(ctx, cl); gone {
			return protocol.Reply{}, nil, err
		}
		<-cl.done
	}
	if cl.err != nil {
		return protocol.Reply{}, nil, cl.err
	}
	switch cl.reply.Kind {
	case protocol.KindOK:
		return cl.reply, cl.lock, nil
	case protocol.KindNotGranted:
		return protocol.Reply{}, nil, ErrNotGranted
	case protocol.KindTimeout:
		return protocol.Reply{}, nil, ErrTimeout
	}
	return protocol.Reply{}, nil, ctx.Err()
}

// withdraw leaves the queue for a call whose context ended. gone is false
// when the answer had come already: the caller takes it; else err is
// what the caller returns.
func (c *Client) withdraw(ctx context.Context, cl *call) (bool, error) {
	c.mu.Lock()
	pending := c.calls[cl.name] == cl
	if pending {
		cl.cancelled = true
	}
	c.mu.Unlock()
	if !pending {
		return false, nil
	}
	// Leave the queue; a grant racing with this is released by the
	// same request (the server answers "released" then).
	_ = c.sendFor(protocol.Request{Action: protocol.ActRelease, Name: cl.name, HasName: true}, cl)
	// Wait for the answer, so that the queue is left when Lock
	// returns; but not on a server that stalled: the release is
	// sent, and a late answer (a grant, then "released") is taken
	// care of by dispatchCancelled.
	t := time.NewTimer(cancelAnswerWait)
	defer t.Stop()
	select {
	case <-cl.done:
	case <-t.C:
		return true, ctx.Err()
	}
	if cl.err == nil || errors.Is(cl.err, ErrLost) {
		return true, ctx.Err()
	}
	return true, cl.err
}

// query sends a request answered in order (.ping, .stats, .holders, and
// the lease requests, whose answer is want).
func (c *Client) query(ctx context.Context, req protocol.Request, want protocol.Kind) (protocol.Reply, error) {
	q := &call{want: want, action: req.Action, done: make(chan struct{})}
	c.wmu.Lock() // the order of queries must match the order on the wire
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		c.wmu.Unlock()
		return protocol.Reply{}, c.err
	}
	c.wseq++
	q.seq = c.wseq
	c.queries = append(c.queries, q)
	c.mu.Unlock()
	c.wbuf = protocol.AppendRequest(c.wbuf[:0], req)
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.deadPeer / 2))
	_, err := c.nc.Write(c.wbuf)
	c.wmu.Unlock()
	if err != nil {
		c.end(lost(unwrapOp(err), "cannot write to server %s", c.opts.Addr), isTimeout(err))
		return protocol.Reply{}, c.Err()
	}
	select {
	case <-q.done:
		return q.reply, q.err
	case <-ctx.Done():
		return protocol.Reply{}, ctx.Err()
	}
}

// Ping asks the server for a pong.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.query(ctx, protocol.Request{Action: protocol.ActPing}, 0)
	return err
}

// Stats returns the server's counters (lock_count, requests_count, ...).
func (c *Client) Stats(ctx context.Context) (map[string]int64, error) {
	rep, err := c.query(ctx, protocol.Request{Action: protocol.ActStats}, 0)
	if err != nil {
		return nil, err
	}
	var m map[string]int64
	if err := json.Unmarshal([]byte(rep.Msg), &m); err != nil {
		return nil, fmt.Errorf("server %s sent unreadable stats: %w", c.opts.Addr, err)
	}
	return m, nil
}

// Holders returns who holds and who waits for the given names, or for every
// name when none is given, in the schema of the server's holders answer
// (protocol.Holders). Names nobody holds or waits for are left out. The
// bool reports whether the server truncated a long list.
func (c *Client) Holders(ctx context.Context, names ...string) ([]protocol.LockInfo, bool, error) {
	if len(names) == 0 {
		return c.holders(ctx, protocol.Request{Action: protocol.ActHolders})
	}
	var out []protocol.LockInfo
	trunc := false
	for _, n := range names {
		if err := ValidName(n); err != nil {
			return nil, false, err
		}
		li, t, err := c.holders(ctx, protocol.Request{Action: protocol.ActHolders, Name: n, HasName: true})
		if err != nil {
			return nil, false, err
		}
		out, trunc = append(out, li...), trunc || t
	}
	return out, trunc, nil
}

func (c *Client) holders(ctx context.Context, req protocol.Request) ([]protocol.LockInfo, bool, error) {
	rep, err := c.query(ctx, req, 0)
	if err != nil {
		return nil, false, err
	}
	var doc protocol.Holders
	if err := json.Unmarshal([]byte(rep.Msg), &doc); err != nil {
		return nil, false, fmt.Errorf("server %s sent an unreadable holders list: %w", c.opts.Addr, err)
	}
	return doc.Locks, doc.Truncated, nil
}

// Lock is a held lock.
type Lock struct {
	c     *Client
	name  string
	token uint64

	once   sync.Once
	mu     sync.Mutex
	err    error
	killBy time.Time
	done   chan struct{}
}

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

// Token is the fencing token of the grant: larger than that of every earlier
// grant of the same name, also across server restarts (with --state-dir).
func (l *Lock) Token() uint64 { return l.token }

// Done is closed when the lock ends: released, or lost.
func (l *Lock) Done() <-chan struct{} { return l.done }

// Err is nil while the lock is held, ErrReleased after Release, and a
// *LostError naming the lock (errors.Is ErrLost) when the lock was lost.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// KillBy is, once the lock has been lost, the latest moment by which
// whatever used the lock must have stopped, whatever the loss (silence, a
// closed or reset connection, an operator's break): 3/4 of the dead-peer
// timeout after the server last heard from this client, as far as the
// client can know, which is when it sent the last heartbeat that the server
// answered: one round trip before the last word heard from the server, or
// earlier. The zero time while the lock is held and after a release.
//
// Why 3/4: a server that stopped hearing from a client releases its locks
// after about 9/10 of the timeout (TCP keepalive: first probe at half of
// it, four more a tenth apart; TCP_USER_TIMEOUT at 9/10), and closes a
// session that sent no line after all of it, both counted from the last
// packet it had from the client. The eighth and more that is left is the
// margin for the kill to land. A server restarted meanwhile grants nothing
// for its --restart-grace, the whole timeout by default. A process that is
// stopped (SIGSTOP, a suspended machine) meets no deadline: see tnl-do(1),
// NOTES.
func (l *Lock) KillBy() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.killBy
}

func (l *Lock) end(err error, killBy time.Time) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		l.killBy = killBy
		l.mu.Unlock()
		close(l.done)
	})
}

// killBy is the KillBy of a lock lost now.
func (c *Client) killBy() time.Time {
	return c.born.Add(time.Duration(c.heard.Load()) + c.deadPeer*3/4)
}

// Release gives the lock back and waits for the server to confirm. Releasing
// a lock that has ended already returns its Err (nil after a release).
func (l *Lock) Release() error {
	c := l.c
	c.mu.Lock()
	if c.locks[l.name] != l {
		c.mu.Unlock()
		if err := l.Err(); err != nil && !errors.Is(err, ErrReleased) {
			return err
		}
		return nil
	}
	delete(c.locks, l.name)
	cl := &call{name: l.name, done: make(chan struct{})}
	c.releases[l.name] = cl
	c.mu.Unlock()
	if err := c.sendFor(protocol.Request{Action: protocol.ActRelease, Name: l.name, HasName: true}, cl); err != nil {
		err = forLock(l.name, err)
		l.end(err, c.killBy())
		return err
	}
	<-cl.done
	if cl.err != nil {
		err := forLock(l.name, cl.err)
		l.end(err, c.killBy())
		return err
	}
	l.end(ErrReleased, time.Time{})
	return nil
}
