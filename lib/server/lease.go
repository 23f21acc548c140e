package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/table"
)

// Leases and maximum holds, the server's part.
//
// A lease request is a lock request with a ttl: the server makes the lease
// id, gives the table only its key (table.LeaseKey), and sends the id once,
// in the grant's answer. The id is kept, in memory only, from the request
// to that answer: a lease granted while it waits is answered like any
// wait. A granted lease whose answer cannot be delivered (the connection
// went away meanwhile) is released at once: nobody knows its id, so
// nobody could renew or release it, and its name would stay taken for
// its TTL. The table ends leases at their TTL or maximum hold by itself.
//
// A maximum hold of a connection-bound holder is the server's to enforce
// (the table only shows it): one timer per capped holder, armed at its
// grant and stopped at its release. Holders without a cap have no timer
// and cost nothing more. Why a runtime timer and not the connection's
// read deadline, as for waits: an idle legacy holder is parked without a
// goroutine (park.go), and a timer reaches it there as an operator's
// break does. At the cap the timer releases the lock in the table (so the
// next waiter is granted at once, whatever the holder's connection is
// doing) and then tells the connection, which tells its peer: a lost line
// in a session, a closed connection otherwise.

// pending is what a lock request asked for beyond the table's Request, kept
// from the request to its grant's answer.
type pending struct {
	id      string        // the lease id of a lease request; "" otherwise
	ttl     time.Duration // a lease's TTL as its grant answers it
	maxHold time.Duration // the cap in force on a connection-bound holder; 0: none
}

// leaseState is a connection's leases and capped holders. Only the
// connection's goroutine touches it (or Granted's direct answer, under
// wmu), but for maxed. Its methods take a nil *leaseState for one with
// nothing in it.
type leaseState struct {
	maxed  []table.Holder             // under conn.mu: taken away at their maximum hold, to tell
	single pending                    // of conn.single, on a legacy-style connection
	waits  map[table.Holder]pending   // a session's waits that are leases or capped; nil: none
	timers map[table.Holder]*capTimer // a session's capped holders
	timer  *capTimer                  // conn.single's, when capped
	unsent []table.Holder             // leases granted whose answer is in conn.out, not yet written
}

// capTimer is the maximum hold of one connection-bound holder.
type capTimer struct {
	t   *time.Timer
	cap time.Duration
}

// leases returns c.lease, made if need be.
func (c *conn) leases() *leaseState {
	if c.lease == nil {
		c.mu.Lock()
		c.lease = &leaseState{}
		c.mu.Unlock()
	}
	return c.lease
}

// singlePending is what conn.single asked for.
func (ls *leaseState) singlePending() pending {
	if ls == nil {
		return pending{}
	}
	return ls.single
}

// wait keeps p for h, a session's wait.
func (ls *leaseState) wait(h table.Holder, p pending) {
	if ls.waits == nil {
		ls.waits = make(map[table.Holder]pending)
	}
	ls.waits[h] = p
}

// unwait forgets h's wait and returns what it asked for.
func (ls *leaseState) unwait(h table.Holder) pending {
	if ls == nil || ls.waits == nil {
		return pending{}
	}
	p, ok := ls.waits[h]
	if ok {
		delete(ls.waits, h)
		if len(ls.waits) == 0 {
			ls.waits = nil // a map never shrinks
		}
	}
	return p
}

// sent records that every answer gathered so far went out.
func (ls *leaseState) sent() {
	if ls == nil {
		return
	}
	clear(ls.unsent)
	ls.unsent = ls.unsent[:0]
}

// arm starts the maximum hold of h, held by c from now on.
func (ls *leaseState) arm(c *conn, h table.Holder, d time.Duration) {
	ct := &capTimer{cap: d}
	since := time.Now()
	ct.t = time.AfterFunc(d, func() { c.capReached(h, d, since) })
	if c.state == stSession {
		if ls.timers == nil {
			ls.timers = make(map[table.Holder]*capTimer)
		}
		ls.timers[h] = ct
		return
	}
	ls.timer = ct
}

// stop stops h's maximum hold, if it has one, and returns the cap. On a
// legacy-style connection h is conn.single, the only holder it has.
func (ls *leaseState) stop(h table.Holder) time.Duration {
	if ls == nil {
		return 0
	}
	ct := ls.timers[h]
	if ct != nil {
		delete(ls.timers, h)
		if len(ls.timers) == 0 {
			ls.timers = nil
		}
	} else if ls.timer != nil {
		ct, ls.timer = ls.timer, nil
	}
	if ct == nil {
		return 0
	}
	ct.t.Stop()
	return ct.cap
}

// capReached runs on the timer's goroutine when h has been held for its
// maximum hold d: it takes the lock away and tells c. A holder released
// meanwhile (by its owner, an operator, a closed connection) is left alone.
func (c *conn) capReached(h table.Holder, d time.Duration, since time.Time) {
	s := c.srv
	if !s.table.Release(h) {
		return
	}
	s.maxHolds.Add(1)
	s.log.Info("lock taken away: maximum hold reached", "name", h.Name(), "remote", c.info.Addr,
		"client_id", c.info.ClientID, "max_hold", d, "held_for", time.Since(since).Round(time.Millisecond))
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.lease.maxed = append(c.lease.maxed, h) // armed through c.lease: not nil
	c.nev.Add(1)
	c.mu.Unlock()
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	if p := s.parker; p != nil && p.unpark(c) {
		go c.run()
	}
}

