package server

import (
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Memory after a surge of connections.
//
// Every connection costs the server a goroutine stack and buffers. When a
// surge of them ends (a flood of idle or hostile clients, a herd of cron
// jobs), the Go runtime keeps the freed pages until its next collection and
// hands them back to the kernel slowly after that: an idle server would sit
// on its peak for minutes. So once the open connections fall to a quarter
// of a peak of at least surgeMin, and have stopped falling, the server
// collects and returns its free memory at once (debug.FreeOSMemory). That
// is a full collection, whose cost grows with the live heap (a million held
// locks make it tens of milliseconds), so the next one waits at least
// reclaimEvery and at least reclaimCost times as long as this one took.
// Nothing else waits on it: it runs in a goroutine of its own that exists
// only while it works.
const (
	surgeMin       = 256
	reclaimQuiet   = 200 * time.Millisecond
	reclaimMaxWait = 2 * time.Second
	reclaimEvery   = time.Second
	reclaimCost    = 20
)

type reclaimer struct {
	peak    atomic.Int64 // most connections open at once since the last return
	running atomic.Bool
	next    atomic.Int64 // UnixNano before which no return starts
	stop    chan struct{}
	stopped atomic.Bool
	runs    atomic.Int64 // returns done, for tests
}

func newReclaimer() *reclaimer { return &reclaimer{stop: make(chan struct{})} }

// opened records n connections open.
func (r *reclaimer) opened(n int64) {
	for p := r.peak.Load(); n > p; p = r.peak.Load() {
		if r.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// closed records n connections open after one closed, and starts a return
// when a surge has ended.
func (r *reclaimer) closed(s *Server, n int64) {
	p := r.peak.Load()
	if p < surgeMin || n > p/4 || r.stopped.Load() || !r.running.CompareAndSwap(false, true) {
		return
	}
	go r.run(s)
}

func (r *reclaimer) run(s *Server) {
	defer r.running.Store(false)
	if wait := time.Until(time.Unix(0, r.next.Load())); wait > 0 && !r.sleep(wait) {
		return
	}
	// Wait for the rest of the surge to leave: until the count stops
	// falling for reclaimQuiet, or reclaimMaxWait.
	start, prev := time.Now(), s.nconns.Load()
	for time.Since(start) < reclaimMaxWait {
		if !r.sleep(reclaimQuiet) {
			return
		}
		n := s.nconns.Load()
		if n >= prev {
			break
		}
		prev = n
	}
	t0 := time.Now()
	debug.FreeOSMemory()
	took := time.Since(t0)
	n := s.nconns.Load()
	s.log.Info("returned free memory to the system after a surge of connections",
		"peak", r.peak.Load(), "open", n, "took", took.Round(time.Microsecond))
	r.peak.Store(n)
	r.next.Store(time.Now().Add(max(reclaimEvery, reclaimCost*took)).UnixNano())
	r.runs.Add(1)
}

// sleep waits d, or returns false at once when the server stops.
func (r *reclaimer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stop:
		return false
	}
}

// close ends a running return and stops new ones.
func (r *reclaimer) close() {
	if r.stopped.CompareAndSwap(false, true) {
		close(r.stop)
	}
}
