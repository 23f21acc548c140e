package server_test

import (
	"testing"

	"github.com/tnl-lock/tnl/lib/server"
)

// The hot path, as a client sees it: what one lock and its release cost the
// server, so that a change that adds work to every lock shows here (run with
// -benchmem: allocations per cycle count as much as time).

// BenchmarkLegacyCycle: tcpnetlock's cycle, a connection per lock.
func BenchmarkLegacyCycle(b *testing.B) {
	ts := start(b, server.Config{})
	for b.Loop() {
		c := dial(b, ts.addr)
		c.roundtrip("lock,name:bench\n", "ok\n")
		c.roundtrip("release\n", "released\n")
		c.expectEOF()
		c.close()
	}
}

// BenchmarkSessionCycle: a lock and its release inside one session.
func BenchmarkSessionCycle(b *testing.B) {
	ts := start(b, server.Config{})
	c := dial(b, ts.addr)
	c.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	for b.Loop() {
		c.send("lock,name:bench\nrelease,name:bench\n")
		if l, err := c.line(); err != nil || len(l) < 3 || l[:3] != "ok," {
			b.Fatalf("lock: got %q (err %v)", l, err)
		}
		c.expect("released,name:bench\n")
	}
}

// BenchmarkSessionHandover: a lock handed from one session to another's
// wait, the path of Granted's direct answer.
func BenchmarkSessionHandover(b *testing.B) {
	ts := start(b, server.Config{})
	a, w := dial(b, ts.addr), dial(b, ts.addr)
	a.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	w.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	for b.Loop() {
		if l, err := a.line2("lock,name:bench\n"); err != nil || l[:3] != "ok," {
			b.Fatalf("lock: got %q (err %v)", l, err)
		}
		w.roundtrip("lock,name:bench,wait:inf\n.keepalive\n", "alive\n")
		a.roundtrip("release,name:bench\n", "released,name:bench\n")
		if l, err := w.line(); err != nil || l[:3] != "ok," {
			b.Fatalf("grant: got %q (err %v)", l, err)
		}
		w.roundtrip("release,name:bench\n", "released,name:bench\n")
	}
}

// line2 sends req and returns the answer line.
func (c *peer) line2(req string) (string, error) {
	c.t.Helper()
	c.send(req)
	return c.line()
}
