package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/table"
)

// Connection states.
const (
	stFirst   uint8 = iota // before the first request
	stWaiting              // one lock, waiting (legacy-style connection)
	stHeld                 // one lock, held (legacy-style connection)
	stSession              // a session: many locks, never closed by us
	stDone                 // answered and about to close
)

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

type conn struct {
	srv   *Server
	nc    net.Conn
	info  table.Info  // who the peer is, as far as it said
	owner table.Owner // nil until the first lock request or .session

	state  uint8
	ext    bool         // the single lock was asked for with extension keys
	single table.Holder // the lock of a legacy-style connection
	until  time.Time    // wait deadline of the single lock; zero: none
	waits  waitSet      // a session's waits

	// Filled by Granted and Lost on other goroutines; read by serve.
	wmu sync.Mutex      // held by c's goroutine except while it reads
	raw syscall.RawConn // sessions on plain TCP: for Granted's direct answer

	mu      sync.Mutex
	granted []table.Holder
	broken  []table.Holder // taken away by an operator
	nev     atomic.Int32   // len(granted)+len(broken)
	rdl     time.Time      // the read deadline in force, as far as we know
	rdlSet  bool           // rdl is known (false after a deadline fired)

	buf   []byte // unread input: buf[r:w]
	r, w  int
	small [64]byte // input buffer while lines are short, as nearly all are
	out   []byte

	firstBy  time.Time // the first line must arrive before this
	lastSeen time.Time // last input, for a session's heartbeat
	fd       int32     // for the parker: 0 unknown, -1 none
	epolled  bool      // fd is in the parker's epoll set
	noPark   bool      // parking failed: keep the goroutine, no park deadline
	closing  bool      // the peer is gone (under wmu): no more direct answers
	session  bool      // opened a session (counted in nsessions): the state may be stDone by the end

	lnext, lprev *conn // Server.conns
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc}
	c.buf = c.small[:]
	c.info.Addr = nc.RemoteAddr().String()
	return c
}

// newOwner makes c's owner in the table, once the peer has said who it is
// (its first lock request, or .session): the table keeps the Info it is
// given, for listings.
func (c *conn) newOwner() {
	c.owner = c.srv.table.NewOwner(c.info, c)
}

// Granted is called by the table, on the goroutine of whoever released the
// lock, when one of c's waiters is granted. It must not block: it hands the
// grant to c's goroutine and wakes it by moving its read deadline into the
// past.
func (c *conn) Granted(h table.Holder) {
	// The fast way, for a session idle in Read: answer the wait right here
	// with one non-blocking write, saving the wake-up of c's goroutine. It
	// is safe only while c's goroutine is not working (TryLock) and only
	// if the whole answer goes out; otherwise the slow way finishes it.
	if c.raw != nil && c.wmu.TryLock() {
		done := c.grantDirect(h)
		c.wmu.Unlock()
		if done {
			return
		}
	}
	c.mu.Lock()
	c.granted = append(c.granted, h)
	c.nev.Add(1)
	c.mu.Unlock()
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
}

// grantDirect answers a session's granted wait without blocking. wmu held.
func (c *conn) grantDirect(h table.Holder) bool {
	if c.state != stSession || c.closing || c.srv.stopping.Load() || len(c.out) != 0 || !c.waits.drop(h) {
		return false
	}
	c.reply(protocol.KindOK, h.Name(), h.Token(), "")
	n, werr := -1, error(nil)
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), c.out)
		return true // one attempt: never wait for the socket to drain
	})
	if err == nil && werr == nil && n == len(c.out) {
		c.out = c.out[:0]
		return true
	}
	if n > 0 {
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	// The wait is answered (in c.out); the queued grant only wakes c's
	// goroutine, which flushes the rest and finds no wait to answer.
	return false
}

// Lost is called by the table when one of c's locks is taken away (an
// operator broke it).
func (c *conn) Lost(h table.Holder, _ error) {
	c.mu.Lock()
	c.broken = append(c.broken, h)
	c.nev.Add(1)
	c.mu.Unlock()
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	if p := c.srv.parker; p != nil && p.unpark(c) {
		go c.run()
	}
}

func (c *conn) takeEvents() (granted, broken []table.Holder) {
	c.mu.Lock()
	granted, broken = c.granted, c.broken
	c.granted, c.broken = nil, nil
	c.nev.Store(0)
	c.mu.Unlock()
	return granted, broken
}

