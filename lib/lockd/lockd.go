// Package lockd is tnl's lock table: named locks with exclusive, shared and
// semaphore modes, a FIFO queue of waiters per name, and fencing tokens.
//
// It has no network code and no wait timers. Its only goroutines are
// FileTokens' writer of the fencing state (which retries with a backoff
// while the disk refuses), the scan that serves the queues when that
// writer recovers, and the one timer that ends leases at their expiry (see
// lease.go; FileLeases keeps them in the state directory). Callers (lib/server) own connections and wait timeouts;
// lockd tells them about grants and losses through their table.Notifier. A
// Table is a table.Table: the server works over that interface, and lockd
// has no words of the wire (it does not import lib/protocol). A held lock
// costs one holder (about 100 bytes) and, per name, one entry in a sharded
// map (BenchmarkHeldMemory: about 230 bytes with its name); a lease costs
// about 130 bytes more, for its key in the lease map and its place in the
// expiry heap (BenchmarkLeaseMemory); idle names are forgotten at once, which is safe because fencing
// tokens come from one server-wide counter.
//
// Fairness rule: a request is granted at once only if it is compatible with
// the current holders and nobody is queued for that name. Waiters are served
// strictly in arrival order: after every release or cancellation the head of
// the queue is granted while it is compatible, then the next, and so on; the
// first incompatible waiter stops the scan. So a shared request queued behind
// a waiting exclusive one waits, and a big semaphore request never starves.
//
// Compatibility: an exclusive holder with limit N (a semaphore; N = 1 is a
// plain lock) is compatible with fewer than N other exclusive holders; shared
// holders are compatible with each other; the two modes never mix. Holders
// and waiters of one name must agree on N while any of them exists.
package lockd

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// Why the methods take table.Owner and table.Holder and assert them to
// lockd's own owner and holder: the server works over table.Table, so that
// another backend can take lockd's place. Asserting an interface that
// holds a pointer to its concrete type is one comparison, and handing a
// pointer out as an interface allocates nothing, so the hot path costs what
// it did. A Holder or Owner of another implementation is a programming
// error: the methods panic, with a message that says so.

// Compile-time check: the server can work over a *Table.
var _ table.Table = (*Table)(nil)

// owner is a table.Owner: one client (a connection or a session). One owner
// is shared by all its holders.
type owner struct {
	info     table.Info
	notifier table.Notifier

	// Holders of this owner, so that closing a connection finds everything.
	// mu is a leaf lock: nothing else is locked while it is held.
	mu    sync.Mutex
	first *holder
	count int
}

// Info is who the owner is, as given to NewOwner.
func (o *owner) Info() *table.Info { return &o.info }

// state of a holder
const (
	stateNew uint8 = iota
	stateWaiting
	stateHeld
	stateGone
)

// holder is a table.Holder: one request for a lock, waiting, then held,
// then gone.
type holder struct {
	entry *entry
	owner *owner
	token uint64 // the fencing token of the grant; 0 while waiting
	since int64  // unix nanoseconds: when queued, then when granted
	mode  table.Mode
	state uint8
	limit int32

	next, prev   *holder // in the entry's held list or queue
	onext, oprev *holder // in the owner's list
	// x is what a lease or a holder with a maximum hold has more; nil
	// for a plain lock. Why a pointer and not fields: a plain holder keeps
	// its size class (80 bytes), so the hot path costs what it did.
	x *extra
}

// Name is the lock's name.
func (h *holder) Name() string { return h.entry.name }

// Mode is the mode asked for.
func (h *holder) Mode() table.Mode { return h.mode }

// Token is the fencing token of the grant; 0 while waiting. It is set
// under the shard mutex before the grant is told, and never changes after.
func (h *holder) Token() uint64 { return h.token }

// Owner is the owner that asked.
func (h *holder) Owner() table.Owner { return h.owner }

// asHolder is h as lockd's own holder; see the note on owner.
func asHolder(h table.Holder) *holder {
	hh, ok := h.(*holder)
	if !ok {
		panic("lockd: a table.Holder that this Table did not make")
	}
	return hh
}

// asOwner is o as lockd's own owner; see the note on owner.
func asOwner(o table.Owner) *owner {
	oo, ok := o.(*owner)
	if !ok {
		panic("lockd: a table.Owner that this Table did not make")
	}
	return oo
}

// entry is one name with holders or waiters. Idle entries are deleted.
type entry struct {
	name   string
	mode   table.Mode // of the current holders
	limit  int32      // agreed semaphore size while nexcl > 0
	nexcl  int32      // exclusive holders + exclusive waiters
	nheld  int32
	nqueue int32
	held   *holder // doubly linked, oldest first, so that a listing can bound it
	htail  *holder
	qhead  *holder
	qtail  *holder
	token  uint64 // latest grant
}

