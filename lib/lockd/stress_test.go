package lockd_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

// stressDeadline bounds how long any waiter may wait in the concurrent
// tests before the test declares it never served. It is a failure
// detector, not a synchronisation: a passing run never waits for it.
const stressDeadline = 2 * time.Minute

// stress is the state shared by the workers of a concurrent test.
type stress struct {
	t      *testing.T
	tb     *lockd.Table
	names  []*stressName
	byName map[string]*stressName
	owners []table.Owner // all workers' owners; ClientID "oN" is owners[N]
	ctx    context.Context
	cancel context.CancelFunc
	failed atomic.Bool
	ops    atomic.Int64
	// serial: a test mutex per name is held around every table call
	serial bool
}

// stressName is one lock name. In TestConcurrentModel its mutex is held
// around every Acquire and Release of the name, so the order of the table's
// operations on it is known and its model can predict every grant.
type stressName struct {
	mu       sync.Mutex
	name     string
	prefer   int // usual semaphore size
	ref      refName
	notified []table.Holder // grants told by Granted during the current operation
	ops      int

	// occupancy, for TestConcurrentFree
	excl, shared int
	maxOut       uint64 // largest token of a holder that has left
	tokens       map[uint64]bool
}

func newStress(t *testing.T, o lockd.Options, names int) *stress {
	s := &stress{t: t, tb: lockd.New(o), byName: map[string]*stressName{}}
	s.ctx, s.cancel = context.WithTimeout(context.Background(), stressDeadline)
	t.Cleanup(s.cancel)
	for i := range names {
		n := &stressName{name: fmt.Sprintf("n%d", i), prefer: 1 + i%3, tokens: map[uint64]bool{}}
		s.names = append(s.names, n)
		s.byName[n.name] = n
	}
	return s
}

// fail reports a failure from any goroutine and stops every worker.
func (s *stress) fail(format string, args ...any) {
	s.t.Errorf(format, args...)
	s.failed.Store(true)
	s.cancel()
}

// stressOwner is one owner of a worker: at most one request at a time.
type stressOwner struct {
	o    table.Owner
	id   int
	cur  *refReq // nil, or the live request
	held bool    // cur is known to be held
}

// stressWorker is one goroutine with its owners. The owners' Notifier sends
// grants to ch, which the worker reads.
type stressWorker struct {
	s      *stress
	rng    *rand.Rand
	owners []stressOwner
	ch     chan table.Holder
	done   int // operations so far
}

func (s *stress) newWorker(seed uint64, nOwners int) *stressWorker {
	w := &stressWorker{
		s:   s,
		rng: rand.New(rand.NewPCG(seed, 0x737472)),
		// Each owner has at most one request and so one grant in flight,
		// plus stale grants of requests withdrawn after their grant, at
		// most one per other goroutine still inside its Release. Granted
		// must not block (the releaser may hold a test mutex), so room
		// for all.
		ch: make(chan table.Holder, 2*nOwners+128),
	}
	for range nOwners {
		id := len(s.owners)
		o := lockd.NewOwner(table.Info{ClientID: fmt.Sprintf("o%d", id), PID: id}, nil)
		lockd.SetNotifier(o, w)
		s.owners = append(s.owners, o)
		w.owners = append(w.owners, stressOwner{o: o, id: id})
	}
	return w
}

// Lost: the stress test breaks no lock.
func (w *stressWorker) Lost(table.Holder, error) {}

// Granted is called on the goroutine that released, inside its Release.
func (w *stressWorker) Granted(h table.Holder) {
	if w.s.serial {
		// The releasing goroutine holds n.mu here; the race detector
		// checks that claim.
		n := w.s.byName[h.Name()]
		n.notified = append(n.notified, h)
	}
	select {
	case w.ch <- h:
	default:
		w.s.fail("Granted would block: %d grants pending for one worker", len(w.ch))
	}
}

// drain takes in the grants that arrived, without waiting.
func (w *stressWorker) drain(mark func(*stressOwner)) {
	for {
		select {
		case h := <-w.ch:
			w.take(h, mark)
		default:
			return
		}
	}
}

// await waits for one grant; false when the test is over.
func (w *stressWorker) await(mark func(*stressOwner)) bool {
	select {
	case h := <-w.ch:
		w.take(h, mark)
		return true
	case <-w.s.ctx.Done():
		if !w.s.failed.Load() {
			w.s.fail("a waiter was not served within %v", stressDeadline)
		}
		return false
	}
}