// pendingEvents is checked on every turn of the loop: an atomic, not c.mu.
func (c *conn) pendingEvents() bool { return c.nev.Load() > 0 }

var errLineTooLong = errors.New("line too long")

func (c *conn) serve() {
	now := time.Now()
	c.firstBy = now.Add(c.srv.cfg.FirstLineTimeout)
	c.lastSeen = now
	c.run()
}

// run serves c until it ends or is parked; a parked connection is resumed by
// calling run again on a new goroutine.
func (c *conn) run() {
	s := c.srv
	if c.loop() {
		return // parked: the parker owns c now
	}
	// Closing releases everything held and cancels every wait, at once.
	if c.owner != nil {
		s.table.ReleaseAll(c.owner)
	}
	if c.session {
		s.nsessions.Add(-1)
	}
	if c.r < c.w && !s.stopping.Load() {
		c.lingerClose()
	}
	_ = c.nc.Close()
	s.untrack(c)
	s.wg.Done()
}

// loop reads and answers requests until the connection ends (false) or is
// handed to the parker (true).
func (c *conn) loop() (parked bool) {
	// A connection the parker resumes has input or a hangup waiting: it
	// must read before it parks again, or it would only re-arm the same
	// event, never answer, and spin. A fresh connection cannot hold a lock
	// before its first read anyway.
	haveRead := false
	// Being resumed counts as activity: it keeps the park deadline ahead,
	// so the first Read really reads instead of timing out at once.
	c.lastSeen = time.Now()
	for {
		// Everything but the Read happens under wmu, so that Granted can
		// tell, by TryLock, that the connection's state is stable.
		c.wmu.Lock()
		next := c.turn(haveRead)
		c.wmu.Unlock()
		switch next {
		case turnEnd:
			return false
		case turnParked:
			return true
		case turnAgain:
			continue
		}
		n, err := c.nc.Read(c.buf[c.w:])
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			haveRead = true
		}
		c.w += n
		if n > 0 {
			c.lastSeen = time.Now()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Woken by Granted or Lost, or a deadline: the loop looks. Nothing
				// came in before it, so a resumed holder may park again:
				// else a holder resumed with nothing to read (a stale
				// epoll event) would keep timing out at its park deadline.
				c.rdlSet = false
				haveRead = true
				continue
			}
			// EOF, reset, half-close: the peer is gone. Granted must not
			// answer it any more (run releases without wmu).
			c.wmu.Lock()
			c.closing = true
			c.wmu.Unlock()
			return false
		}
	}
}

// What loop does after a turn.
const (
	turnRead   = iota // read more input
	turnAgain         // look again without reading
	turnEnd           // close the connection
	turnParked        // handed to the parker
)

// turn answers the buffered lines and the events, and says what next.
func (c *conn) turn(haveRead bool) int {
	s := c.srv
	// Answer every complete line already buffered before reading more:
	// several requests in one write are answered in order, in one write,
	// up to maxOutBatch of answers (.holders answers are large): the rest
	// waits for the next turn, so a batch of small requests cannot make
	// the server hold a huge answer for a peer that does not read.
	more := false
	for c.state != stDone {
		if len(c.out) >= maxOutBatch {
			more = true
			break
		}
		line, ok, err := c.nextLine()
		if err != nil {
			s.rlog.Warn("request refused: line too long", "remote", c.info.Addr, "max", s.cfg.MaxLineLength)
			c.reply(protocol.KindErr, "", 0, "line too long")
			c.state = stDone
			break
		}
		if !ok {
			break
		}
		s.requests.Add(1)
		c.handle(line)
	}
	c.deliverEvents()
	now := time.Now()
	if c.state != stDone {
		c.expire(now)
	}
	if !c.flush() || c.state == stDone {
		return turnEnd
	}
	c.compact()
	if more {
		return turnAgain
	}
	if haveRead && c.parkable() && now.Sub(c.lastSeen) >= parkDelay && !c.pendingEvents() {
		if !s.parker.park(c) {
			// Not a plain socket (TLS), or epoll refused it: this holder
			// keeps its goroutine, and no park deadline.
			c.noPark = true
			s.parkFailed(c)
		} else if !c.pendingEvents() || !s.parker.unpark(c) {
			// A legacy holder may stay silent for days: keep no goroutine
			// (and no stack) for it, only the connection. An event that
			// came in while parking is picked up here, or by its sender.
			return turnParked
		} else {
			return turnAgain
		}
	}
	c.setDeadline(c.deadline())
	if c.pendingEvents() {
		return turnAgain // a grant raced with the new deadline
	}
	return turnRead
}