const nShards = 64

type shard struct {
	mu sync.Mutex
	m  map[string]*entry
	_  [40]byte // keep shards on separate cache lines
}

// TokenSource hands out fencing tokens: each successful call returns a
// number larger than every number it returned before, also across restarts
// when it is persistent. It is called with a shard mutex held and must be
// fast. When it cannot issue a token that it can stand by (FileTokens on a
// disk that refuses writes) it returns an error and no token: the request
// is refused, or a waiter stays queued, rather than granted without one.
type TokenSource interface {
	Next() (uint64, error)
}

// Watched is a TokenSource that can tell when it fails and recovers, as
// FileTokens does. A Table made with one serves, when it recovers, the
// waiters it left queued, and Table.Degraded reports its trouble.
type Watched interface {
	TokenSource
	// Degraded returns why the source cannot issue every token now, or nil.
	Degraded() error
	// Watch registers f, called with the error when the source becomes
	// degraded and with nil when it recovers. f must return soon.
	Watch(f func(err error))
}

// memTokens is the TokenSource that lives in memory only, the default.
type memTokens struct{ n atomic.Uint64 }

// Next returns the next token. (2^64 of them take centuries.)
func (t *memTokens) Next() (uint64, error) { return t.n.Add(1), nil }

// Options configure a Table.
type Options struct {
	Tokens     TokenSource // default: tokens in memory only, from 1 at every start
	MaxWaiters int         // per name; 0 = unlimited
	Now        func() int64
	// HoldOff makes the new table grant nothing until EndHoldOff: requests
	// that may wait are queued (in order, as usual), the others are not
	// granted. Why: a server restarted over the state of an earlier run
	// knows nothing of that run's holders, and some of them may not have
	// noticed yet that it died (a partitioned client takes up to half the
	// dead-peer timeout to notice, and then gives its command a grace to
	// stop). Granting their locks at once would run two commands at once.
	HoldOff bool
	// Leases keeps leases across restarts (see LeaseStore); nil: in
	// memory only. New re-holds the leases it stored that are still
	// unexpired (by Now) with their tokens, before anything else can be
	// granted.
	Leases LeaseStore
}

// Table is the lock table. It is safe for concurrent use.
type Table struct {
	shards     [nShards]shard
	seed       maphash.Seed
	tokens     TokenSource
	maxWaiters int32
	now        func() int64
	leases     leases

	holdOff     atomic.Bool // see Options.HoldOff; read under a shard mutex
	acquired    atomic.Uint64
	notAcquired atomic.Uint64
	held        atomic.Int64
	waiting     atomic.Int64
	names       atomic.Int64
	nLeases     atomic.Int64
	expired     atomic.Uint64
}

// New returns an empty table.
func New(o Options) *Table {
	t := &Table{seed: maphash.MakeSeed(), tokens: o.Tokens, maxWaiters: int32(o.MaxWaiters), now: o.Now}
	if t.tokens == nil {
		t.tokens = &memTokens{}
	}
	if t.now == nil {
		t.now = func() int64 { return time.Now().UnixNano() }
	}
	t.holdOff.Store(o.HoldOff)
	for i := range t.shards {
		t.shards[i].m = make(map[string]*entry)
	}
	t.leases.init(t, o.Leases)
	if w, ok := t.tokens.(Watched); ok {
		w.Watch(func(err error) {
			if err == nil {
				// On a goroutine: serving grants tokens, and the source
				// waits for its watchers.
				go t.serveAll()
			}
		})
	}
	return t
}

// Degraded returns why the table cannot grant every lock now (its
// TokenSource cannot make new fencing tokens durable), or nil. The error is
// ErrNotDurable with the source's reason, in the words of the refusals it
// causes: "fencing state not durable: WHY".
func (t *Table) Degraded() error {
	if w, ok := t.tokens.(Watched); ok {
		if err := w.Degraded(); err != nil {
			return fmt.Errorf("%w: %w", ErrNotDurable, err)
		}
	}
	return nil
}

func (t *Table) shard(name string) *shard {
	return &t.shards[maphash.String(t.seed, name)&(nShards-1)]
}

// NewOwner makes an owner told of its grants and losses through n.
func (t *Table) NewOwner(info table.Info, n table.Notifier) table.Owner {
	return &owner{info: info, notifier: n}
}

