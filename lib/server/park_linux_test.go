package server_test

import (
	"fmt"
	"testing"

	"github.com/tnl-lock/tnl/lib/server"
)

// waitParked waits until the parker holds n idle holders.
func waitParked(t *testing.T, ts *testServer, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d parked holders", n), func() bool {
		return server.Parked(ts.Server) == n
	})
}

// TestParkedHolderAnswers: a holder parked while idle answers .keepalive,
// bad-action and release exactly like one that was never parked, and is
// parked again in between.
func TestParkedHolderAnswers(t *testing.T) {
	ts := start(t, server.Config{})
	h := hold(t, ts.addr, "x")
	waitParked(t, ts, 1)
	h.roundtrip(".keepalive\n", "alive\n")
	waitParked(t, ts, 1)
	h.roundtrip(".ping\n", "bad-action\n")
	refused(t, ts.addr, "x")
	waitParked(t, ts, 1)
	h.send(".keep") // half a line wakes it; it waits for the rest unparked
	waitParked(t, ts, 0)
	h.roundtrip("alive\n", "alive\n")
	waitParked(t, ts, 1)
	h.roundtrip("release\n", "released\n")
	h.expectEOF()
	waitParked(t, ts, 0)
	hold(t, ts.addr, "x")
}

// TestParkedHolderDisconnect: a parked holder whose connection ends frees
// the lock at once.
func TestParkedHolderDisconnect(t *testing.T) {
	for _, how := range cuts {
		t.Run(how, func(t *testing.T) {
			ts := start(t, server.Config{})
			h := hold(t, ts.addr, "x")
			w := queue(t, ts.addr, "x", "wait:inf")
			waitParked(t, ts, 1)
			cut(t, h, how)
			if n := w.grant(); n != 2 {
				t.Errorf("waiter got token %d, want 2", n)
			}
			// the waiter, now an idle holder, is parked in turn
			waitParked(t, ts, 1)
			cut(t, w, how)
			g := grab(t, ts.addr, "x")
			waitParked(t, ts, 1)
			g.roundtrip("release\n", "released\n")
			waitParked(t, ts, 0)
		})
	}
}

// TestManyParked: many parked holders, woken in any order, each answers its
// own requests.
func TestManyParked(t *testing.T) {
	const n = 300
	ts := start(t, server.Config{})
	hs := make([]*peer, n)
	for i := range hs {
		hs[i] = hold(t, ts.addr, fmt.Sprint("p", i))
	}
	waitParked(t, ts, n)
	for i := n - 1; i >= 0; i -= 2 {
		hs[i].roundtrip(".keepalive\n", "alive\n")
	}
	for i := 0; i < n; i += 3 {
		cut(t, hs[i], cuts[(i/3)%len(cuts)])
	}
	for i := range hs {
		if i%3 != 0 {
			hs[i].roundtrip("release\n", "released\n")
			hs[i].expectEOF()
		}
	}
	eventually(t, "every lock to be free", func() bool {
		return ts.table.Counters().Held == 0
	})
	waitParked(t, ts, 0)
}
