package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/table"
)

// The request state machine of one connection. A fresh connection (stFirst)
// takes one request: a lock request makes it a legacy-style holder of that
// one lock (stWaiting, then stHeld), which then takes only keepalive and
// release; .session makes it a session (stSession), which takes many
// requests and holds many locks; anything else is answered and ends the
// connection (stDone). Lock requests of both kinds are admitted by one path,
// handleLock. expire acts on the deadlines of the state (the first line, a
// wait, a session's heartbeat), deliverEvents on the table's grants and
// losses.

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
		c.handleLock(req, err)
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
	case protocol.ActRenew, protocol.ActReleaseLease, protocol.ActIsHeld:
		c.handleLeaseOp(req, err)
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

// handleLock admits a lock request: the one path for the first request of a
// fresh connection (legacy, or with extension keys) and for a session's. The
// checks, the table and the accounting are the same; what differs is the
// dialect of the answers (a session names the lock in every answer and its
// connection stays open; a legacy-style connection holds one lock, and ends
// when it has none) and a session's own bounds (a name once per session, its
// caps on locks and waits).
func (c *conn) handleLock(req protocol.Request, perr error) {
	s := c.srv
	session := c.state == stSession
	name := "" // the lock's name in the answers
	if session {
		name = req.Name
	} else {
		c.ext = req.Ext
		c.info.ClientID, c.info.Host, c.info.PID = req.ClientID, req.Host, req.PID
	}
	if !protocol.ValidName(req.Name) {
		if !session {
			s.rlog.Info("request refused: invalid lock name", "remote", c.info.Addr)
		}
		c.reply(protocol.KindErr, "", 0, protocol.ReasonInvalidName)
		c.endUnlessSession()
		return
	}
	if perr != nil {
		c.reply(protocol.KindErr, name, 0, perr.Error())
		c.endUnlessSession()
		return
	}
	if msg := checkModes(req); msg != "" {
		c.reply(protocol.KindErr, name, 0, msg)
		c.endUnlessSession()
		return
	}
	wait, atWaitCap := req.Wait > 0, false
	if session {
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
		atWaitCap = wait && s.cfg.MaxSessionWaits > 0 && c.waits.len() >= s.cfg.MaxSessionWaits
	} else {
		c.newOwner()
	}
	p, tr, err := c.prepare(req, wait && !atWaitCap)
	if err != nil {
		c.reply(protocol.KindErr, name, 0, err.Error())
		c.endUnlessSession()
		return
	}
	h, res, err := s.table.Acquire(c.owner, tr)
	switch res {
	case table.Granted:
		if !session {
			c.single = h
			c.state = stHeld
			s.log.Debug("lock granted", "name", req.Name, "remote", c.info.Addr, "client_id", req.ClientID, "token", h.Token())
		}
		c.replyGrant(h, p)
	case table.Queued:
		var deadline time.Time
		if req.Wait != protocol.WaitForever {
			deadline = time.Now().Add(req.Wait)
		}
		if session {
			c.waits.add(h, deadline)
			if p != (pending{}) {
				c.leases().wait(h, p)
			}
			return
		}
		c.single = h
		c.state = stWaiting
		c.until = deadline
		if p != (pending{}) {
			c.leases().single = p
		}
	case table.NotGranted:
		if atWaitCap {
			c.refuseOverCap(req.Name, "too many waits in this session", s.cfg.MaxSessionWaits)
			return
		}
		c.reply(protocol.KindNotGranted, name, 0, "")
		c.endUnlessSession()
	case table.Refused:
		s.logRefusal(req.Name, &c.info, err)
		if !session && !c.ext && !noToken(err) {
			// A legacy request gets only legacy answers. (err, is one
			// of them: tcpnetlock answers it to a bad name, and its
			// clients take it for a failure, as they must take a lock
			// that cannot have a fencing token.)
			c.reply(protocol.KindNotGranted, "", 0, "")
		} else {
			c.reply(protocol.KindErr, name, 0, err.Error())
		}
		c.endUnlessSession()
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

// checkModes applies the limit rule to what the parser cannot see key by
// key: a shared lock asked for with a limit.
func checkModes(req protocol.Request) string {
	if errors.Is(protocol.CheckLimit(req.Mode, req.Limit), protocol.ErrSharedLimit) {
		return "invalid limit: " + protocol.ErrSharedLimit.Error()
	}
	return ""
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
		c.handleLock(req, perr)
	case protocol.ActRelease:
		if !protocol.ValidName(req.Name) {
			c.reply(protocol.KindErr, "", 0, protocol.ReasonInvalidName)
			return
		}
		h := s.table.Find(c.owner, req.Name)
		if h == nil {
			c.reply(protocol.KindErr, req.Name, 0, protocol.ReasonNotHeld)
			return
		}
		// Held, or waiting: then Release withdraws it. A wait granted a
		// moment ago counts as held; its grant, queued by Granted, is
		// dropped by deliverEvents because the wait is gone.
		waiting := c.waits.drop(h)
		c.lease.unwait(h)
		c.lease.stop(h)
		if !s.table.Release(h) && waiting {
			c.reply(protocol.KindCancelled, req.Name, 0, "")
			return
		}
		c.reply(protocol.KindReleased, req.Name, 0, "")
	case protocol.ActSession:
		c.reply(protocol.KindErr, "", 0, "already in a session")
	case protocol.ActBreak:
		c.handleBreak(req)
	case protocol.ActRenew, protocol.ActReleaseLease, protocol.ActIsHeld:
		c.handleLeaseOp(req, perr)
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
	msg := protocol.ReasonAuthRequired
	if req.Auth != "" {
		msg = protocol.ReasonAuthFailed
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
		c.reply(protocol.KindErr, "", 0, protocol.ReasonAdminRequired)
		return
	}
	if !protocol.ValidName(req.Name) {
		c.reply(protocol.KindErr, "", 0, protocol.ReasonInvalidName)
		return
	}
	n := s.table.Break(req.Name)
	if n == 0 {
		c.reply(protocol.KindErr, req.Name, 0, protocol.ReasonNotHeld)
		return
	}
	s.log.Warn("lock broken by an operator", "name", req.Name, "holders", n, "remote", c.info.Addr)
	c.reply(protocol.KindReleased, req.Name, 0, "")
}

// expire acts on deadlines that have passed.
func (c *conn) expire(now time.Time) {
	s := c.srv
	switch c.state {
	case stFirst:
		if !now.Before(c.firstBy) {
			s.rlog.Info("connection closed: no request in time", "remote", c.info.Addr, "timeout", s.cfg.FirstLineTimeout)
			c.reply(protocol.KindErr, "", 0, protocol.ReasonFirstLineSlow)
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
				c.lease.unwait(h)
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
	granted, broken, maxed := c.takeEvents()
	if c.srv.stopping.Load() {
		// Shutting down: a lock granted now is released by ReleaseAll a
		// moment later; announcing it would only mislead the client. A
		// lease granted now is released here: ReleaseAll leaves leases,
		// and nobody would ever know its id.
		for _, h := range granted {
			c.srv.table.Release(h)
		}
		c.state = stDone
		return
	}
	for _, h := range broken {
		c.lease.stop(h)
		switch {
		case c.state == stSession:
			c.reply(protocol.KindLost, h.Name(), 0, "")
			c.spill() // on failure the state is stDone: the grants below are released
		case h == c.single:
			// A legacy-style holder learns it only by the connection closing.
			c.state = stDone
		}
	}
	for _, h := range maxed {
		// Released already, by the timer (lease.go): only the telling is
		// left, as for a break.
		cap := c.lease.stop(h)
		switch {
		case c.state == stSession && cap == 0:
			// Its timer was stopped: the session released it itself
			// meanwhile, and was answered released.
		case c.state == stSession:
			c.out = protocol.AppendLost(c.out, h.Name(), maxHoldWhy(cap))
			c.spill()
		case h == c.single:
			c.state = stDone
		}
	}
	for _, h := range granted {
		switch c.state {
		case stWaiting:
			if h == c.single {
				c.state = stHeld
				c.until = time.Time{}
				c.replyGrant(h, c.lease.singlePending())
				continue
			}
		case stSession:
			if c.waits.drop(h) {
				c.replyGrant(h, c.lease.unwait(h))
				c.spill() // on failure the state is stDone: the rest are released
			}
			continue
		}
		// Any other state: the connection is ending (a failed spill
		// among them). ReleaseAll would free a lock it was just given,
		// but not a lease, which nobody would know the id of: this frees
		// both.
		c.srv.table.Release(h)
	}
}

// replyGrant answers the grant of h, asked as p says: a lease's answer
// carries its id and TTL, and a capped hold starts its timer.
func (c *conn) replyGrant(h table.Holder, p pending) {
	name := ""
	if c.state == stSession {
		name = h.Name()
	}
	if p.id != "" {
		c.out = protocol.AppendLease(c.out, protocol.KindOK, name, h.Token(), p.id, p.ttl)
		ls := c.leases()
		ls.unsent = append(ls.unsent, h)
		if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
			// By its fingerprint: the id is the lease, and logs are read by many.
			c.srv.log.Debug("lease granted", "name", h.Name(), "lease", protocol.LeaseFingerprint(protocol.LeaseKey(p.id)),
				"ttl", p.ttl, "remote", c.info.Addr, "client_id", c.info.ClientID, "token", h.Token())
		}
		if c.state != stSession {
			// The connection holds nothing: the lease is not bound to it.
			c.state = stDone
		}
		return
	}
	if p.maxHold > 0 {
		c.leases().arm(c, h, p.maxHold)
	}
	switch {
	case c.state == stSession:
		c.reply(protocol.KindOK, h.Name(), h.Token(), "")
	case c.ext:
		c.reply(protocol.KindOK, "", h.Token(), "")
	default:
		c.reply(protocol.KindOK, "", 0, "")
	}
}