// parkDelay is how long a legacy holder stays on its goroutine after its
// last input before it is parked. Why not at once: most legacy cycles
// (lock, work, release) are short, and parking costs an epoll_ctl, a wake-up
// on the parker's thread and a fresh goroutine per cycle, about a third of
// the server's CPU per cycle. Why not longer: every holder younger than the
// delay keeps its stack, which is what parking saves.
const parkDelay = 25 * time.Millisecond

func (c *conn) parkable() bool {
	return c.state == stHeld && c.r == c.w && c.srv.parker != nil && !c.noPark
}

// maxOutBatch bounds the answers one turn gathers before it writes them.
const maxOutBatch = 64 << 10

// setDeadline sets the read deadline only when it must move earlier (or
// was lost to a wake-up). Why: a session's heartbeat deadline moves with
// every line, and resetting a runtime timer per request is measurable; a
// deadline left later in force just fires once, the loop sees nothing has
// expired, and sets the right one.
func (c *conn) setDeadline(d time.Time) {
	if c.rdlSet && (d.IsZero() || (!c.rdl.IsZero() && !d.Before(c.rdl))) {
		return
	}
	_ = c.nc.SetReadDeadline(d)
	c.rdl, c.rdlSet = d, true
}

// deadline is the earliest moment serve must look again without input.
func (c *conn) deadline() time.Time {
	var d time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	switch c.state {
	case stFirst:
		earliest(c.firstBy)
	case stWaiting:
		earliest(c.until)
	case stHeld:
		if c.parkable() {
			earliest(c.lastSeen.Add(parkDelay))
		}
	case stSession:
		earliest(c.lastSeen.Add(c.srv.cfg.DeadPeerTimeout))
		earliest(c.waits.next())
	}
	return d
}

// expire acts on deadlines that have passed.
func (c *conn) expire(now time.Time) {
	s := c.srv
	switch c.state {
	case stFirst:
		if !now.Before(c.firstBy) {
			s.rlog.Info("connection closed: no request in time", "remote", c.info.Addr, "timeout", s.cfg.FirstLineTimeout)
			c.reply(protocol.KindErr, "", 0, "timeout waiting for request")
			c.state = stDone
		}
	case stWaiting:
		if !c.until.IsZero() && !now.Before(c.until) && s.table.Cancel(c.single) {
			s.table.CountTimeout()
			c.reply(protocol.KindTimeout, "", 0, "")
			c.state = stDone
		}
		// If Cancel failed, the lock was granted meanwhile: the grant is
		// on its way through Granted and the next turn delivers it.
	case stSession:
		if now.Sub(c.lastSeen) >= s.cfg.DeadPeerTimeout {
			s.rlog.Info("session closed: peer silent", "remote", c.info.Addr, "client_id", c.info.ClientID, "timeout", s.cfg.DeadPeerTimeout)
			c.state = stDone
			return
		}
		// The waits that ran out, earliest first. One whose Cancel fails
		// was granted meanwhile: it stays a wait, out of the deadline heap,
		// until deliverEvents answers its grant.
		for h := c.waits.expired(now); h != nil; h = c.waits.expired(now) {
			if s.table.Cancel(h) {
				c.waits.drop(h)
				s.table.CountTimeout()
				c.reply(protocol.KindTimeout, h.Name(), 0, "")
				if !c.spill() {
					return
				}
			}
		}
	}
}