func (w *stressWorker) take(h table.Holder, mark func(*stressOwner)) {
	for i := range w.owners {
		ow := &w.owners[i]
		if h.Owner() == ow.o {
			// A grant of a request released since is stale.
			if ow.cur != nil && ow.cur.h == h && !ow.held {
				ow.held = true
				if mark != nil {
					mark(ow)
				}
			}
			return
		}
	}
	w.s.fail("grant for %s delivered to the wrong Notifier", h.Owner().Info().ClientID)
}

func (w *stressWorker) someHeld() *stressOwner {
	for i := range w.owners {
		if w.owners[i].held {
			return &w.owners[i]
		}
	}
	return nil
}

// request draws a random request: mostly the name's usual size, sometimes
// another one; mostly waiting.
func (w *stressWorker) request() (*stressName, table.Request) {
	n := w.s.names[w.rng.IntN(len(w.s.names))]
	r := table.Request{Name: n.name, Wait: w.rng.IntN(8) != 0}
	switch p := w.rng.IntN(16); {
	case p < 7:
		r.Mode = table.Shared
	case p < 15:
		r.Limit = n.prefer
	default:
		r.Limit = 1 + w.rng.IntN(3)
	}
	return n, r
}

// TestConcurrentModel runs many goroutines, each with two owners, against a
// few names. A test mutex per name is held around every Acquire and Release
// of that name (the grants of a Release are reported by Granted inside it),
// so the order in which requests reach the table is known and each name's
// reference model predicts every outcome: FIFO grant order, never two
// exclusive holders, never more than N, never mixed modes, tokens strictly
// increasing per name. Names proceed in parallel and share shards, tokens
// and counters; the grants reach the waiting goroutines over channels.
func TestConcurrentModel(t *testing.T) {
	const workers, owners, names, opsPerWorker = 64, 2, 6, 15_625 // 1,000,000 operations
	s := newStress(t, lockd.Options{MaxWaiters: stressMaxWaiters, Now: func() int64 { return 0 }}, names)
	s.serial = true
	var ws []*stressWorker
	for i := range workers {
		ws = append(ws, s.newWorker(uint64(i), owners))
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.runModel(opsPerWorker) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, n := range s.names {
		if !n.ref.idle() {
			t.Errorf("%s: model not empty at the end", n.name)
		}
	}
	checkEmpty(t, s.tb)
	t.Logf("%d operations", s.ops.Load())
}

const stressMaxWaiters = 24

func (w *stressWorker) runModel(ops int) {
	defer func() { w.s.ops.Add(int64(w.done)) }()
	for w.done < ops && !w.s.failed.Load() {
		w.drain(nil)
		ow := &w.owners[w.rng.IntN(len(w.owners))]
		switch {
		case ow.cur == nil:
			w.acquireModel(ow)
		case ow.held || w.rng.IntN(8) == 0:
			w.releaseModel(ow) // a release or a withdrawn wait
		case w.rng.IntN(7) == 0:
			w.cancelModel(ow) // a wait that timed out
		case w.someHeld() != nil:
			w.releaseModel(w.someHeld())
		default:
			// Wait for a grant, but only while holding nothing: a goroutine
			// that holds a lock keeps going and so eventually releases it,
			// and when every goroutine waits, nothing is held and every
			// head of queue can go.
			if !w.await(nil) {
				return
			}
		}
	}
	for i := range w.owners {
		if w.owners[i].cur != nil && !w.s.failed.Load() {
			w.releaseModel(&w.owners[i])
		}
	}
}

func (w *stressWorker) acquireModel(ow *stressOwner) {
	s := w.s
	n, req := w.request()
	r := &refReq{name: n.name, owner: ow.id, mode: req.Mode, limit: refLimit(req.Mode, req.Limit)}
	w.done++
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notified = n.notified[:0]
	wantRes, wantErr := n.ref.acquire(r, req.Wait, stressMaxWaiters)
	h, res, err := s.tb.Acquire(ow.o, req)
	if res != wantRes || err != wantErr {
		s.fail("%s: acquire %v limit %d wait %v by o%d: got %v, %v; want %v, %v",
			n.name, req.Mode, req.Limit, req.Wait, ow.id, res, err, wantRes, wantErr)
		return
	}
	if len(n.notified) != 0 {
		s.fail("%s: Acquire granted others", n.name)
	}
	if res == table.Granted || res == table.Queued {
		r.h = h
		ow.cur, ow.held = r, res == table.Granted
		if ow.held {
			n.granted(s, r)
		}
	}
	n.check(s)
}

func (w *stressWorker) releaseModel(ow *stressOwner) {
	s := w.s
	r := ow.cur
	n := s.byName[r.name]
	w.done++
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notified = n.notified[:0]
	wasHeld, want := n.ref.release(r)
	if got := s.tb.Release(r.h); got != wasHeld {
		s.fail("%s: Release of o%d's %v: got %v, want %v", n.name, ow.id, r.mode, got, wasHeld)
		return
	}
	ow.cur, ow.held = nil, false
	if len(n.notified) != len(want) {
		s.fail("%s: release granted %d, want %d (FIFO)", n.name, len(n.notified), len(want))
		return
	}
	for i, g := range want {
		if n.notified[i] != g.h {
			s.fail("%s: release granted o%s's request as grant %d, want o%d's (FIFO)",
				n.name, n.notified[i].Owner().Info().ClientID, i, g.owner)
			return
		}
		n.granted(s, g)
	}
	n.check(s)
}

func (w *stressWorker) cancelModel(ow *stressOwner) {
	s := w.s
	r := ow.cur
	n := s.byName[r.name]
	w.done++
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notified = n.notified[:0]
	ok, want := n.ref.withdraw(r)
	if got := s.tb.Cancel(r.h); got != ok {
		s.fail("%s: Cancel of o%d's %v: got %v, want %v", n.name, ow.id, r.mode, got, ok)
		return
	}
	if ok {
		ow.cur = nil
	} else if slices.Contains(n.ref.held, r) {
		ow.held = true // granted meanwhile; its Granted has come and gone
	} else {
		s.fail("%s: o%d's request neither waits nor holds", n.name, ow.id)
		return
	}
	if len(n.notified) != len(want) {
		s.fail("%s: Cancel granted %d, want %d (FIFO)", n.name, len(n.notified), len(want))
		return
	}
	for i, g := range want {
		if n.notified[i] != g.h {
			s.fail("%s: Cancel granted %s's request as grant %d, want o%d's (FIFO)",
				n.name, n.notified[i].Owner().Info().ClientID, i, g.owner)
			return
		}
		n.granted(s, g)
	}
	n.check(s)
}

// granted checks the token of a new grant; n.mu is held.
func (n *stressName) granted(s *stress, r *refReq) {
	if r.h.Token() <= n.ref.token {
		s.fail("%s: token %d after %d", n.name, r.h.Token(), n.ref.token)
	}
	r.token, n.ref.token = r.h.Token(), r.h.Token()
}

// check applies the rules to the model, and every few operations compares
// the table's holders and waiters with it; n.mu is held.
func (n *stressName) check(s *stress) {
	if err := n.ref.checkRules(); err != nil {
		s.fail("%s: %v", n.name, err)
	}
	if n.ops++; n.ops%16 != 0 {
		return
	}
	got := s.tb.Snapshot([]string{n.name}, 0)
	if n.ref.idle() {
		if len(got) != 0 {
			s.fail("%s: idle, but Snapshot shows %+v", n.name, got)
		}
	} else if len(got) != 1 || !n.ref.matches(&got[0], n.name, s.owners) {
		s.fail("%s: Snapshot\n got %+v\nwant %+v", n.name, got, n.ref.info(n.name, s.owners))
	}
}

// TestConcurrentFree lets the workers call the table with no test lock
// around it, so releases, grants, withdrawals and Granted calls of one name
// interleave as the scheduler likes. A holder enters a per-name occupancy
// record after it learns of its grant and leaves it before it releases; the
// record sees a subset of the real holding time, so any overlap it finds is
// real: never two exclusive holders, never more than N, never mixed modes.
// Tokens are unique per name, and an exclusive grant of a plain lock has a
// token above every holder that left before it. Every waiter is served.
func TestConcurrentFree(t *testing.T) {
	const workers, owners, names, opsPerWorker = 64, 2, 4, 2_000
	s := newStress(t, lockd.Options{}, names)
	var ws []*stressWorker
	for i := range workers {
		ws = append(ws, s.newWorker(uint64(1000+i), owners))
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.runFree(opsPerWorker) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkEmpty(t, s.tb)
	t.Logf("%d operations", s.ops.Load())
}

func (w *stressWorker) runFree(ops int) {
	s := w.s
	defer func() { s.ops.Add(int64(w.done)) }()
	enter := func(ow *stressOwner) { w.enter(ow.cur) }
	for w.done < ops && !s.failed.Load() {
		w.drain(enter)
		if w.done%64 == 0 {
			if c := s.tb.Counters(); c.Held < 0 || c.Waiting < 0 || c.Names < 0 {
				s.fail("counters below zero: %+v", c)
			}
		}
		ow := &w.owners[w.rng.IntN(len(w.owners))]
		switch {
		case ow.cur == nil:
			n, req := w.request()
			h, res, err := s.tb.Acquire(ow.o, req)
			switch res {
			case table.Granted, table.Queued:
				ow.cur = &refReq{h: h, name: n.name, owner: ow.id, mode: req.Mode, limit: refLimit(req.Mode, req.Limit)}
				if res == table.Granted {
					ow.held = true
					w.enter(ow.cur)
				}
			case table.Refused:
				if err != table.ErrLimitMismatch && err != table.ErrQueueFull {
					s.fail("refused with %v", err)
				}
			}
		case ow.held:
			w.leave(ow.cur)
			if !s.tb.Release(ow.cur.h) {
				s.fail("Release of a held lock reported false")
			}
			ow.cur, ow.held = nil, false
		case w.rng.IntN(8) == 0:
			// Withdraw; it may have been granted meanwhile, its Granted
			// possibly still on the way.
			if s.tb.Release(ow.cur.h) {
				w.left(ow.cur)
			}
			ow.cur = nil
		case w.rng.IntN(7) == 0:
			// A wait that timed out, as lib/server ends it: if Cancel
			// fails, the grant is on its way through Granted.
			if s.tb.Cancel(ow.cur.h) {
				ow.cur = nil
			}
		case w.someHeld() != nil:
			h := w.someHeld()
			w.leave(h.cur)
			if !s.tb.Release(h.cur.h) {
				s.fail("Release of a held lock reported false")
			}
			h.cur, h.held = nil, false
		default:
			if !w.await(enter) {
				return
			}
			continue
		}
		w.done++
	}
	for i := range w.owners {
		ow := &w.owners[i]
		if ow.held {
			w.leave(ow.cur)
		}
		s.tb.ReleaseAll(ow.o)
		if ow.o.Count() != 0 {
			s.fail("o%d: Count %d after ReleaseAll", ow.id, ow.o.Count())
		}
		ow.cur, ow.held = nil, false
	}
}

// enter records that r's holder learnt of its grant.
func (w *stressWorker) enter(r *refReq) {
	s := w.s
	n := s.byName[r.name]
	tok := r.h.Token()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tokens[tok] {
		s.fail("%s: token %d granted twice", n.name, tok)
	}
	n.tokens[tok] = true
	if r.mode == table.Shared {
		if n.excl > 0 {
			s.fail("%s: shared holder beside %d exclusive", n.name, n.excl)
		}
		n.shared++
		return
	}
	if n.shared > 0 || n.excl >= r.limit {
		s.fail("%s: exclusive holder (limit %d) beside %d exclusive, %d shared", n.name, r.limit, n.excl, n.shared)
	}
	if r.limit == 1 && tok <= n.maxOut {
		s.fail("%s: plain lock granted with token %d, after a holder with token %d left", n.name, tok, n.maxOut)
	}
	n.excl++
}

// leave records that r's holder is about to release.
func (w *stressWorker) leave(r *refReq) {
	n := w.s.byName[r.name]
	n.mu.Lock()
	defer n.mu.Unlock()
	if r.mode == table.Shared {
		n.shared--
	} else {
		n.excl--
	}
	n.maxOut = max(n.maxOut, r.h.Token())
}

// left records the token of a holder that was granted and released before
// it learnt of the grant.
func (w *stressWorker) left(r *refReq) {
	n := w.s.byName[r.name]
	n.mu.Lock()
	defer n.mu.Unlock()
	n.maxOut = max(n.maxOut, r.h.Token())
}
