package server

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/table"
)

// statsJSON writes the counters in tcpnetlock's style ({"key": value, ...}),
// whose own tests look for lock_count, maxrss, requests_count,
// lock_acquired_count and lock_not_acquired_count.
func (c *conn) statsJSON() string {
	st := c.srv.Stats()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	kv := []struct {
		k string
		v int64
	}{
		{"lock_count", st.Held},
		{"maxrss", int64(ru.Maxrss)},
		{"requests_count", int64(st.Requests)},
		{"lock_acquired_count", int64(st.Acquired)},
		{"lock_not_acquired_count", int64(st.NotAcquired)},
		{"names", st.Names},
		{"waiting", st.Waiting},
		{"connections", st.Connections},
		{"sessions", st.Sessions},
		{"uptime_seconds", int64(st.Uptime / time.Second)},
		{"leases", st.Leases},
		{"lease_expired_count", int64(st.Expired)},
		{"max_hold_count", int64(st.MaxHolds)},
		// 1 while fencing tokens cannot be made durable (the reason is in
		// the log and in an extension .ping): values stay numbers, which
		// tnl's clients, old ones too, decode as such.
		{"degraded", b2i(st.Degraded != nil)},
	}
	b := make([]byte, 0, 256)
	b = append(b, '{')
	for i, e := range kv {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '"')
		b = append(b, e.k...)
		b = append(b, `": `...)
		b = strconv.AppendInt(b, e.v, 10)
	}
	return string(append(b, '}'))
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// listBatch is how many parties one Table.List call copies: one shard lock
// held briefly, a few KiB, however many parties a name has.
const listBatch = 128

// holdersChunk is how much of a holders answer is gathered before it is
// written out: what a connection that does not read keeps, with one more
// piece (a party with the longest strings, escaped, takes about 3.3 KiB).
const (
	holdersChunk = 16 << 10
	holdersPiece = 8 << 10
)

// holdersScratch is what one holders answer works in: the names to list,
// a page of parties, the chunk being filled. Pooled, because hundreds of
// answers at once would otherwise leave their buffers for the collector,
// and a server holding a large table (its live heap) may only grow by as
// much again before the collector runs.
type holdersScratch struct {
	names []string
	li    table.LockInfo
	out   []byte
}

var holdersPool = sync.Pool{New: func() any { return &holdersScratch{out: make([]byte, 0, holdersChunk+holdersPiece)} }}