// deliverEvents answers the waits that were granted since the last look, and
// tells of locks an operator broke.
func (c *conn) deliverEvents() {
	granted, broken := c.takeEvents()
	if c.srv.stopping.Load() {
		// Shutting down: a lock granted now is released by ReleaseAll a
		// moment later; announcing it would only mislead the client.
		c.state = stDone
		return
	}
	for _, h := range broken {
		switch {
		case c.state == stSession:
			c.reply(protocol.KindLost, h.Name(), 0, "")
			if !c.spill() {
				return
			}
		case h == c.single:
			// A legacy-style holder learns it only by the connection closing.
			c.state = stDone
		}
	}
	for _, h := range granted {
		switch c.state {
		case stWaiting:
			if h == c.single {
				c.state = stHeld
				c.until = time.Time{}
				c.replyGrant(h)
			}
		case stSession:
			if c.waits.drop(h) {
				c.replyGrant(h)
				if !c.spill() {
					return
				}
			}
		}
		// Any other state: the connection is ending and ReleaseAll frees
		// the lock it was just given.
	}
}

func (c *conn) replyGrant(h table.Holder) {
	switch {
	case c.state == stSession:
		c.reply(protocol.KindOK, h.Name(), h.Token(), "")
	case c.ext:
		c.reply(protocol.KindOK, "", h.Token(), "")
	default:
		c.reply(protocol.KindOK, "", 0, "")
	}
}

// nextLine returns the next complete line in the buffer (without "\n").
func (c *conn) nextLine() ([]byte, bool, error) {
	if i := bytes.IndexByte(c.buf[c.r:c.w], '\n'); i >= 0 {
		if i >= c.srv.cfg.MaxLineLength {
			// The buffer grows to MaxLineLength+1 bytes, so a line one
			// byte too long can arrive whole: refuse it all the same.
			return nil, false, errLineTooLong
		}
		line := c.buf[c.r : c.r+i]
		c.r += i + 1
		return line, true, nil
	}
	if c.w-c.r >= c.srv.cfg.MaxLineLength {
		return nil, false, errLineTooLong
	}
	return nil, false, nil
}

// compact makes room for the next read, growing the buffer up to the line
// limit only while a long line is arriving, and going back to the small
// embedded buffer as soon as the input is drained.
func (c *conn) compact() {
	if c.r == c.w {
		c.r, c.w = 0, 0
		if len(c.buf) != len(c.small) {
			c.buf = c.small[:]
		}
		return
	}
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.buf) {
		n := min(max(2*len(c.buf), 512), c.srv.cfg.MaxLineLength+1)
		if n > len(c.buf) {
			nb := make([]byte, n)
			copy(nb, c.buf[:c.w])
			c.buf = nb
		}
	}
}

func (c *conn) reply(k protocol.Kind, name string, token uint64, msg string) {
	c.out = protocol.AppendReply(c.out, k, name, token, msg)
}

// flush writes pending answers. It reports false when the peer is gone.
func (c *conn) flush() bool {
	if len(c.out) == 0 {
		return true
	}
	ok := c.writeOut(time.Now().Add(c.srv.cfg.DeadPeerTimeout))
	if cap(c.out) > 4096 {
		c.out = nil
	}
	return ok
}

// spill writes the answers gathered so far once they reach maxOutBatch, so
// that a burst of answers (every wait of a session granted at once, a long
// holders list) never piles up for a peer that reads slowly, or not at all.
// It reports false, and ends the connection, when the peer is gone.
func (c *conn) spill() bool {
	if len(c.out) < maxOutBatch {
		return true
	}
	if !c.writeOut(time.Now().Add(c.srv.cfg.DeadPeerTimeout)) {
		c.state = stDone
		return false
	}
	return true
}

// writeOut writes c.out by the deadline and empties it, keeping its array.
// A peer that does not read its answers only blocks its own goroutine (and
// Granted, finding wmu taken, queues grants for it instead), and not past
// the deadline: then the connection ends, and with it what it holds.
func (c *conn) writeOut(by time.Time) bool {
	ok := c.writeChunk(c.out, by)
	c.out = c.out[:0]
	return ok
}

