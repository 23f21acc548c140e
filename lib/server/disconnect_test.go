package server_test

import (
	"slices"
	"testing"

	"github.com/tnl-lock/tnl/lib/server"
)

// cut ends c's connection the way a client can: close (FIN), half-close
// (shutdown of the write side only: the peer may still read), or reset (RST).
func cut(t testing.TB, c *peer, how string) {
	t.Helper()
	switch how {
	case "close":
		c.close()
	case "half-close":
		if err := c.nc.CloseWrite(); err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
	case "reset":
		c.reset()
	default:
		t.Fatalf("cut: %q?", how)
	}
}

var cuts = []string{"close", "half-close", "reset"}

// TestHolderDisconnectFreesLock: a holder whose connection ends, in any of
// the three ways, frees its lock at once: a queued waiter is granted without
// anyone polling, and a legacy client gets it afterwards.
func TestHolderDisconnectFreesLock(t *testing.T) {
	for _, how := range cuts {
		for _, legacy := range []bool{true, false} {
			name := how + "/legacy"
			if !legacy {
				name = how + "/extension"
			}
			t.Run(name, func(t *testing.T) {
				// noPark: this test is about the goroutine path; the parked
				// one is in park_linux_test.go.
				ts := start(t, server.Config{}, options{noPark: true})
				h := dial(t, ts.addr)
				if legacy {
					h.roundtrip("lock,name:x\n", "ok\n")
				} else {
					h.roundtrip("lock,name:x,wait:5\n", "ok,token:1\n")
				}
				w := queue(t, ts.addr, "x", "client-id:w,wait:inf")
				cut(t, h, how)
				if n := w.grant(); n != 2 {
					t.Errorf("waiter got token %d, want 2", n)
				}
				if how == "half-close" {
					// the server closed its side too, after freeing the lock
					h.expectEOF()
				}
				cut(t, w, how)
				g := grab(t, ts.addr, "x")
				g.roundtrip("release\n", "released\n")
				if c := ts.table.Counters(); c.Held != 0 || c.Waiting != 0 {
					t.Errorf("counters %+v, want nothing held or waiting", c)
				}
			})
		}
	}
}

// TestWaiterDisconnectLeavesQueue: a waiter whose connection ends leaves the
// queue at once, and the next waiter is the one granted.
func TestWaiterDisconnectLeavesQueue(t *testing.T) {
	for _, how := range cuts {
		t.Run(how, func(t *testing.T) {
			ts := start(t, server.Config{})
			h := hold(t, ts.addr, "x")
			w1 := queue(t, ts.addr, "x", "client-id:w1,wait:inf")
			w2 := queue(t, ts.addr, "x", "client-id:w2,wait:inf")
			w3 := queue(t, ts.addr, "x", "client-id:w3,wait:inf")
			if ids := waiterIDs(t, ts.addr, "x"); !slices.Equal(ids, []string{"w1", "w2", "w3"}) {
				t.Fatalf("waiters %q, want w1 w2 w3", ids)
			}
			cut(t, w2, how)
			cut(t, w1, how)
			eventually(t, "w1 and w2 to leave the queue", func() bool {
				return slices.Equal(waiterIDs(t, ts.addr, "x"), []string{"w3"})
			})
			if c := ts.table.Counters(); c.Waiting != 1 || c.Held != 1 {
				t.Errorf("counters %+v, want 1 held, 1 waiting", c)
			}
			h.roundtrip("release\n", "released\n")
			if n := w3.grant(); n != 2 {
				t.Errorf("w3 got token %d, want 2", n)
			}
			doc := holders(t, ts.addr, "x")
			if len(doc.Locks) != 1 || len(doc.Locks[0].Holders) != 1 || doc.Locks[0].Holders[0].ClientID != "w3" || len(doc.Locks[0].Waiters) != 0 {
				t.Errorf("holders %+v, want w3 alone", doc)
			}
		})
	}
}

// TestSessionWaiterDisconnect: a session's wait leaves the queue with it.
func TestSessionWaiterDisconnect(t *testing.T) {
	ts := start(t, server.Config{})
	h := hold(t, ts.addr, "x")
	s := dial(t, ts.addr)
	s.roundtrip(".session,client-id:s\n", "session,dead-peer-timeout:30\n")
	s.roundtrip("lock,name:x,wait:inf\n.keepalive\n", "alive\n")
	w := queue(t, ts.addr, "x", "client-id:w,wait:inf")
	s.reset()
	eventually(t, "the session to leave the queue", func() bool {
		return slices.Equal(waiterIDs(t, ts.addr, "x"), []string{"w"})
	})
	h.roundtrip("release\n", "released\n")
	if n := w.grant(); n != 2 {
		t.Errorf("w got token %d, want 2", n)
	}
}
