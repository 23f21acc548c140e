package lockd

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// Leases: locks held by a key, not by an owner (see lib/table's package
// doc). A lease is a holder with an extra; the table finds it by its key in
// one map and ends it with one timer, armed for the earliest Expires of a
// min-heap of all held leases. Why not a timer (or a goroutine) per lease:
// a server holding a hundred thousand leases would keep as many runtime
// timers, and renewing one would stop and start one; the heap costs a slot
// per lease and a renew is one sift.
//
// Lock order: a shard mutex, then leases.mu, then the LeaseStore's own.
// leases.mu is held while the store writes (an fsync), so that the records
// of one key reach the store in the order they happened.

// ErrLeaseNotDurable: the LeaseStore could not store a grant or a renew,
// which is refused. The error returned wraps it and the cause; it is
// table.ErrUnavailable.
var ErrLeaseNotDurable error = &unavailable{"lease state not durable"}

// LeaseStore keeps leases across restarts (Options.Leases). Each method
// returns once what it records is durable. The Table calls them one at a
// time, in the order the events happened.
type LeaseStore interface {
	// Leases returns the leases stored when the store was opened that
	// have not ended. New re-holds those that are unexpired.
	Leases() []LeaseRecord
	// Grant records a lease granted.
	Grant(r LeaseRecord) error
	// Renew records a lease's new Expires.
	Renew(key table.LeaseKey, expires time.Time) error
	// End records that a lease ended (released, expired, broken). A
	// failure is not refused (a release cannot be): the lease may then
	// be re-held by the next start, until its Expires.
	End(key table.LeaseKey) error
}

// LeaseRecord is a lease as a LeaseStore keeps it.
type LeaseRecord struct {
	Key     table.LeaseKey
	Name    string
	Mode    table.Mode
	Limit   int // semaphore size: 1 for shared leases and plain locks
	Token   uint64
	Since   time.Time // the grant
	Expires time.Time
	TTL     time.Duration // as granted: what a renew without one gives again
	MaxHold time.Duration // 0: none
	Info    table.Info    // of the request, without Addr
}

// extra is what a lease, or a holder asked with a maximum hold, has more
// than a plain holder. It fits 80 bytes (a size class), for a lease's
// memory. Its grant time is the holder's since, set before start and not
// changed while it is held.
type extra struct {
	h       *holder
	key     table.LeaseKey
	lease   bool
	held    bool  // leases.mu: granted and not ended
	idx     int32 // leases.mu: in the heap; -1: not in it
	ttl     int64 // nanoseconds, as granted
	maxHold int64 // nanoseconds; 0: none
	// token is the holder's, for Renew and LookupLease, which read it
	// under leases.mu alone (the holder's is set after start).
	token   uint64
	expires atomic.Int64 // unix nanoseconds; written under leases.mu; 0 until granted
}

func newExtra(r table.Request) (*extra, error) {
	x := &extra{idx: -1, maxHold: max(int64(r.MaxHold), 0)}
	if r.Lease != nil {
		if r.Lease.TTL <= 0 {
			return nil, fmt.Errorf("%w: lease ttl %v, want above 0", table.ErrInvalid, r.Lease.TTL)
		}
		x.lease, x.key, x.ttl = true, r.Lease.Key, int64(r.Lease.TTL)
	}
	return x, nil
}

// isLease reports whether h is a lease request, held or waiting.
func (h *holder) isLease() bool { return h.x != nil && h.x.lease }

// end is when a holder granted at since ends: its TTL or its maximum
// hold, the earlier; 0 for neither.
func (x *extra) end(since int64) int64 {
	var end int64
	if x.lease {
		end = since + x.ttl
	}
	if x.maxHold > 0 && (end == 0 || since+x.maxHold < end) {
		end = since + x.maxHold
	}
	return end
}

func (x *extra) info() table.Lease {
	return table.Lease{Name: x.h.entry.name, Mode: x.h.mode, Token: x.token, Since: time.Unix(0, x.h.since),
		Expires: time.Unix(0, x.expires.Load()), TTL: time.Duration(x.ttl)}
}

