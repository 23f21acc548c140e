package server_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/server"
)

// expectClosed reads the end of a connection the server closed while input
// was still unread: a FIN, or an RST that the kernel sends instead when it
// discards that input. Either way, nothing more may arrive.
func (c *peer) expectClosed() {
	c.t.Helper()
	got, err := c.line()
	if got != "" || err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("%s: got %q (err %v), want the connection closed", c.name, got, err)
	}
}

// stillHeld checks that h holds name and nobody else gets it.
func stillHeld(t *testing.T, ts *testServer, h *peer, name string) {
	t.Helper()
	refused(t, ts.addr, name)
	h.roundtrip(".keepalive\n", "alive\n")
	doc := holders(t, ts.addr, name)
	if len(doc.Locks) != 1 || len(doc.Locks[0].Holders) != 1 || doc.Locks[0].Holders[0].Addr != h.nc.LocalAddr().String() {
		t.Fatalf("holders of %s: %+v, want only %s", name, doc, h.nc.LocalAddr())
	}
}

func TestBinaryJunk(t *testing.T) {
	ts := start(t, server.Config{})
	h := hold(t, ts.addr, "x")
	cases := []struct{ in, want string }{
		{"\x00\x01\x02\xff\xfe\xfd\x7f\n", "bad-action\n"},
		{"\x00,\xff:\x80\n", "bad-action\n"},
		{"\x00,\n", "bad-request\n"},
		{"\xef\xbb\xbflock,name:x\n", "bad-action\n"}, // a BOM is no whitespace
		{"lock,name:x\x00\n", "err,invalid lock name\n"},
		{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", "bad-action\n"}, // a TLS hello
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad-action\n"},
	}
	for _, tc := range cases {
		c := dial(t, ts.addr)
		c.send(tc.in)
		c.expect(tc.want)
		c.expectClosed()
	}
	// Junk without a newline, then the client goes: no answer, no harm.
	c := dial(t, ts.addr)
	c.send("\x00\xff\x00\xff")
	c.close()

	// Random junk ending in a newline: one answer to the first line, then
	// the close.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		junk := make([]byte, 1+rng.IntN(3*server.DefaultMaxLineLength))
		for k := range junk {
			junk[k] = byte(rng.Uint32())
		}
		junk[len(junk)-1] = '\n'
		want := "err,line too long\n"
		if first := bytes.IndexByte(junk, '\n') + 1; first <= server.DefaultMaxLineLength {
			want = "bad-action\n"
			if _, err := protocol.ParseRequest(junk[:first]); errors.Is(err, protocol.ErrMalformed) {
				want = "bad-request\n"
			}
		}
		c := dial(t, ts.addr)
		go func() { _ = c.write(string(junk)) }() // fails if the server closes first
		c.expect(want)
		c.expectClosed()
		c.close()
	}
	stillHeld(t, ts, h, "x")

	// Junk while holding: bad-action, the lock stays.
	h.roundtrip("\x00\x01\xff\n", "bad-action\n")
	h.roundtrip("\xff\xfe,,,:::\n", "bad-action\n")
	stillHeld(t, ts, h, "x")
}

// TestLongLine: a 1 MiB line without a newline gets "err,line too long" and
// the close, and nobody else notices.
func TestLongLine(t *testing.T) {
	ts := start(t, server.Config{})
	h := hold(t, ts.addr, "x")
	for _, first := range []string{"", "lock,name:y\n"} {
		c := dial(t, ts.addr)
		if first != "" {
			// also for a connection that holds a lock: it loses it
			c.roundtrip(first, "ok\n")
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			// The server stops reading after its limit: this write ends in
			// an error, and must not block the test.
			_ = c.write(strings.Repeat("A", 1<<20))
		})
		c.expect("err,line too long\n")
		c.expectClosed()
		c.close()
		wg.Wait()
	}
	hold(t, ts.addr, "y") // freed with its connection
	stillHeld(t, ts, h, "x")
	if n := strings.Count(ts.logs.String(), "request refused: line too long"); n != 2 {
		t.Errorf("%d log lines for the long lines, want 2:\n%s", n, ts.logs)
	}
}

// TestLineLengthLimit: MaxLineLength counts the newline; one byte more is
// refused, however the line arrives.
func TestLineLengthLimit(t *testing.T) {
	const max = 128
	ts := start(t, server.Config{MaxLineLength: max})
	pad := func(n int) string { // a lock request of exactly n bytes, newline included
		const head = "lock,name:x,pad:"
		return head + strings.Repeat("p", n-len(head)-1) + "\n"
	}
	c := dial(t, ts.addr)
	c.roundtrip(pad(max), "ok\n")
	c.roundtrip(".keepalive,pad:"+strings.Repeat("p", max-len(".keepalive,pad:")-1)+"\n", "alive\n")
	c.close()

	c = dial(t, ts.addr)
	c.send(pad(max + 1))
	c.expect("err,line too long\n")
	c.expectClosed()

	// the same, a byte at a time
	c = dial(t, ts.addr)
	for _, b := range []byte(pad(max + 1)) {
		if c.write(string(b)) != nil {
			break
		}
	}
	c.expect("err,line too long\n")
	c.expectClosed()

	// a long line after a short one in the same write
	h := dial(t, ts.addr)
	h.send("lock,name:z\n" + pad(max+1))
	h.expect("ok\n")
	h.expect("err,line too long\n")
	h.expectClosed()
}