func (c *conn) handle(line []byte) {
	req, err := protocol.ParseRequest(line)
	if c.state == stHeld || c.state == stWaiting {
		c.handleHolding(req, err)
		return
	}
	if errors.Is(err, protocol.ErrMalformed) {
		c.srv.log.Debug("bad request", "remote", c.info.Addr)
		c.reply(protocol.KindBadRequest, "", 0, "")
		c.endUnlessSession()
		return
	}
	if c.state == stSession {
		c.handleSession(req, err)
		return
	}
	if !c.authorized(req) {
		c.state = stDone
		return
	}
	switch req.Action {
	case protocol.ActLock:
		c.handleFirstLock(req, err)
	case protocol.ActPing:
		c.replyPing(req.Ext)
		c.state = stDone
	case protocol.ActStats:
		c.reply(protocol.KindStats, "", 0, c.statsJSON())
		c.state = stDone
	case protocol.ActHolders:
		c.writeHolders(req)
		c.state = stDone
	case protocol.ActSession:
		if err != nil {
			c.reply(protocol.KindErr, "", 0, err.Error())
			c.state = stDone
			return
		}
		c.info.ClientID, c.info.Host, c.info.PID = req.ClientID, req.Host, req.PID
		c.newOwner()
		c.state = stSession
		c.session = true
		c.srv.nsessions.Add(1)
		if tc, ok := c.nc.(*net.TCPConn); ok {
			c.raw, _ = tc.SyscallConn()
		}
		c.out = protocol.AppendSession(c.out, c.srv.cfg.DeadPeerTimeout)
	case protocol.ActShutdown:
		c.state = stDone
		if c.srv.cfg.AdminToken == "" || !tokenOK(req.Auth, c.srv.cfg.AdminToken) || c.srv.cfg.OnShutdown == nil {
			c.srv.rlog.Warn("refused .server-shutdown from a peer", "remote", c.info.Addr)
			c.reply(protocol.KindBadAction, "", 0, "")
			return
		}
		c.srv.log.Warn("shutting down at an operator's request", "remote", c.info.Addr)
		c.reply(protocol.KindShuttingDown, "", 0, "")
		c.flush()
		go c.srv.cfg.OnShutdown()
	case protocol.ActBreak:
		c.handleBreak(req)
		c.state = stDone
	default:
		c.srv.log.Debug("bad action", "remote", c.info.Addr)
		c.reply(protocol.KindBadAction, "", 0, "")
		c.state = stDone
	}
}

func (c *conn) endUnlessSession() {
	if c.state != stSession {
		c.state = stDone
	}
}

// handleFirstLock: a lock request on a fresh connection, legacy or extension.
func (c *conn) handleFirstLock(req protocol.Request, perr error) {
	s := c.srv
	c.ext = req.Ext
	c.info.ClientID, c.info.Host, c.info.PID = req.ClientID, req.Host, req.PID
	if !protocol.ValidName(req.Name) {
		s.rlog.Info("request refused: invalid lock name", "remote", c.info.Addr)
		c.reply(protocol.KindErr, "", 0, "invalid lock name")
		c.state = stDone
		return
	}
	if perr != nil {
		c.reply(protocol.KindErr, "", 0, perr.Error())
		c.state = stDone
		return
	}
	if msg := checkModes(req); msg != "" {
		c.reply(protocol.KindErr, "", 0, msg)
		c.state = stDone
		return
	}
	c.newOwner()
	h, res, err := s.table.Acquire(c.owner, table.Request{Name: req.Name, Mode: tableMode(req.Mode), Limit: req.Limit, Wait: req.Wait > 0})
	switch res {
	case table.Granted:
		c.single = h
		c.state = stHeld
		c.replyGrant(h)
		s.log.Debug("lock granted", "name", req.Name, "remote", c.info.Addr, "client_id", req.ClientID, "token", h.Token())
	case table.Queued:
		c.single = h
		c.state = stWaiting
		if req.Wait != protocol.WaitForever {
			c.until = time.Now().Add(req.Wait)
		}
	case table.NotGranted:
		c.reply(protocol.KindNotGranted, "", 0, "")
		c.state = stDone
	case table.Refused:
		if !c.ext && !noToken(err) {
			// A legacy request gets only legacy answers. (err, is one
			// of them: tcpnetlock answers it to a bad name, and its
			// clients take it for a failure, as they must take a lock
			// that cannot have a fencing token.)
			c.reply(protocol.KindNotGranted, "", 0, "")
		} else {
			c.reply(protocol.KindErr, "", 0, refusal(err))
		}
		s.logRefusal(req.Name, &c.info, err)
		c.state = stDone
	}
}

// noToken reports whether a refusal is for want of what a grant needs (a
// fencing token that can be made durable, a reachable backend).
func noToken(err error) bool { return errors.Is(err, table.ErrUnavailable) }

