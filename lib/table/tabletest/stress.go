package tabletest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// stress is the state shared by the workers of the concurrent test.
type stress struct {
	tb     table.Table
	names  []*stressName
	byName map[string]*stressName
	errs   errList
	failed atomic.Bool
	ops    atomic.Int64
}

// stressName is one lock name and what its holders know of it.
type stressName struct {
	name  string
	limit int // the semaphore size of every exclusive request

	// occupancy: a holder enters after it learns of its grant and
	// leaves before it releases, so the record sees a subset of the
	// real holding time, and any overlap it finds is real.
	mu           sync.Mutex
	excl, shared int
	maxOut       uint64 // largest token of a holder that has left
	tokens       map[uint64]bool
}

func (s *stress) fail(format string, args ...any) {
	s.errs.add(format, args...)
	s.failed.Store(true)
}

// stressReq is one request of a worker's owner.
type stressReq struct {
	h    table.Holder
	n    *stressName
	mode table.Mode
}

// stressOwner is one owner of a worker: at most one request at a time.
type stressOwner struct {
	o    table.Owner
	id   int
	cur  *stressReq // nil, or the live request
	held bool       // cur is known to be held
}

// stressWorker is one goroutine with its owners; their Notifier sends
// grants to ch, which the worker reads.
type stressWorker struct {
	s      *stress
	rng    *rand.Rand
	owners []*stressOwner
	ch     chan table.Holder
	done   int
}

func (w *stressWorker) Granted(h table.Holder) {
	select {
	case w.ch <- h:
	default:
		w.s.fail("Granted would block: %d grants pending for one worker", len(w.ch))
	}
}

func (w *stressWorker) Lost(h table.Holder, why error) {
	w.s.fail("Lost(%q, %v) without a Break", h.Name(), why)
}

func (s *stress) newWorker(seed uint64, nOwners, firstID int) *stressWorker {
	w := &stressWorker{
		s:   s,
		rng: rand.New(rand.NewPCG(seed, 0x737472)),
		// Each owner has at most one request, and so one grant, in
		// flight, plus stale grants of requests withdrawn after their
		// grant: room for all, as Granted must not block.
		ch: make(chan table.Holder, 16*nOwners+128),
	}
	for i := range nOwners {
		id := firstID + i
		o := s.tb.NewOwner(table.Info{ClientID: fmt.Sprintf("o%d", id), PID: id}, w)
		w.owners = append(w.owners, &stressOwner{o: o, id: id})
	}
	return w
}

// take handles a grant told to one of w's owners.
func (w *stressWorker) take(h table.Holder) {
	for _, ow := range w.owners {
		if h.Owner() != ow.o {
			continue
		}
		// A grant of a request released since is stale.
		if ow.cur != nil && ow.cur.h == h && !ow.held {
			ow.held = true
			w.enter(ow.cur)
		}
		return
	}
	w.s.fail("grant for %s told to another worker's Notifier", ownerName(h.Owner()))
}

func (w *stressWorker) drain() {
	for {
		select {
		case h := <-w.ch:
			w.take(h)
		default:
			return
		}
	}
}

// await waits for one grant; false when the test is over.
func (w *stressWorker) await() bool {
	select {
	case h := <-w.ch:
		w.take(h)
		return true
	case <-time.After(deadline):
		w.s.fail("a waiter was not served within %v while nothing else happened on its worker", deadline)
		return false
	}
}

func (w *stressWorker) someHeld() *stressOwner {
	for _, ow := range w.owners {
		if ow.held {
			return ow
		}
	}
	return nil
}