// TestFirstLineTimeout: half a line, or nothing, then silence: the server
// says so after FirstLineTimeout and closes. A holder is never closed for
// silence, nor for half a line.
func TestFirstLineTimeout(t *testing.T) {
	const flt = 300 * time.Millisecond
	ts := start(t, server.Config{FirstLineTimeout: flt})
	h := hold(t, ts.addr, "x")
	var wg sync.WaitGroup
	for _, first := range []string{"", "lock,name:", "lock,name:y", ".pi"} {
		wg.Go(func() {
			// The server's clock starts when it accepts, after the dial
			// began: so must this one, or a slow test would blame it.
			begin := time.Now()
			c, err := dialErr(t, ts.addr)
			if err != nil {
				t.Error(err)
				return
			}
			if first != "" {
				if err := c.write(first); err != nil {
					t.Error(err)
					return
				}
			}
			line, err := c.line()
			if d := time.Since(begin); line != "err,timeout waiting for request\n" || d < flt {
				t.Errorf("after %q: got %q (err %v) after %v, want the timeout after %v", first, line, err, d, flt)
			}
			if line, err := c.line(); line != "" || err != io.EOF {
				t.Errorf("after %q: got %q (err %v), want EOF", first, line, err)
			}
		})
	}
	wg.Wait()
	h.expectSilence(3 * flt)
	h.send(".keep")
	h.expectSilence(3 * flt)
	h.send("alive\n")
	h.expect("alive\n")
	stillHeld(t, ts, h, "x")
	if n := strings.Count(ts.logs.String(), "connection closed: no request in time"); n != 4 {
		t.Errorf("%d log lines for the timeouts, want 4:\n%s", n, ts.logs)
	}
}

// TestIdleConnections: 2,000 connections that send nothing, half a line or
// junk without a newline. Meanwhile other clients are served, the held lock
// stays held, and nothing is granted twice.
func TestIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	const idle = 2000
	ts := start(t, server.Config{FirstLineTimeout: time.Minute})
	h := hold(t, ts.addr, "k")
	conns := make([]*peer, idle)
	for i := range conns {
		conns[i] = dial(t, ts.addr)
		switch i % 4 {
		case 1:
			conns[i].send("lock,name:k")
		case 2:
			conns[i].send("\x00\xff\x01junk")
		case 3:
			conns[i].send(".session,client-id:")
		}
	}
	eventually(t, "the server to accept every connection", func() bool {
		return ts.Stats().Connections == idle+1
	})

	var wg sync.WaitGroup
	const workers, rounds = 20, 10
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				for _, step := range [][2]string{
					{".ping\n", "pong\n"},
					{"lock,name:k\n", "not-granted\n"},
					{"lock,name:k,wait:0\n", "not-granted\n"},
				} {
					c, err := dialErr(t, ts.addr)
					if err != nil {
						t.Error(err)
						return
					}
					if err := c.write(step[0]); err != nil {
						t.Error(err)
						return
					}
					if line, err := c.line(); line != step[1] {
						t.Errorf("worker %d round %d: %q got %q (err %v)", w, r, step[0], line, err)
					}
					c.close()
				}
				c, err := dialErr(t, ts.addr)
				if err != nil {
					t.Error(err)
					return
				}
				name := "w" + string(rune('a'+w)) + string(rune('a'+r))
				if err := c.write("lock,name:" + name + "\n"); err != nil {
					t.Error(err)
					return
				}
				if line, err := c.line(); line != "ok\n" {
					t.Errorf("lock %s: got %q (err %v)", name, line, err)
				}
				if err := c.write("release\n"); err != nil {
					t.Error(err)
				}
				if line, err := c.line(); line != "released\n" {
					t.Errorf("release %s: got %q (err %v)", name, line, err)
				}
			}
		})
	}
	wg.Wait()
	stillHeld(t, ts, h, "k")
	if c := ts.table.Counters(); c.Acquired != 1+workers*rounds || c.Held != 1 {
		t.Errorf("counters %+v, want %d grants and 1 held", c, 1+workers*rounds)
	}
	// The served clients saw their close a moment before the server
	// counted it; the idle ones must all be there still.
	eventually(t, "the idle connections and the holder to be all that is open", func() bool {
		return ts.Stats().Connections == idle+1
	})
	for _, c := range conns {
		c.reset()
	}
	eventually(t, "the idle connections to be gone", func() bool {
		return ts.Stats().Connections == 1
	})
	stillHeld(t, ts, h, "k")
	h.roundtrip("release\n", "released\n")
}

// TestMaxConns: over the cap, one clear answer and the close; the others
// are not touched, and room made is used again.
func TestMaxConns(t *testing.T) {
	ts := start(t, server.Config{MaxConns: 3})
	a := hold(t, ts.addr, "a")
	b := hold(t, ts.addr, "b")
	s := dial(t, ts.addr)
	s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	for range 3 {
		c := dial(t, ts.addr)
		c.expect("err,too many connections\n")
		c.expectEOF()
	}
	a.roundtrip(".keepalive\n", "alive\n")
	b.roundtrip(".keepalive\n", "alive\n")
	s.roundtrip("lock,name:a,wait:0\n", "not-granted,name:a\n")
	a.roundtrip("release\n", "released\n")
	a.expectEOF()
	// The slot is given back a moment after the close that a saw.
	var c *peer
	eventually(t, "a free slot", func() bool {
		c = dial(t, ts.addr)
		c.send("lock,name:a\n")
		line, err := c.line()
		switch line {
		case "ok\n":
			return true
		case "err,too many connections\n":
			c.close()
			return false
		}
		t.Fatalf("got %q (err %v)", line, err)
		return false
	})
	d := dial(t, ts.addr)
	d.expect("err,too many connections\n")
	if n := strings.Count(ts.logs.String(), "connection refused: too many connections"); n < 4 {
		t.Errorf("%d log lines for the refusals, want at least 4:\n%s", n, ts.logs)
	}
}
