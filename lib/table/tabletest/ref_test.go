package tabletest_test

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
	"github.com/tnl-lock/tnl/lib/table/tabletest"
)

// TestConformance runs the suite on the reference table below: the suite
// passes a table that keeps the rules.
func TestConformance(t *testing.T) {
	tabletest.Run(t, func(t *testing.T) table.Table { return newRef("") })
}

// TestConformanceTellsLater runs the suite on the reference table made to
// tell the grants and losses of Cancel, ReleaseAll and Break after they
// return, from another goroutine: the interface allows it, so the suite
// passes it too.
func TestConformanceTellsLater(t *testing.T) {
	tabletest.Run(t, func(t *testing.T) table.Table { return newRef("tell-later") })
}

// ref is a lock table written to be obviously right rather than fast: one
// mutex around everything, a slice of holders and a slice of waiters per
// name, and every rule a loop. The suite's own tests run on it, and on
// copies of it broken on purpose (bug, see broken_test.go).
type ref struct {
	bug string // "": none

	mu       sync.Mutex
	names    map[string]*refName
	tok      uint64
	counters table.Counters                // Names is len(names)
	pending  []*refHolder                  // bug "late-grant": grants not told yet
	leases   map[table.LeaseKey]*refHolder // held or waiting
}

type refName struct {
	held, queue []*refHolder
	token       uint64 // latest grant
	tok         uint64 // bug "token": this name's own counter
}

type refOwner struct {
	t       *ref
	info    table.Info
	n       table.Notifier
	holders []*refHolder // ref.mu
}

const (
	waiting = iota
	held
	gone
)

type refHolder struct {
	name  string
	mode  table.Mode
	limit int // 1 for shared requests
	owner *refOwner
	token atomic.Uint64 // read by Token without ref.mu, e.g. inside a Notifier
	state int           // ref.mu
	since time.Time     // ref.mu

	lease   bool // a lease request
	key     table.LeaseKey
	ttl     time.Duration
	maxHold time.Duration
	expires time.Time   // ref.mu; of a holder granted with a TTL or a maximum hold
	timer   *time.Timer // ref.mu; ends a held lease
}

func newRef(bug string) *ref {
	return &ref{bug: bug, names: map[string]*refName{}, leases: map[table.LeaseKey]*refHolder{}}
}

func (o *refOwner) Info() *table.Info { return &o.info }

func (o *refOwner) Count() int {
	o.t.mu.Lock()
	defer o.t.mu.Unlock()
	return len(o.holders)
}

func (h *refHolder) Name() string       { return h.name }
func (h *refHolder) Mode() table.Mode   { return h.mode }
func (h *refHolder) Token() uint64      { return h.token.Load() }
func (h *refHolder) Owner() table.Owner { return h.owner }
func (o *refOwner) drop(h *refHolder) {
	o.holders = slices.DeleteFunc(o.holders, func(x *refHolder) bool { return x == h })
}
func (n *refName) idle() bool  { return len(n.held) == 0 && len(n.queue) == 0 }
func (t *ref) Degraded() error { return nil }
func (t *ref) NewOwner(info table.Info, n table.Notifier) table.Owner {
	return &refOwner{t: t, info: info, n: n}
}

func (n *refName) fits(h *refHolder, bug string) bool {
	for _, o := range n.held {
		if o.mode != h.mode {
			return false
		}
	}
	if bug == "overfill" {
		return h.mode == table.Shared || len(n.held) <= h.limit
	}
	return h.mode == table.Shared || len(n.held) < h.limit
}

