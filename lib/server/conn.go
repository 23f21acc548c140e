package server

import (
	"bytes"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/table"
)

// A connection's goroutine: it reads lines into a small buffer that grows
// only while a long line arrives (up to MaxLineLength), blocking in Read with
// a deadline that is the earliest thing the connection waits for (deadline);
// hands each complete line to the request state machine (request.go); and
// writes what a turn answered in one write (flush), or sooner when answers
// pile up (spill), each write bounded by the dead-peer timeout. Granted and
// Lost, called by the table on other goroutines, only queue the event and
// wake the goroutine by moving its read deadline into the past, so that a
// slow peer never blocks whoever released the lock.

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

	// Four bytes and an int32 in one word: a legacy holder is a conn, and
	// a conn of 512 bytes is in the 512-byte size class (one more word
	// is 64 bytes more per holder).
	state  uint8
	ext    bool         // the single lock was asked for with extension keys
	rdlSet bool         // rdl is known (false after a deadline fired)
	dead   bool         // under mu: run has let go of everything: a late grant is released at once
	nev    atomic.Int32 // len(granted)+len(broken)+len(lease.maxed)
	single table.Holder // the lock of a legacy-style connection
	until  time.Time    // wait deadline of the single lock; zero: none
	waits  waitSet      // a session's waits
	// lease is what leases and maximum holds need (lease.go); nil until
	// a request needs it, so that the others pay a word. Set under mu.
	lease *leaseState

	// Filled by Granted and Lost on other goroutines; read by serve.
	wmu sync.Mutex      // held by c's goroutine except while it reads
	raw syscall.RawConn // sessions on plain TCP: for Granted's direct answer

	mu      sync.Mutex
	granted []table.Holder
	broken  []table.Holder // taken away by an operator
	rdl     time.Time      // the read deadline in force, as far as we know (and rdlSet)

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
	if c.dead {
		// Granted after the connection let go of everything (a grant on
		// its way while ReleaseAll ran): nobody will answer it. For a
		// lease that matters: nobody knows its id, so it goes now.
		c.mu.Unlock()
		c.srv.table.Release(h)
		return
	}
	c.granted = append(c.granted, h)
	c.nev.Add(1)
	c.mu.Unlock()
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
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

func (c *conn) takeEvents() (granted, broken, maxed []table.Holder) {
	c.mu.Lock()
	granted, broken = c.granted, c.broken
	c.granted, c.broken = nil, nil
	if c.lease != nil {
		maxed, c.lease.maxed = c.lease.maxed, nil
	}
	c.nev.Store(0)
	c.mu.Unlock()
	return granted, broken, maxed
}

// pendingEvents is checked on every turn of the loop: an atomic, not c.mu.
func (c *conn) pendingEvents() bool { return c.nev.Load() > 0 }

var errLineTooLong = errors.New(protocol.ReasonLineTooLong)

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
	// No direct answer from now on: what follows touches c's state
	// without wmu.
	c.wmu.Lock()
	c.closing = true
	c.wmu.Unlock()
	// Closing releases everything held and cancels every wait, at once.
	if c.owner != nil {
		s.table.ReleaseAll(c.owner)
	}
	c.letGo()
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
			c.reply(protocol.KindErr, "", 0, protocol.ReasonLineTooLong)
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
	if ok {
		c.lease.sent()
	}
	return ok
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
