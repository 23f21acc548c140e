package server

import (
	"runtime/debug"
	"sync"
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
// only while it works, and Shutdown waits for it.
const (
	surgeMin       = 256
	reclaimQuiet   = 200 * time.Millisecond
	reclaimMaxWait = 2 * time.Second
	reclaimEvery   = time.Second
	reclaimCost    = 20
)

type reclaimer struct {
	peak atomic.Int64 // most connections open at once since the last return
	next atomic.Int64 // UnixNano before which no return starts
	runs atomic.Int64 // returns done, for tests

	// The timings, constants but for tests.
	quiet, maxWait, every time.Duration

	mu      sync.Mutex
	running chan struct{} // closed when the running return ends; nil: none
	stopped bool
	stop    chan struct{} // closed by close
}

func newReclaimer() *reclaimer {
	return &reclaimer{quiet: reclaimQuiet, maxWait: reclaimMaxWait, every: reclaimEvery, stop: make(chan struct{})}
}

// opened records n connections open.
func (r *reclaimer) opened(n int64) {
	for p := r.peak.Load(); n > p; p = r.peak.Load() {
		if r.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// ended says whether n open connections end a surge.
func (r *reclaimer) ended(n int64) bool {
	p := r.peak.Load()
	return p >= surgeMin && n <= p/4
}

// closed records n connections open after one closed, and starts a return
// when a surge has ended and none is running.
func (r *reclaimer) closed(s *Server, n int64) {
	if !r.ended(n) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.running != nil {
		return
	}
	done := make(chan struct{})
	r.running = done
	go func() {
		defer func() {
			r.mu.Lock()
			r.running = nil
			r.mu.Unlock()
			close(done)
		}()
		r.run(s)
	}()
}

func (r *reclaimer) run(s *Server) {
	if wait := time.Until(time.Unix(0, r.next.Load())); wait > 0 {
		if !r.sleep(wait) {
			return
		}
		if !r.ended(s.nconns.Load()) {
			return // a new surge came meanwhile: its end will start a return
		}
	}
	// Wait for the rest of the surge to leave: until the count stops
	// falling for r.quiet, or r.maxWait.
	start, prev, settled := time.Now(), s.nconns.Load(), false
	for !settled && time.Since(start) < r.maxWait {
		if !r.sleep(r.quiet) {
			return
		}
		n := s.nconns.Load()
		settled = n >= prev
		prev = n
	}
	t0 := time.Now()
	debug.FreeOSMemory()
	took := time.Since(t0)
	n := s.nconns.Load()
	s.log.Info("returned free memory to the system after a surge of connections",
		"peak", r.peak.Load(), "open", n, "took", took.Round(time.Microsecond))
	if settled {
		r.peak.Store(n)
	}
	// else the count was still falling: the peak stays, so the next close
	// starts another return, for the rest.
	r.next.Store(time.Now().Add(max(r.every, reclaimCost*took)).UnixNano())
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

// close stops new returns and ends a running one at its next wait. It
// returns a channel closed when no return runs any more.
func (r *reclaimer) close() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopped {
		r.stopped = true
		close(r.stop)
	}
	if r.running != nil {
		return r.running
	}
	done := make(chan struct{})
	close(done)
	return done
}