func (t *ref) Acquire(o table.Owner, r table.Request) (table.Holder, table.Result, error) {
	ow := o.(*refOwner)
	h := &refHolder{name: r.Name, mode: r.Mode, limit: 1, owner: ow, since: time.Now(), maxHold: r.MaxHold}
	if r.Mode == table.Exclusive && r.Limit > 1 {
		h.limit = r.Limit
	}
	t.mu.Lock()
	defer t.flush()
	if r.Lease != nil {
		if r.Lease.TTL <= 0 || t.leases[r.Lease.Key] != nil {
			t.counters.NotAcquired++
			return nil, table.Refused, table.ErrInvalid
		}
		h.lease, h.key, h.ttl = true, r.Lease.Key, r.Lease.TTL
	}
	n := t.names[r.Name]
	if n == nil {
		n = &refName{}
	}
	if h.mode == table.Exclusive && t.bug != "limit" {
		for _, x := range slices.Concat(n.held, n.queue) {
			if x.mode == table.Exclusive && x.limit != h.limit {
				t.counters.NotAcquired++
				return nil, table.Refused, table.ErrLimitMismatch
			}
		}
	}
	barge := t.bug == "barge" && h.mode == table.Shared
	if (len(n.queue) == 0 || barge) && n.fits(h, t.bug) {
		t.names[r.Name] = n
		t.grant(n, h)
		if !h.lease {
			ow.holders = append(ow.holders, h)
		}
		return h, table.Granted, nil
	}
	if !r.Wait {
		t.counters.NotAcquired++
		return nil, table.NotGranted, nil
	}
	t.names[r.Name] = n
	n.queue = append(n.queue, h)
	if h.lease {
		t.leases[h.key] = h
	}
	t.counters.Waiting++
	ow.holders = append(ow.holders, h)
	return h, table.Queued, nil
}

// grant makes h, not in any list, a holder of n; ref.mu is held.
func (t *ref) grant(n *refName, h *refHolder) {
	var tok uint64
	if t.bug == "token" {
		n.tok++
		tok = n.tok
	} else {
		t.tok++
		tok = t.tok
	}
	h.token.Store(tok)
	h.state = held
	h.since = time.Now()
	n.token = tok
	n.held = append(n.held, h)
	t.counters.Held++
	t.counters.Acquired++
	if h.maxHold > 0 {
		h.expires = h.since.Add(h.maxHold)
	}
	if h.lease {
		if end := h.since.Add(h.ttl); h.maxHold == 0 || end.Before(h.expires) {
			h.expires = end
		}
		t.leases[h.key] = h
		t.counters.Leases++
		h.owner.drop(h) // a granted lease belongs to no owner
		h.timer = time.AfterFunc(time.Until(h.expires), func() { t.expire(h) })
	}
}

// expire ends the lease h at its Expires, unless it was renewed or ended
// meanwhile.
func (t *ref) expire(h *refHolder) {
	t.mu.Lock()
	// Bug "renew-timer": ends a lease at the end it had before a renew.
	if h.state != held || (time.Now().Before(h.expires) && t.bug != "renew-timer") {
		t.mu.Unlock()
		return
	}
	t.counters.Expired++
	if t.bug == "expiry-no-grant" {
		// Takes the lease away but grants nobody.
		n := t.names[h.name]
		n.held = slices.DeleteFunc(n.held, func(x *refHolder) bool { return x == h })
		t.counters.Held--
		t.endLease(h)
		h.state = gone
		t.mu.Unlock()
		return
	}
	_, granted := t.remove(h)
	t.unlockAndTell(granted)
}

// endLease forgets the held lease h; ref.mu is held.
func (t *ref) endLease(h *refHolder) {
	h.timer.Stop()
	delete(t.leases, h.key)
	t.counters.Leases--
}

// heldLease returns the lease with key, held and unexpired; ref.mu is held.
func (t *ref) heldLease(key table.LeaseKey) *refHolder {
	h := t.leases[key]
	if h == nil || h.state != held || !time.Now().Before(h.expires) {
		return nil
	}
	return h
}

func (h *refHolder) info() table.Lease {
	return table.Lease{Name: h.name, Mode: h.mode, Token: h.token.Load(), Since: h.since, Expires: h.expires, TTL: h.ttl}
}

func (t *ref) Renew(key table.LeaseKey, ttl time.Duration) (table.Lease, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.heldLease(key)
	if h == nil {
		return table.Lease{}, table.ErrNoLease
	}
	if ttl <= 0 {
		ttl = h.ttl
	}
	h.expires = time.Now().Add(ttl)
	if end := h.since.Add(h.maxHold); h.maxHold > 0 && end.Before(h.expires) && t.bug != "renew-past-max-hold" {
		h.expires = end
	}
	if t.bug != "renew-timer" {
		h.timer.Reset(time.Until(h.expires))
	}
	return h.info(), nil
}