// Acquire asks for a lock on behalf of o (see table.Table). Refused comes
// with table.ErrLimitMismatch, table.ErrQueueFull, or the TokenSource's
// error (ErrNotDurable, ErrTokensExhausted, both table.ErrUnavailable): a
// lock is never granted without a fencing token. A Holder that is not nil
// is added to o's list; the caller must eventually pass it to Release.
// It panics when o was not made by a lockd Table.
func (t *Table) Acquire(to table.Owner, r table.Request) (table.Holder, table.Result, error) {
	o := asOwner(to)
	limit := int32(1)
	if r.Mode == table.Exclusive && r.Limit > 1 {
		limit = int32(r.Limit)
	}
	var x *extra
	if r.Lease != nil || r.MaxHold > 0 {
		var err error
		if x, err = newExtra(r); err != nil {
			t.notAcquired.Add(1)
			return nil, table.Refused, err
		}
	}
	now := t.now() // outside the shard mutex
	s := t.shard(r.Name)
	s.mu.Lock()
	e := s.m[r.Name]
	if e == nil {
		e = &entry{name: r.Name}
		s.m[r.Name] = e
		t.names.Add(1)
	}
	if r.Mode == table.Exclusive && e.nexcl > 0 && e.limit != limit {
		t.dropIfIdle(s, e)
		s.mu.Unlock()
		t.notAcquired.Add(1)
		return nil, table.Refused, table.ErrLimitMismatch
	}
	h := &holder{entry: e, owner: o, mode: r.Mode, limit: limit, since: now, x: x}
	if e.qhead == nil && e.compatible(h) && !t.holdOff.Load() {
		token, err := t.tokens.Next()
		if err == nil && x != nil {
			x.h = h
			err = t.leases.start(x, token, now)
		}
		if err != nil {
			t.dropIfIdle(s, e)
			s.mu.Unlock()
			t.notAcquired.Add(1)
			return nil, table.Refused, err
		}
		t.grant(e, h, token)
		s.mu.Unlock()
		t.acquired.Add(1)
		if !h.isLease() { // a granted lease belongs to no owner
			o.link(h)
		}
		return h, table.Granted, nil
	}
	if !r.Wait {
		t.dropIfIdle(s, e)
		s.mu.Unlock()
		t.notAcquired.Add(1)
		return nil, table.NotGranted, nil
	}
	if t.maxWaiters > 0 && e.nqueue >= t.maxWaiters {
		s.mu.Unlock()
		t.notAcquired.Add(1)
		return nil, table.Refused, table.ErrQueueFull
	}
	if x != nil {
		x.h = h
		if err := t.leases.queue(x); err != nil {
			t.dropIfIdle(s, e)
			s.mu.Unlock()
			t.notAcquired.Add(1)
			return nil, table.Refused, err
		}
	}
	h.state = stateWaiting
	if h.mode == table.Exclusive {
		if e.nexcl == 0 {
			e.limit = limit
		}
		e.nexcl++
	}
	if e.qtail == nil {
		e.qhead, e.qtail = h, h
	} else {
		h.prev = e.qtail
		e.qtail.next = h
		e.qtail = h
	}
	e.nqueue++
	// Counted before the unlock: a release on another goroutine may grant
	// h and take it off the count as soon as the mutex is free.
	t.waiting.Add(1)
	if h.isLease() {
		// Linked before the unlock: a grant on another goroutine unlinks
		// a lease from its owner, and must find it linked.
		o.link(h)
		s.mu.Unlock()
		return h, table.Queued, nil
	}
	s.mu.Unlock()
	o.link(h)
	return h, table.Queued, nil
}

func (e *entry) compatible(h *holder) bool {
	if e.nheld == 0 {
		return true
	}
	if h.mode != e.mode {
		return false
	}
	return h.mode == table.Shared || e.nheld < e.limit
}

// grant makes h a holder of e with the fencing token drawn for it; h is
// not linked anywhere yet. Shard mutex held. The token is drawn first, by
// the caller: without one, nothing may change.
func (t *Table) grant(e *entry, h *holder, token uint64) {
	if h.state != stateWaiting && h.mode == table.Exclusive {
		if e.nexcl == 0 {
			e.limit = h.limit
		}
		e.nexcl++
	}
	h.state = stateHeld
	h.token = token
	e.token = token
	e.mode = h.mode
	h.next = nil
	h.prev = e.htail
	if e.htail != nil {
		e.htail.next = h
	} else {
		e.held = h
	}
	e.htail = h
	e.nheld++
	t.held.Add(1)
}

