package server

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
)

// The reclaimer's rules, driven directly: no connections, no timing.
func TestReclaimerRules(t *testing.T) {
	newServer := func() *Server {
		s := New(lockd.New(lockd.Options{}), Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		s.rec.quiet, s.rec.maxWait, s.rec.every = time.Millisecond, time.Hour, 0
		return s
	}
	started := func(s *Server) bool {
		s.rec.mu.Lock()
		defer s.rec.mu.Unlock()
		return s.rec.running != nil
	}
	// wait waits for the running return to end (stop: make it end now).
	wait := func(s *Server, stop bool) {
		t.Helper()
		s.rec.mu.Lock()
		var done <-chan struct{}
		if s.rec.running != nil {
			done = s.rec.running
		}
		s.rec.mu.Unlock()
		if stop {
			done = s.rec.close()
		}
		if done == nil {
			return
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the return did not end")
		}
	}

	t.Run("a small peak is no surge", func(t *testing.T) {
		s := newServer()
		s.rec.opened(surgeMin - 1)
		s.rec.closed(s, 0)
		if started(s) {
			t.Fatalf("a return started after a peak of %d", surgeMin-1)
		}
	})

	t.Run("a surge ends at a quarter of its peak", func(t *testing.T) {
		s := newServer()
		s.rec.opened(400)
		s.rec.opened(300) // a lower count does not lower the peak
		s.rec.closed(s, 101)
		if started(s) {
			t.Fatal("a return started with 101 of a peak of 400 open")
		}
		s.nconns.Store(100)
		s.rec.closed(s, 100)
		if !started(s) {
			t.Fatal("no return started with 100 of a peak of 400 open")
		}
		wait(s, false)
		if n := s.rec.runs.Load(); n != 1 {
			t.Fatalf("returns: %d, want 1", n)
		}
		// The count had settled: the peak starts again from it, and the
		// rest of the connections closing is no new surge.
		if p := s.rec.peak.Load(); p != 100 {
			t.Fatalf("peak after the return: %d, want 100", p)
		}
		s.rec.closed(s, 0)
		if started(s) {
			t.Fatal("a return started for the rest of an ended surge")
		}
	})

	t.Run("a count still falling keeps the peak", func(t *testing.T) {
		s := newServer()
		s.rec.maxWait = 0 // gives up waiting for the count to settle
		s.rec.opened(1000)
		s.nconns.Store(200)
		s.rec.run(s)
		if n := s.rec.runs.Load(); n != 1 {
			t.Fatalf("returns: %d, want 1", n)
		}
		if p := s.rec.peak.Load(); p != 1000 {
			t.Fatalf("peak: %d, want 1000 kept, so that the rest is returned too", p)
		}
	})

	t.Run("a new surge during the wait between returns", func(t *testing.T) {
		s := newServer()
		s.rec.opened(1000)
		s.nconns.Store(900) // the new surge is on when the wait ends
		s.rec.next.Store(time.Now().Add(5 * time.Millisecond).UnixNano())
		s.rec.run(s)
		if n := s.rec.runs.Load(); n != 0 {
			t.Fatalf("returns: %d, want 0 in the middle of a surge", n)
		}
		if p := s.rec.peak.Load(); p != 1000 {
			t.Fatalf("peak: %d, want 1000", p)
		}
	})

	t.Run("the wait between returns grows with their cost", func(t *testing.T) {
		s := newServer()
		s.rec.every = time.Hour
		s.rec.opened(1000)
		before := time.Now()
		s.rec.run(s)
		if next := time.Unix(0, s.rec.next.Load()); next.Before(before.Add(time.Hour)) {
			t.Fatalf("next return allowed at %v, want an hour on", next.Sub(before))
		}
	})

	t.Run("shutdown ends a waiting return", func(t *testing.T) {
		s := newServer()
		s.rec.next.Store(time.Now().Add(time.Hour).UnixNano())
		s.rec.opened(1000)
		s.rec.closed(s, 0)
		if !started(s) {
			t.Fatal("no return started")
		}
		wait(s, true) // close ends its hour-long wait at once
		if n := s.rec.runs.Load(); n != 0 {
			t.Fatalf("returns: %d, want 0 after shutdown", n)
		}
		s.rec.closed(s, 0)
		if started(s) {
			t.Fatal("a return started after shutdown")
		}
	})
}