// writeHolders answers .holders: it streams the answer and writes it out in
// chunks of holdersChunk while it is built, so that a connection never
// holds more than a chunk, a page of parties and the list of names, and a
// peer that does not read blocks only itself, at its first chunk that does
// not fit in the socket's buffers, until the answer's deadline ends it.
// The answer is at most MaxAnswerBytes long: the names listed are the first
// ones by name, the holders and waiters of each at most MaxListed, and what
// is left out makes the answer say "truncated":true. It reports false when
// the peer is gone.
func (c *conn) writeHolders(req protocol.Request) bool {
	s := c.srv
	sc := holdersPool.Get().(*holdersScratch)
	defer holdersPool.Put(sc)
	enc := protocol.HoldersEncoder{Max: s.cfg.MaxAnswerBytes}
	// The whole answer, not each chunk, must go out within the dead-peer
	// timeout: a peer that reads a byte now and then is not reading.
	by := time.Now().Add(s.cfg.DeadPeerTimeout)
	maxListed := s.cfg.MaxListed
	truncated := false
	if req.HasName {
		sc.names = append(sc.names[:0], req.Name)
	} else {
		// No answer can list more names than fit, one party each.
		sc.names, truncated = s.table.FirstNames(sc.names, min(maxListed, enc.Max/protocol.MinLockBytes))
	}
	defer clear(sc.names) // the pool must not keep names alive
	// The answers before this one go first, in the same chunk.
	b := append(sc.out[:0], c.out...)
	c.out = c.out[:0]
	defer func() { sc.out = b[:0] }()
	b = enc.Begin(b)
	li := &sc.li
	var ld protocol.LockInfo
	var pd protocol.Party
	var exp time.Time // pd.Expires points here: no allocation per party
	full := false
	for _, name := range sc.names {
		cur := table.Cursor{}
		opened := false
		nh, nw := 0, 0 // holders and waiters listed
		put := func(p *table.Party, waiter bool) bool {
			pd = partyDoc(p, &exp)
			var ok bool
			if opened {
				b, ok = enc.Party(b, &pd, waiter)
			} else {
				ld = protocol.LockInfo{Name: li.Name, Mode: wireMode(li.Mode).String(), Limit: li.Limit, Token: li.Token}
				b, ok = enc.Lock(b, &ld, &pd, waiter)
				opened = ok
			}
			return ok
		}
		for !cur.Done() && !full {
			n := maxListed - nh
			if cur.Waiters() {
				n = maxListed - nw
			}
			if n == 0 {
				// A cursor that is not done has a party after it.
				truncated = true
				if cur.Waiters() {
					break
				}
				cur = cur.SkipHolders()
				continue
			}
			next, ok := s.table.List(name, cur, min(n, listBatch), li)
			if !ok {
				// Gone since FirstNames: not listed. Or the listing lost its
				// place (a party it stood on left): the rest is left out.
				truncated = truncated || opened
				break
			}
			for i := range li.Holders {
				if full = !put(&li.Holders[i], false); full {
					break
				}
				nh++
				if b, ok = c.spillChunk(b, by); !ok {
					return false
				}
			}
			for i := 0; i < len(li.Waiters) && !full; i++ {
				if full = !put(&li.Waiters[i], true); full {
					break
				}
				nw++
				if b, ok = c.spillChunk(b, by); !ok {
					return false
				}
			}
			cur = next
		}
		if full {
			truncated = true
			break
		}
	}
	clear(li.Holders[:cap(li.Holders)])
	clear(li.Waiters[:cap(li.Waiters)])
	b = enc.End(b, truncated)
	if !c.writeChunk(b, by) {
		return false
	}
	c.lease.sent() // the answers before it went out in its first chunk
	return true
}

// spillChunk writes out b once it holds a chunk, and empties it.
func (c *conn) spillChunk(b []byte, by time.Time) ([]byte, bool) {
	if len(b) < holdersChunk {
		return b, true
	}
	ok := c.writeChunk(b, by)
	// Let the others run: a long answer is many chunks of work, and a
	// client waiting for a one-line answer should not wait for all of them.
	runtime.Gosched()
	return b[:0], ok
}

// writeChunk writes b by the deadline.
//
// A peer that does not read is cut one of two ways, whichever comes first:
// our write deadline, or the kernel, whose TCP_USER_TIMEOUT (set from the
// dead-peer timeout, see lib/internal/sockopt) also ends a connection whose peer has
// advertised a zero window for that long; the write then fails with
// ETIMEDOUT. Both are the same event for the operator.
func (c *conn) writeChunk(b []byte, by time.Time) bool {
	_ = c.nc.SetWriteDeadline(by)
	if _, err := c.nc.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) {
			c.srv.rlog.Info("connection closed: answers not read in time", "remote", c.info.Addr, "client_id", c.info.ClientID, "timeout", c.srv.cfg.DeadPeerTimeout)
		} else {
			c.srv.log.Debug("write failed", "remote", c.info.Addr, "err", err)
		}
		return false
	}
	return true
}

// partyDoc is p as the holders answer shows it; a party with an end (a
// lease, a maximum hold) gets Expires, pointing at exp. A lease is shown by
// its fingerprint: its id is nowhere but with whoever took it.
func partyDoc(p *table.Party, exp *time.Time) protocol.Party {
	d := protocol.Party{ClientID: p.ClientID, Host: p.Host, PID: p.PID, Addr: p.Addr, Mode: wireMode(p.Mode).String(), Since: p.Since.UTC(), Token: p.Token}
	if !p.Expires.IsZero() {
		*exp = p.Expires.UTC()
		d.Expires = exp
	}
	if p.Lease {
		d.Lease = protocol.LeaseFingerprint(p.Key)
	}
	return d
}