// logRefusal logs a refused lock request. A refusal for want of what a grant
// needs, while the table says it is degraded, is logged at debug level only:
// the episode is logged once, at error level, by whoever watches the table
// (tnl-server watches its fencing state), where a line per refused request
// would flood the log of a busy server exactly when its disk is full. When
// the table is not degraded (lib/lockd: the fencing tokens are exhausted,
// all 2^63 of them) each refusal is an error.
func (s *Server) logRefusal(name string, o *table.Info, err error) {
	level := slog.LevelInfo
	if noToken(err) {
		level = slog.LevelError
		if s.table.Degraded() != nil {
			level = slog.LevelDebug
		}
	}
	s.rlog.Log(context.Background(), level, "lock refused", "name", name, "remote", o.Addr, "client_id", o.ClientID, "err", err)
}

// replyPing answers .ping: pong, and to an extension request, while the
// table cannot grant every lock, pong,degraded:WHY. A legacy .ping gets
// pong whatever happens: tcpnetlock's probes compare the whole line.
func (c *conn) replyPing(ext bool) {
	why := ""
	if err := c.srv.table.Degraded(); ext && err != nil {
		// The same words as the refusals it causes.
		why = err.Error()
	}
	c.out = protocol.AppendPong(c.out, why)
}

func checkModes(req protocol.Request) string {
	if req.Mode == protocol.Shared && req.Limit > 1 {
		return "invalid limit: a shared lock has no limit"
	}
	return ""
}

func refusal(err error) string {
	return err.Error()
}

// handleHolding: a line on a legacy-style connection that holds or waits.
func (c *conn) handleHolding(req protocol.Request, perr error) {
	if perr == nil || !errors.Is(perr, protocol.ErrMalformed) {
		switch req.Action {
		case protocol.ActKeepalive:
			c.reply(protocol.KindAlive, "", 0, "")
			return
		case protocol.ActRelease:
			if c.state == stHeld {
				c.srv.table.Release(c.single)
				c.reply(protocol.KindReleased, "", 0, "")
				c.state = stDone
				return
			}
		}
	}
	// Anything else, malformed lines included, leaves the lock held.
	c.reply(protocol.KindBadAction, "", 0, "")
}

// handleSession: a request inside a session. The connection stays open.
func (c *conn) handleSession(req protocol.Request, perr error) {
	s := c.srv
	switch req.Action {
	case protocol.ActKeepalive:
		c.reply(protocol.KindAlive, "", 0, "")
	case protocol.ActPing:
		c.replyPing(true) // a session is an extension
	case protocol.ActStats:
		c.reply(protocol.KindStats, "", 0, c.statsJSON())
	case protocol.ActHolders:
		if !c.writeHolders(req) {
			c.state = stDone
		}
	case protocol.ActQuit:
		c.reply(protocol.KindBye, "", 0, "")
		c.state = stDone
	case protocol.ActLock:
		if !protocol.ValidName(req.Name) {
			c.reply(protocol.KindErr, "", 0, "invalid lock name")
			return
		}
		if perr != nil {
			c.reply(protocol.KindErr, req.Name, 0, perr.Error())
			return
		}
		if msg := checkModes(req); msg != "" {
			c.reply(protocol.KindErr, req.Name, 0, msg)
			return
		}
		if s.table.Find(c.owner, req.Name) != nil {
			c.reply(protocol.KindErr, req.Name, 0, "already held or awaited by this session")
			return
		}
		// The session's caps: what it holds and awaits, and what it awaits
		// (a wait may become a hold at any time). Only this goroutine adds
		// to the session's locks, so the counts cannot grow meanwhile.
		if max := s.cfg.MaxSessionLocks; max > 0 && c.owner.Count() >= max {
			c.refuseOverCap(req.Name, "too many locks in this session", max)
			return
		}
		// At the cap on waits, a request that would wait is tried without
		// waiting: granted if free, refused otherwise.
		mayWait := req.Wait > 0
		atWaitCap := mayWait && s.cfg.MaxSessionWaits > 0 && c.waits.len() >= s.cfg.MaxSessionWaits
		h, res, err := s.table.Acquire(c.owner, table.Request{Name: req.Name, Mode: tableMode(req.Mode), Limit: req.Limit, Wait: mayWait && !atWaitCap})
		switch res {
		case table.Granted:
			c.reply(protocol.KindOK, req.Name, h.Token(), "")
		case table.Queued:
			var deadline time.Time
			if req.Wait != protocol.WaitForever {
				deadline = time.Now().Add(req.Wait)
			}
			c.waits.add(h, deadline)
		case table.NotGranted:
			if atWaitCap {
				c.refuseOverCap(req.Name, "too many waits in this session", s.cfg.MaxSessionWaits)
				return
			}
			c.reply(protocol.KindNotGranted, req.Name, 0, "")
		case table.Refused:
			s.logRefusal(req.Name, &c.info, err)
			c.reply(protocol.KindErr, req.Name, 0, refusal(err))
		}
	case protocol.ActRelease:
		if !protocol.ValidName(req.Name) {
			c.reply(protocol.KindErr, "", 0, "invalid lock name")
			return
		}
		h := s.table.Find(c.owner, req.Name)
		if h == nil {
			c.reply(protocol.KindErr, req.Name, 0, "not held")
			return
		}
		// Held, or waiting: then Release withdraws it. A wait granted a
		// moment ago counts as held; its grant, queued by Granted, is
		// dropped by deliverEvents because the wait is gone.
		waiting := c.waits.drop(h)
		if !s.table.Release(h) && waiting {
			c.reply(protocol.KindCancelled, req.Name, 0, "")
			return
		}
		c.reply(protocol.KindReleased, req.Name, 0, "")
	case protocol.ActSession:
		c.reply(protocol.KindErr, "", 0, "already in a session")
	case protocol.ActBreak:
		c.handleBreak(req)
	default:
		if req.Action == protocol.ActShutdown {
			s.rlog.Warn("refused .server-shutdown from a peer", "remote", c.info.Addr)
		}
		c.reply(protocol.KindBadAction, "", 0, "")
	}
}