func (t *ref) ReleaseLease(key table.LeaseKey) (table.Lease, error) {
	t.mu.Lock()
	h := t.heldLease(key)
	if h == nil {
		t.mu.Unlock()
		return table.Lease{}, table.ErrNoLease
	}
	li := h.info()
	_, granted := t.remove(h)
	t.unlockAndTell(granted)
	return li, nil
}

func (t *ref) LookupLease(key table.LeaseKey) (table.Lease, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.heldLease(key)
	if h == nil {
		return table.Lease{}, table.ErrNoLease
	}
	return h.info(), nil
}

// serve grants the waiters at the head of n's queue while they fit, and
// returns them; ref.mu is held.
func (t *ref) serve(n *refName) []*refHolder {
	var granted []*refHolder
	for len(n.queue) > 0 {
		i := 0
		if t.bug == "fifo" {
			i = len(n.queue) - 1
		}
		h := n.queue[i]
		if !n.fits(h, t.bug) {
			break
		}
		n.queue = slices.Delete(n.queue, i, i+1)
		t.counters.Waiting--
		t.grant(n, h)
		granted = append(granted, h)
	}
	return granted
}

// remove takes h, held or waiting, out of the table and returns whether it
// was held and whom that let in; ref.mu is held.
func (t *ref) remove(h *refHolder) (wasHeld bool, granted []*refHolder) {
	n := t.names[h.name]
	switch h.state {
	case held:
		n.held = slices.DeleteFunc(n.held, func(x *refHolder) bool { return x == h })
		t.counters.Held--
		wasHeld = true
		if h.lease {
			t.endLease(h)
		}
	case waiting:
		n.queue = slices.DeleteFunc(n.queue, func(x *refHolder) bool { return x == h })
		t.counters.Waiting--
		if h.lease {
			delete(t.leases, h.key)
		}
	default:
		return false, nil
	}
	h.state = gone
	h.owner.drop(h)
	granted = t.serve(n)
	t.forgetIfIdle(h.name)
	return wasHeld, granted
}

func (t *ref) forgetIfIdle(name string) {
	if n := t.names[name]; n != nil && n.idle() {
		delete(t.names, name)
	}
}

// unlockAndTell unlocks ref.mu and then tells the granted, so that their
// Notifiers may call back into the table.
func (t *ref) unlockAndTell(granted []*refHolder) {
	if t.bug == "notify-locked" {
		t.tell(granted)
		t.mu.Unlock()
		return
	}
	if t.bug == "late-grant" {
		t.pending = append(t.pending, granted...)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.tell(granted)
}

// unlockAndTellSome is unlockAndTell for the calls whose grants the
// interface does not promise to tell before they return: with variant
// "tell-later", a table that keeps the rules, it tells them on a goroutine
// of their own, as a table that hears of its grants from elsewhere may.
func (t *ref) unlockAndTellSome(granted []*refHolder) {
	if t.bug == "tell-later" {
		t.mu.Unlock()
		go t.tell(granted)
		return
	}
	t.unlockAndTell(granted)
}

func (t *ref) tell(granted []*refHolder) {
	for _, h := range granted {
		h.owner.n.Granted(h)
	}
}

// flush unlocks ref.mu for Acquire; under bug "late-grant" it tells the
// grants an earlier call left untold.
func (t *ref) flush() {
	p := t.pending
	t.pending = nil
	t.mu.Unlock()
	t.tell(p)
}

func (t *ref) Release(hh table.Holder) bool {
	h := hh.(*refHolder)
	t.mu.Lock()
	wasHeld, granted := t.remove(h)
	t.unlockAndTell(granted)
	return wasHeld
}

func (t *ref) Cancel(hh table.Holder) bool {
	h := hh.(*refHolder)
	t.mu.Lock()
	if h.state != waiting && (t.bug != "cancel-held" || h.state != held) {
		t.mu.Unlock()
		return false
	}
	_, granted := t.remove(h)
	if t.bug == "count" {
		t.counters.Waiting++
	}
	t.unlockAndTellSome(granted)
	return true
}

func (t *ref) ReleaseAll(o table.Owner) {
	ow := o.(*refOwner)
	t.mu.Lock()
	// The waiters first, so that none of them is granted on the way.
	hs := slices.Clone(ow.holders)
	if t.bug == "release-all-leases" {
		// Releases the owner's leases too.
		for _, x := range t.leases {
			if x.owner == ow && x.state == held {
				hs = append(hs, x)
			}
		}
	}
	slices.SortStableFunc(hs, func(a, b *refHolder) int { return a.state - b.state })
	var granted []*refHolder
	for _, h := range hs {
		_, g := t.remove(h)
		granted = append(granted, g...)
	}
	t.unlockAndTellSome(granted)
}

func (t *ref) Break(name string) int {
	t.mu.Lock()
	n := t.names[name]
	if n == nil {
		t.mu.Unlock()
		return 0
	}
	broken := n.held
	n.held = nil
	for _, h := range broken {
		h.state = gone
		h.owner.drop(h)
		t.counters.Held--
		if h.lease {
			t.endLease(h)
		}
	}
	granted := t.serve(n)
	t.forgetIfIdle(name)
	t.mu.Unlock()
	tell := func() {
		if t.bug != "break" {
			for _, h := range broken {
				if !h.lease { // a lease has no owner to tell
					h.owner.n.Lost(h, table.ErrBroken)
				}
			}
		}
		t.tell(granted)
	}
	if t.bug == "tell-later" {
		go tell()
	} else {
		tell()
	}
	return len(broken)
}

func (t *ref) Find(o table.Owner, name string) table.Holder {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.names[name]; n != nil {
		for _, h := range slices.Concat(n.held, n.queue) {
			if h.owner == o && !(h.lease && h.state == held) {
				return h
			}
		}
	}
	return nil
}

func (t *ref) Held(h table.Holder) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return h.(*refHolder).state == held
}