func (x *extra) record() LeaseRecord {
	h := x.h
	info := h.owner.info
	info.Addr = ""
	return LeaseRecord{Key: x.key, Name: h.entry.name, Mode: h.mode, Limit: int(h.limit), Token: x.token,
		Since: time.Unix(0, h.since), Expires: time.Unix(0, x.expires.Load()),
		TTL: time.Duration(x.ttl), MaxHold: time.Duration(x.maxHold), Info: info}
}

// leases is a Table's lease state.
type leases struct {
	t     *Table
	store LeaseStore

	mu    sync.Mutex
	keys  map[table.LeaseKey]*extra // leases held or waiting
	heap  leaseHeap                 // held leases, earliest Expires first
	timer *time.Timer
	armed int64 // the Expires the timer is set for; 0: not set

	retrying atomic.Bool
}

func (l *leases) init(t *Table, store LeaseStore) {
	l.t, l.store = t, store
	l.keys = make(map[table.LeaseKey]*extra)
	if store != nil {
		t.restore(store.Leases())
	}
}

// queue registers the key of a lease request that waits. Shard mutex held.
func (l *leases) queue(x *extra) error {
	if !x.lease {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys[x.key] != nil {
		return fmt.Errorf("%w: lease key in use", table.ErrInvalid)
	}
	l.keys[x.key] = x
	return nil
}

// unqueue forgets the key of a lease request that stopped waiting. Shard
// mutex held.
func (l *leases) unqueue(x *extra) {
	if !x.lease {
		return
	}
	l.mu.Lock()
	if l.keys[x.key] == x {
		delete(l.keys, x.key)
	}
	l.mu.Unlock()
}

// start sets the end of x, granted now with token, and for a lease stores
// the grant and arms the timer. Shard mutex held, before the grant, with
// x.h.since set to now: when it fails, nothing else has changed.
func (l *leases) start(x *extra, token uint64, now int64) error {
	x.token = token
	if !x.lease {
		x.expires.Store(x.end(now))
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if y := l.keys[x.key]; y != nil && y != x {
		return fmt.Errorf("%w: lease key in use", table.ErrInvalid)
	}
	x.expires.Store(x.end(now))
	if l.store != nil {
		if err := l.store.Grant(x.record()); err != nil {
			return fmt.Errorf("%w: %w", ErrLeaseNotDurable, err)
		}
	}
	l.keys[x.key] = x
	x.held = true
	l.t.nLeases.Add(1)
	l.push(x)
	return nil
}

// end forgets x, a holder that leaves the held list (or, waiting, the
// queue). Shard mutex held.
func (l *leases) end(x *extra) {
	if !x.lease {
		return
	}
	l.mu.Lock()
	l.endLocked(x)
	l.mu.Unlock()
}

func (l *leases) endLocked(x *extra) {
	if l.keys[x.key] == x {
		delete(l.keys, x.key)
	}
	if !x.held {
		return
	}
	x.held = false
	l.t.nLeases.Add(-1)
	if x.idx >= 0 {
		l.remove(x)
	}
	if l.store != nil {
		_ = l.store.End(x.key) // see LeaseStore.End
	}
}

// retrySoon serves the queues again in a second, once however often it is
// asked meanwhile: a lease waiter whose grant could not be stored stays at
// the head of its queue, and a free name may have nothing else to wake it.
func (l *leases) retrySoon() {
	if l.retrying.CompareAndSwap(false, true) {
		time.AfterFunc(time.Second, func() {
			l.retrying.Store(false)
			l.t.serveAll()
		})
	}
}

// The heap, by Expires, through container/heap. leases.mu held.

// leaseHeap is heap.Interface over the held leases; each keeps its index
// (idx) so that a renew or a release finds its slot at once.
type leaseHeap []*extra

func (h leaseHeap) Len() int           { return len(h) }
func (h leaseHeap) Less(i, j int) bool { return h[i].expires.Load() < h[j].expires.Load() }
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = int32(i), int32(j)
}
func (h *leaseHeap) Push(x any) {
	e := x.(*extra)
	e.idx = int32(len(*h))
	*h = append(*h, e)
}
func (h *leaseHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}

func (l *leases) push(x *extra) {
	heap.Push(&l.heap, x)
	l.arm()
}

func (l *leases) remove(x *extra) {
	heap.Remove(&l.heap, int(x.idx))
	if cap(l.heap) > 1024 && len(l.heap) < cap(l.heap)/4 {
		// Give back what a crowd of leases left.
		l.heap = append(make(leaseHeap, 0, 2*len(l.heap)), l.heap...)
	}
	l.arm()
}

// fix moves x after its Expires changed.
func (l *leases) fix(x *extra) {
	heap.Fix(&l.heap, int(x.idx))
	l.arm()
}

// arm sets the timer for the earliest Expires. It fires on the time of the
// table's clock: with a clock of a test's making it may fire early or late,
// and the expiry then goes by that clock (see expireDue).
func (l *leases) arm() {
	if len(l.heap) == 0 {
		if l.timer != nil && l.armed != 0 {
			l.timer.Stop()
		}
		l.armed = 0
		return
	}
	at := l.heap[0].expires.Load()
	if at == l.armed {
		return
	}
	d := time.Duration(at - l.t.now())
	if l.timer == nil {
		l.timer = time.AfterFunc(d, l.t.expireDue)
	} else {
		l.timer.Reset(d)
	}
	l.armed = at
}

// expireDue ends every lease whose Expires has come, by the table's clock,
// as ReleaseLease would, and counts them in Counters.Expired. The timer
// calls it; tests with a clock of their own call it too.
func (t *Table) expireDue() {
	l := &t.leases
	l.mu.Lock()
	l.armed = 0 // the timer fired, or will find nothing
	now := t.now()
	var due []*extra
	for len(l.heap) > 0 && l.heap[0].expires.Load() <= now {
		x := l.heap[0]
		l.remove(x)
		due = append(due, x)
	}
	l.arm()
	l.mu.Unlock()
	for _, x := range due {
		t.endLease(x, true)
	}
}

// endLease releases the held lease x as ReleaseLease does, and reports
// whether it did. due: it is ending at its Expires, counted in Expired
// before the waiters are told, and is left held (and put back in the heap)
// if a renew moved that meanwhile; otherwise it is left to expire if its
// Expires has passed.
func (t *Table) endLease(x *extra, due bool) (table.Lease, bool) {
	h := x.h
	e := h.entry
	s := t.shard(e.name)
	var one [4]*holder
	s.mu.Lock()
	if h.state != stateHeld {
		s.mu.Unlock()
		return table.Lease{}, false
	}
	l := &t.leases
	l.mu.Lock()
	past := x.expires.Load() <= t.now()
	if !x.held || past != due {
		if x.held && x.idx < 0 {
			l.push(x) // renewed after it was taken from the heap
		}
		l.mu.Unlock()
		s.mu.Unlock()
		return table.Lease{}, false
	}
	li := x.info()
	l.endLocked(x)
	l.mu.Unlock()
	if due {
		t.expired.Add(1)
	}
	unlinkFrom(&e.held, &e.htail, h)
	e.nheld--
	t.held.Add(-1)
	if h.mode == table.Exclusive {
		e.nexcl--
	}
	h.state = stateGone
	h.next, h.prev = nil, nil
	granted := t.serveQueue(e, one[:0])
	t.dropIfIdle(s, e)
	s.mu.Unlock()
	t.notify(granted)
	return li, true
}

// held returns the lease with key if it is held and unexpired now.
func (l *leases) held(key table.LeaseKey) *extra {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked(key)
}

func (l *leases) heldLocked(key table.LeaseKey) *extra {
	x := l.keys[key]
	if x == nil || !x.held || x.expires.Load() <= l.t.now() {
		return nil
	}
	return x
}

// Renew sets the Expires of the lease with key to now plus ttl (0 or less:
// the TTL it was granted with), never past its grant plus its maximum hold,
// and returns it (see table.Table). With a LeaseStore that cannot store the
// renewal it refuses with ErrLeaseNotDurable (table.ErrUnavailable) and
// the lease is left as it was.
func (t *Table) Renew(key table.LeaseKey, ttl time.Duration) (table.Lease, error) {
	l := &t.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	x := l.heldLocked(key)
	if x == nil {
		return table.Lease{}, table.ErrNoLease
	}
	if ttl <= 0 {
		ttl = time.Duration(x.ttl)
	}
	exp := t.now() + int64(ttl)
	if x.maxHold > 0 {
		exp = min(exp, x.h.since+x.maxHold)
	}
	if l.store != nil {
		if err := l.store.Renew(key, time.Unix(0, exp)); err != nil {
			return table.Lease{}, fmt.Errorf("%w: %w", ErrLeaseNotDurable, err)
		}
	}
	x.expires.Store(exp)
	l.fix(x)
	return x.info(), nil
}

// ReleaseLease releases the lease with key, grants the waiters that can go
// now, telling them before it returns, and returns the lease as it was; an
// expired, released or unknown key is table.ErrNoLease.
func (t *Table) ReleaseLease(key table.LeaseKey) (table.Lease, error) {
	x := t.leases.held(key)
	if x == nil {
		return table.Lease{}, table.ErrNoLease
	}
	li, ok := t.endLease(x, false)
	if !ok {
		return table.Lease{}, table.ErrNoLease
	}
	return li, nil
}

// LookupLease returns the lease with key, or table.ErrNoLease when it is
// not held (never granted, expired, released, broken).
func (t *Table) LookupLease(key table.LeaseKey) (table.Lease, error) {
	l := &t.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	x := l.heldLocked(key)
	if x == nil {
		return table.Lease{}, table.ErrNoLease
	}
	return x.info(), nil
}

// silent is the Notifier of the owners of re-held leases, which nobody is
// told about.
type silent struct{}

func (silent) Granted(table.Holder)     {}
func (silent) Lost(table.Holder, error) {}

// restore re-holds the stored leases that are unexpired by the table's
// clock, with their tokens, and ends the others in the store. Called by New,
// before anything can be granted. A lease that cannot be held beside those
// already re-held (which a store that lost an end record may ask) is
// dropped: the leases with larger tokens go first, since a later grant
// means the earlier holder had let go.
func (t *Table) restore(recs []LeaseRecord) {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b LeaseRecord) int { return cmp.Compare(b.Token, a.Token) })
	l := &t.leases
	now := t.now()
	var top uint64
	for _, r := range recs {
		if l.keys[r.Key] != nil {
			continue // a store keeps one record per key; this is not one
		}
		if r.Expires.UnixNano() <= now || r.Token == 0 {
			_ = l.store.End(r.Key)
			continue
		}
		limit := int32(1)
		if r.Mode == table.Exclusive && r.Limit > 1 {
			limit = int32(r.Limit)
		}
		s := t.shard(r.Name)
		e := s.m[r.Name]
		if e == nil {
			e = &entry{name: r.Name}
		}
		info := r.Info
		info.Addr = ""
		h := &holder{entry: e, owner: &owner{info: info, notifier: silent{}}, mode: r.Mode, limit: limit,
			since: r.Since.UnixNano(), state: stateHeld, token: r.Token}
		if (r.Mode == table.Exclusive && e.nexcl > 0 && e.limit != limit) || !e.compatible(h) {
			_ = l.store.End(r.Key)
			continue
		}
		x := &extra{h: h, key: r.Key, lease: true, held: true, ttl: int64(r.TTL), maxHold: int64(r.MaxHold),
			token: r.Token, idx: -1}
		x.expires.Store(r.Expires.UnixNano())
		h.x = x
		if s.m[r.Name] == nil {
			s.m[r.Name] = e
			t.names.Add(1)
		}
		if h.mode == table.Exclusive {
			e.limit = limit
			e.nexcl++
		}
		e.mode = h.mode
		e.token = max(e.token, r.Token)
		// At the head: the larger tokens came first, so the list ends
		// oldest first.
		h.next = e.held
		if e.held != nil {
			e.held.prev = h
		} else {
			e.htail = h
		}
		e.held = h
		e.nheld++
		t.held.Add(1)
		t.nLeases.Add(1)
		l.keys[r.Key] = x
		l.mu.Lock()
		l.push(x)
		l.mu.Unlock()
		top = max(top, r.Token)
	}
	if m, ok := t.tokens.(*memTokens); ok {
		// Tokens in memory start from 1: the next one must be above the
		// tokens of the leases re-held.
		for n := m.n.Load(); n < top && !m.n.CompareAndSwap(n, top); n = m.n.Load() {
		}
	}
}