// refuseOverCap answers a session's lock request over one of its caps.
func (c *conn) refuseOverCap(name, why string, max int) {
	c.srv.rlog.Info("lock refused: "+why, "name", name, "remote", c.info.Addr, "client_id", c.info.ClientID, "max", max)
	c.reply(protocol.KindErr, name, 0, why+" (max "+strconv.Itoa(max)+")")
}

// logAttrs is used by tests to check log lines.
var _ = slog.String

// authorized checks the shared secret of a request on a fresh connection. It
// answers and logs a refusal itself.
func (c *conn) authorized(req protocol.Request) bool {
	cfg := &c.srv.cfg
	if cfg.AuthToken == "" || req.Action == protocol.ActPing {
		return true
	}
	if tokenOK(req.Auth, cfg.AuthToken) || (cfg.AdminToken != "" && tokenOK(req.Auth, cfg.AdminToken)) {
		return true
	}
	msg := "authentication required"
	if req.Auth != "" {
		msg = "authentication failed"
	}
	c.srv.rlog.Warn("request refused: "+msg, "remote", c.info.Addr, "action", req.Action.String())
	c.reply(protocol.KindErr, "", 0, msg)
	return false
}

// tokenOK compares secrets in constant time; hashing first hides the length.
func tokenOK(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// handleBreak: an operator takes a lock away from a live but stuck holder.
func (c *conn) handleBreak(req protocol.Request) {
	s := c.srv
	if s.cfg.AdminToken == "" || !tokenOK(req.Auth, s.cfg.AdminToken) {
		s.rlog.Warn("refused .break: admin token required", "remote", c.info.Addr)
		c.reply(protocol.KindErr, "", 0, "admin token required")
		return
	}
	if !protocol.ValidName(req.Name) {
		c.reply(protocol.KindErr, "", 0, "invalid lock name")
		return
	}
	n := s.table.Break(req.Name)
	if n == 0 {
		c.reply(protocol.KindErr, req.Name, 0, "not held")
		return
	}
	s.log.Warn("lock broken by an operator", "name", req.Name, "holders", n, "remote", c.info.Addr)
	c.reply(protocol.KindReleased, req.Name, 0, "")
}

// lingerClose is used when we close with input unread (a refused line, junk):
// closing then would make the kernel send a reset, which can destroy our
// last answer in flight. So: half-close, and drain the input for a moment.
func (c *conn) lingerClose() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	var buf [512]byte
	for n := 0; n < 1<<20; {
		m, err := c.nc.Read(buf[:])
		n += m
		if err != nil {
			return
		}
	}
}