func (t *ref) FirstNames(dst []string, max int) ([]string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var all []string
	for name := range t.names {
		all = append(all, name)
	}
	slices.Sort(all)
	max = min(len(all), max)
	return append(dst[:0], all[:max]...), len(all) > max
}

func (t *ref) List(name string, cur table.Cursor, max int, li *table.LockInfo) (table.Cursor, bool) {
	li.Holders, li.Waiters = li.Holders[:0], li.Waiters[:0]
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.names[name]
	if n == nil {
		return cur, false
	}
	li.Name, li.Mode, li.Limit, li.Token = name, table.Exclusive, 1, n.token
	if len(n.held) > 0 {
		li.Mode = n.held[0].mode
	}
	for _, h := range slices.Concat(n.held, n.queue) {
		if h.mode == table.Exclusive {
			li.Limit = h.limit
		}
	}
	if cur.AtEnd {
		return cur, true
	}
	i := 0
	if cur.Last != nil {
		list := n.held
		if cur.InQ {
			list = n.queue
		}
		i = slices.Index(list, cur.Last.(*refHolder))
		if i < 0 && t.bug == "list-stale" {
			i = -1 // goes on from the start of the list
		} else if i < 0 {
			return cur, false
		}
		i++
	}
	for listed := 0; ; {
		list := n.held
		if cur.InQ {
			list = n.queue
		}
		if i >= len(list) {
			if cur.InQ || len(n.queue) == 0 {
				cur.AtEnd = true
				return cur, true
			}
			cur.InQ, cur.Last, i = true, nil, 0
			continue
		}
		if listed == max {
			return cur, true // not done: something follows
		}
		h := list[i]
		p := table.Party{Info: h.owner.info, Mode: h.mode, Limit: h.limit, Since: h.since, Lease: h.lease, Key: h.key}
		if cur.InQ {
			li.Waiters = append(li.Waiters, p)
		} else {
			p.Token = h.token.Load()
			p.Expires = h.expires
			if h.lease {
				p.Addr = ""
			}
			li.Holders = append(li.Holders, p)
		}
		cur.Last = h
		i++
		listed++
	}
}

func (t *ref) Counters() table.Counters {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.counters
	c.Names = int64(len(t.names))
	return c
}

func (t *ref) CountTimeout() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counters.NotAcquired++
}