func (w *stressWorker) run(ops int) {
	s := w.s
	defer func() { s.ops.Add(int64(w.done)) }()
	for w.done < ops && !s.failed.Load() {
		w.drain()
		if w.done%64 == 0 {
			if c := s.tb.Counters(); c.Held < 0 || c.Waiting < 0 || c.Names < 0 {
				s.fail("counters below zero: %+v", c)
			}
		}
		ow := w.owners[w.rng.IntN(len(w.owners))]
		switch {
		case ow.cur == nil:
			n := s.names[w.rng.IntN(len(s.names))]
			r := table.Request{Name: n.name, Wait: w.rng.IntN(8) != 0, Limit: n.limit}
			if w.rng.IntN(5) < 2 {
				r.Mode = table.Shared
			}
			h, res, err := s.tb.Acquire(ow.o, r)
			switch res {
			case table.Granted, table.Queued:
				if h == nil {
					s.fail("Acquire %v with no holder", resultName(res))
					return
				}
				ow.cur = &stressReq{h: h, n: n, mode: r.Mode}
				if res == table.Granted {
					ow.held = true
					w.enter(ow.cur)
				}
			case table.NotGranted:
				if r.Wait {
					s.fail("NotGranted to a request that would wait")
				}
			default:
				s.fail("Acquire %+v: %v, %v; every request agrees on the limit", r, resultName(res), err)
			}
		case ow.held:
			w.leave(ow.cur)
			if !s.tb.Release(ow.cur.h) {
				s.fail("Release of a held lock = false")
			}
			ow.cur, ow.held = nil, false
		case w.rng.IntN(8) == 0:
			// Withdraw; it may have been granted meanwhile, its grant
			// possibly still on the way.
			if s.tb.Release(ow.cur.h) {
				w.left(ow.cur)
			}
			ow.cur = nil
		case w.rng.IntN(7) == 0:
			// A wait that timed out, as the server ends it: when Cancel
			// fails, the grant is on its way through Granted.
			if s.tb.Cancel(ow.cur.h) {
				ow.cur = nil
			}
		case w.someHeld() != nil:
			h := w.someHeld()
			w.leave(h.cur)
			if !s.tb.Release(h.cur.h) {
				s.fail("Release of a held lock = false")
			}
			h.cur, h.held = nil, false
		default:
			// Wait for a grant, but only while holding nothing: a worker
			// that holds a lock keeps going and so releases it, and when
			// every worker waits, nothing is held and every head of a
			// queue can go.
			if !w.await() {
				return
			}
			continue
		}
		w.done++
	}
	for _, ow := range w.owners {
		if ow.held {
			w.leave(ow.cur)
		}
		s.tb.ReleaseAll(ow.o)
		if n := ow.o.Count(); n != 0 {
			s.fail("o%d: Count = %d after ReleaseAll", ow.id, n)
		}
		ow.cur, ow.held = nil, false
	}
}

// enter records that r's holder learnt of its grant.
func (w *stressWorker) enter(r *stressReq) {
	s, n := w.s, r.n
	tok := r.h.Token()
	n.mu.Lock()
	defer n.mu.Unlock()
	if tok == 0 {
		s.fail("%s: granted with token 0", n.name)
	}
	if n.tokens[tok] {
		s.fail("%s: token %d granted twice", n.name, tok)
	}
	n.tokens[tok] = true
	if r.mode == table.Shared {
		if n.excl > 0 {
			s.fail("%s: a shared holder beside %d exclusive ones", n.name, n.excl)
		}
		n.shared++
		return
	}
	if n.shared > 0 || n.excl >= n.limit {
		s.fail("%s: an exclusive holder (limit %d) beside %d exclusive and %d shared ones", n.name, n.limit, n.excl, n.shared)
	}
	if n.limit == 1 && tok <= n.maxOut {
		s.fail("%s: a plain lock granted with token %d, after a holder with token %d left", n.name, tok, n.maxOut)
	}
	n.excl++
}

// leave records that r's holder is about to release.
func (w *stressWorker) leave(r *stressReq) {
	n := r.n
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
func (w *stressWorker) left(r *stressReq) {
	n := r.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.maxOut = max(n.maxOut, r.h.Token())
}

// testConcurrent lets many goroutines, each with a few owners, call the
// table at once on a few names, exclusive, shared and semaphores, as the
// scheduler likes: releases, grants, withdrawals and Granted calls of one
// name interleave. The occupancy record checks that there are never more
// exclusive holders than the limit, never exclusive and shared holders
// together, never one token granted twice on a name, and that a plain
// lock's token is above that of every holder that left before it. Every
// waiter is served, and the table is empty at the end.
func testConcurrent(t *testing.T, tb table.Table) {
	workers, owners, opsPerWorker := 32, 3, 3000
	if testing.Short() {
		workers, opsPerWorker = 8, 500
	}
	s := &stress{tb: tb, byName: map[string]*stressName{}}
	for i, limit := range []int{1, 1, 3, 2} {
		n := &stressName{name: fmt.Sprint("c", i), limit: limit, tokens: map[uint64]bool{}}
		s.names = append(s.names, n)
		s.byName[n.name] = n
	}
	var ws []*stressWorker
	for i := range workers {
		ws = append(ws, s.newWorker(uint64(i), owners, i*owners))
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.run(opsPerWorker) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// The workers' own waits are bounded by the deadline; this bounds
	// a table call that never returns, generously, as the run itself
	// takes seconds under the race detector.
	withinFor(t, done, 12*deadline, "the concurrent workers")
	s.errs.report(t)
	if t.Failed() {
		return
	}
	checkEmpty(t, tb)
	t.Logf("%d operations", s.ops.Load())
}