// maxHoldWhy is the why: of the lost line of a holder taken away at its
// maximum hold d.
func maxHoldWhy(d time.Duration) string {
	return "maximum hold of " + shortDuration(d) + " reached"
}

// shortDuration writes d as Go does, without its zero tails: 2s, 1m30s,
// 2h, 1h30m, 1.5s, 250ms.
func shortDuration(d time.Duration) string {
	str := d.String()
	if strings.HasSuffix(str, "m0s") {
		str = strings.TrimSuffix(str, "0s")
	}
	if strings.HasSuffix(str, "h0m") {
		str = strings.TrimSuffix(str, "0m")
	}
	return str
}

// letGo ends c's part in leases and maximum holds once ReleaseAll has run:
// from now on a grant for c is released as it comes (Granted), and so are
// those that came and were never answered, and the leases whose answers
// were not written; the timers of c's capped holders stop.
func (c *conn) letGo() {
	s := c.srv
	c.mu.Lock()
	c.dead = true
	granted := c.granted
	c.granted, c.broken = nil, nil
	ls := c.lease
	if ls != nil {
		ls.maxed = nil
	}
	c.nev.Store(0)
	c.mu.Unlock()
	// Released by ReleaseAll already, unless a lease: Release tells.
	for _, h := range granted {
		s.table.Release(h)
	}
	if ls == nil {
		return
	}
	for _, h := range ls.unsent {
		s.table.Release(h)
	}
	ls.sent()
	if ls.timer != nil {
		ls.timer.t.Stop()
		ls.timer = nil
	}
	for _, ct := range ls.timers {
		ct.t.Stop()
	}
	ls.timers, ls.waits = nil, nil
}

// maxHold is the cap in force on a request that asked for asked (0: none):
// the smaller of it and the server's.
func (s *Server) maxHold(asked time.Duration) time.Duration {
	if m := s.cfg.MaxHold; m > 0 && (asked <= 0 || m < asked) {
		return m
	}
	return asked
}

// prepare turns a lock request into the table's request, making the lease
// id of a lease request.
func (c *conn) prepare(req protocol.Request, wait bool) (pending, table.Request, error) {
	p := pending{maxHold: c.srv.maxHold(req.MaxHold)}
	tr := table.Request{Name: req.Name, Mode: tableMode(req.Mode), Limit: req.Limit, Wait: wait, MaxHold: p.maxHold}
	if req.TTL <= 0 {
		return p, tr, nil
	}
	id, err := protocol.NewLeaseID()
	if err != nil {
		return pending{}, tr, err
	}
	p.id, p.ttl = id, req.TTL
	if p.maxHold > 0 {
		// What the grant answers is what remains: the cap may come first.
		p.ttl = min(p.ttl, p.maxHold)
		p.maxHold = 0 // the table ends a lease itself
	}
	tr.Lease = &table.LeaseRequest{Key: protocol.LeaseKey(id), TTL: req.TTL}
	return p, tr, nil
}

// errNoLeaseID answers .renew, .release and .is-held without a lease key,
// in the words the parser uses for a lease value it refuses.
var errNoLeaseID = &protocol.ValueError{Key: "lease", Reason: "want 32 lowercase hex digits"}

// handleLeaseOp answers .renew, .release and .is-held. A lease is found by
// its key alone: whoever has the id may act on it, from any connection.
func (c *conn) handleLeaseOp(req protocol.Request, perr error) {
	s := c.srv
	if perr == nil && req.Lease == "" {
		perr = errNoLeaseID
	}
	if perr != nil {
		c.reply(protocol.KindErr, "", 0, perr.Error())
		return
	}
	key := table.LeaseKey(protocol.LeaseKey(req.Lease))
	var l table.Lease
	var err error
	switch req.Action {
	case protocol.ActRenew:
		before := time.Now()
		if l, err = s.table.Renew(key, req.TTL); err == nil {
			asked := req.TTL
			if asked <= 0 {
				asked = l.TTL
			}
			// What remains at the renewal: what was asked, unless the
			// maximum hold comes first.
			c.out = protocol.AppendLease(c.out, protocol.KindRenewed, l.Name, l.Token, "", min(asked, l.Expires.Sub(before)))
		}
	case protocol.ActReleaseLease:
		if l, err = s.table.ReleaseLease(key); err == nil {
			c.reply(protocol.KindReleased, l.Name, 0, "")
		}
	case protocol.ActIsHeld:
		if l, err = s.table.LookupLease(key); err == nil {
			c.out = protocol.AppendLease(c.out, protocol.KindHeld, l.Name, l.Token, "", time.Until(l.Expires))
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, table.ErrNoLease):
		c.reply(protocol.KindErr, "", 0, protocol.ReasonNoLease)
	default:
		// A durable table that cannot store a renewal, say. Logged by
		// fingerprint: the id stays with the client.
		level := slog.LevelError
		if s.table.Degraded() != nil {
			level = slog.LevelDebug
		}
		s.rlog.Log(context.Background(), level, req.Action.String()+" refused", "lease", protocol.LeaseFingerprint(key),
			"remote", c.info.Addr, "err", err)
		c.reply(protocol.KindErr, "", 0, err.Error())
	}
}