// Release gives up h, held or waiting, and grants whoever can now go. It
// reports whether h was held (false: it was still waiting and is withdrawn,
// or it was already released). Waiters granted by it are told through their
// owners' Notifiers before Release returns, on this goroutine. It panics
// when h was not made by a lockd Table.
func (t *Table) Release(th table.Holder) (wasHeld bool) {
	h := asHolder(th)
	e := h.entry
	s := t.shard(e.name)
	var granted []*holder
	var one [4]*holder
	s.mu.Lock()
	switch h.state {
	case stateHeld:
		wasHeld = true
		unlinkFrom(&e.held, &e.htail, h)
		e.nheld--
		t.held.Add(-1)
		if h.x != nil {
			t.leases.end(h.x)
		}
	case stateWaiting:
		t.unqueue(e, h)
		t.waiting.Add(-1)
		if h.x != nil {
			t.leases.unqueue(h.x)
		}
	default:
		s.mu.Unlock()
		h.owner.unlink(h)
		return false
	}
	if h.mode == table.Exclusive {
		e.nexcl--
	}
	h.state = stateGone
	h.next, h.prev = nil, nil
	granted = t.serveQueue(e, one[:0])
	t.dropIfIdle(s, e)
	s.mu.Unlock()
	h.owner.unlink(h)
	t.notify(granted)
	return wasHeld
}

func (t *Table) unqueue(e *entry, h *holder) {
	unlinkFrom(&e.qhead, &e.qtail, h)
	e.nqueue--
}

// unlinkFrom takes h out of the doubly linked list with the given head and
// tail: the held list and the queue are both such lists.
func unlinkFrom(head, tail **holder, h *holder) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		*head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		*tail = h.prev
	}
}

// serveQueue grants queued requests in order while they are compatible.
// When no token can be had, the head stays queued, under its own wait
// timeout, until the TokenSource recovers and serveAll comes by.
func (t *Table) serveQueue(e *entry, granted []*holder) []*holder {
	if t.holdOff.Load() {
		return granted
	}
	for h := e.qhead; h != nil && e.compatible(h); h = e.qhead {
		token, err := t.tokens.Next()
		if err != nil {
			break
		}
		queued := h.since
		h.since = t.now() // was the time it queued
		if h.x != nil && t.leases.start(h.x, token, h.since) != nil {
			// The lease cannot be stored: it stays queued, and is
			// tried again at the next event of the name or soon.
			h.since = queued
			t.leases.retrySoon()
			break
		}
		t.unqueue(e, h)
		t.grant(e, h, token)
		if h.isLease() {
			// From now on the lease belongs to no owner. (The owner's
			// mutex is a leaf: taking it under the shard mutex is safe.)
			h.owner.unlink(h)
		}
		granted = append(granted, h)
	}
	return granted
}

func (t *Table) dropIfIdle(s *shard, e *entry) {
	if e.nheld == 0 && e.qhead == nil {
		if s.m[e.name] == e {
			delete(s.m, e.name)
			t.names.Add(-1)
		}
		e.nexcl = 0
	}
}

// EndHoldOff ends the hold-off of Options.HoldOff: from now on locks are
// granted, and the waiters queued meanwhile are granted in order, each
// told through its Notifier. Calling it again does nothing.
func (t *Table) EndHoldOff() {
	if !t.holdOff.Swap(false) {
		return
	}
	// An Acquire that saw the hold-off queued under its shard mutex, so
	// the scan below, which takes each shard mutex after the flag is
	// cleared, finds it.
	t.serveAll()
}

// serveAll serves every queue, as after the hold-off or when the
// TokenSource recovers. A grant that failed for want of a token did so under
// its shard mutex, before the recovery, and this scan takes each shard mutex
// after it: no queue left stuck is missed.
func (t *Table) serveAll() {
	for i := range t.shards {
		s := &t.shards[i]
		var granted []*holder
		s.mu.Lock()
		for _, e := range s.m {
			granted = t.serveQueue(e, granted)
		}
		s.mu.Unlock()
		t.notify(granted)
	}
}

// Cancel withdraws h if it is still waiting and reports whether it did. A
// Holder granted in the meantime is left held: the grant has been, or is
// being, delivered through Notifier.Granted. Safe to call from any
// goroutine, e.g. a wait timer. It panics when h was not made by a lockd
// Table.
func (t *Table) Cancel(th table.Holder) bool {
	h := asHolder(th)
	e := h.entry
	s := t.shard(e.name)
	var one [4]*holder
	s.mu.Lock()
	if h.state != stateWaiting {
		s.mu.Unlock()
		return false
	}
	t.unqueue(e, h)
	if h.mode == table.Exclusive {
		e.nexcl--
	}
	if h.x != nil {
		t.leases.unqueue(h.x)
	}
	h.state = stateGone
	h.next, h.prev = nil, nil
	granted := t.serveQueue(e, one[:0])
	t.dropIfIdle(s, e)
	s.mu.Unlock()
	t.waiting.Add(-1)
	h.owner.unlink(h)
	t.notify(granted)
	return true
}

func (t *Table) notify(granted []*holder) {
	for _, g := range granted {
		t.acquired.Add(1)
		t.waiting.Add(-1)
		g.owner.notifier.Granted(g)
	}
}

// Break takes name away from all its holders, as an operator does with a
// lock held by a live but stuck client, and grants the waiters that can now
// go. Each holder's owner is told through Notifier.Lost, with
// table.ErrBroken, except a lease's: a lease has no owner, and nobody is
// told. It returns how many holders lost the lock, leases included.
func (t *Table) Break(name string) int {
	s := t.shard(name)
	var one [4]*holder
	s.mu.Lock()
	e := s.m[name]
	if e == nil || e.nheld == 0 {
		s.mu.Unlock()
		return 0
	}
	var broken []*holder
	for h := e.held; h != nil; {
		next := h.next
		if h.mode == table.Exclusive {
			e.nexcl--
		}
		if h.x != nil {
			t.leases.end(h.x)
		}
		h.state = stateGone
		h.next, h.prev = nil, nil
		broken = append(broken, h)
		h = next
	}
	e.held, e.htail = nil, nil
	t.held.Add(-int64(e.nheld))
	e.nheld = 0
	granted := t.serveQueue(e, one[:0])
	t.dropIfIdle(s, e)
	s.mu.Unlock()
	for _, h := range broken {
		if h.isLease() {
			continue // no owner to tell
		}
		h.owner.unlink(h)
		h.owner.notifier.Lost(h, table.ErrBroken)
	}
	t.notify(granted)
	return len(broken)
}

// Find returns o's Holder (held or waiting) for name, or nil. It panics
// when o was not made by a lockd Table.
func (t *Table) Find(to table.Owner, name string) table.Holder {
	o := asOwner(to)
	s := t.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[name]
	if e == nil {
		return nil
	}
	for h := e.held; h != nil; h = h.next {
		if h.owner == o && !h.isLease() {
			return h
		}
	}
	for h := e.qhead; h != nil; h = h.next {
		if h.owner == o {
			return h
		}
	}
	return nil
}

// Held reports whether h is held (not waiting, not released). It panics
// when h was not made by a lockd Table.
func (t *Table) Held(th table.Holder) bool {
	h := asHolder(th)
	s := t.shard(h.entry.name)
	s.mu.Lock()
	defer s.mu.Unlock()
	return h.state == stateHeld
}

// ReleaseAll releases everything o holds or waits for, as when its
// connection closes. It panics when o was not made by a lockd Table.
func (t *Table) ReleaseAll(to table.Owner) {
	o := asOwner(to)
	for {
		o.mu.Lock()
		h := o.first
		o.mu.Unlock()
		if h == nil {
			return
		}
		t.Release(h) // also unlinks a Holder that is gone already
	}
}

// Count is the number of holders and waiters o has.
func (o *owner) Count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count
}

func (o *owner) link(h *holder) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h.onext = o.first
	if o.first != nil {
		o.first.oprev = h
	}
	o.first = h
	o.count++
}

func (o *owner) unlink(h *holder) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if h.oprev == nil && o.first != h {
		return // not linked
	}
	if h.oprev != nil {
		h.oprev.onext = h.onext
	} else {
		o.first = h.onext
	}
	if h.onext != nil {
		h.onext.oprev = h.oprev
	}
	h.onext, h.oprev = nil, nil
	o.count--
}

// Counters returns the running totals.
func (t *Table) Counters() table.Counters {
	return table.Counters{
		Acquired:    t.acquired.Load(),
		NotAcquired: t.notAcquired.Load(),
		Held:        t.held.Load(),
		Waiting:     t.waiting.Load(),
		Names:       t.names.Load(),
		Leases:      t.nLeases.Load(),
		Expired:     t.expired.Load(),
	}
}

// CountTimeout records a wait that ran out (a not-acquired request).
func (t *Table) CountTimeout() { t.notAcquired.Add(1) }

func party(h *holder) table.Party {
	p := table.Party{Info: h.owner.info, Mode: h.mode, Limit: int(h.limit), Since: time.Unix(0, h.since), Token: h.token}
	if x := h.x; x != nil {
		p.Lease, p.Key = x.lease, x.key
		if h.state == stateHeld {
			p.Expires = time.Unix(0, x.expires.Load())
			if x.lease {
				p.Addr = "" // a held lease has no connection
			}
		}
	}
	return p
}
