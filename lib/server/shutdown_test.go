package server_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/server"
)

// TestShutdown: Shutdown closes every connection, which releases every lock
// and ends every wait and session, and returns once all are gone.
func TestShutdown(t *testing.T) {
	for _, park := range []bool{true, false} {
		name := "parked"
		if !park {
			name = "goroutine"
		}
		t.Run(name, func(t *testing.T) {
			ts := start(t, server.Config{}, options{noPark: !park})
			idle := dial(t, ts.addr)
			half := dial(t, ts.addr)
			half.send("lock,name:")
			a := hold(t, ts.addr, "a")
			b := dial(t, ts.addr)
			b.roundtrip("lock,name:b,wait:1\n", "ok,token:2\n")
			b.send(".keep") // half a line buffered: never parked
			sh := dial(t, ts.addr)
			sh.roundtrip("lock,name:s,mode:shared\n", "ok,token:3\n")
			wa := queue(t, ts.addr, "a", "wait:inf")
			wb := queue(t, ts.addr, "b", "wait:60")
			s := dial(t, ts.addr)
			s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
			s.roundtrip("lock,name:s1\n", "ok,name:s1,token:4\n")
			s.roundtrip("lock,name:s2,limit:2\n", "ok,name:s2,token:5\n")
			s.roundtrip("lock,name:a,wait:inf\n.keepalive\n", "alive\n")
			if c := ts.table.Counters(); c.Held != 5 || c.Waiting != 3 {
				t.Fatalf("counters %+v before shutdown, want 5 held, 3 waiting", c)
			}

			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			if err := ts.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			// Returned: every connection is closed and its locks are free.
			if c := ts.table.Counters(); c.Held != 0 || c.Waiting != 0 || c.Names != 0 {
				t.Errorf("counters %+v after shutdown, want nothing", c)
			}
			if st := ts.Stats(); st.Connections != 0 || st.Sessions != 0 {
				t.Errorf("stats %+v after shutdown, want no connections, no sessions", st)
			}
			for _, c := range []*peer{idle, a, sh, wa, wb, s} {
				c.expectEOF()
			}
			// These sent bytes the server may not have read yet: a reset
			// instead of a FIN, then.
			half.expectClosed()
			b.expectClosed()
			select {
			case err := <-ts.served:
				if !errors.Is(err, server.ErrServerClosed) {
					t.Errorf("Serve returned %v, want ErrServerClosed", err)
				}
				ts.served <- err // for the cleanup's check
			case <-time.After(ioTimeout):
				t.Fatal("Serve did not return")
			}
			if c, err := net.DialTimeout("tcp", ts.addr, ioTimeout); err == nil {
				c.Close()
				t.Error("still accepting after Shutdown")
			}
			// A second Shutdown, and Close, are harmless.
			if err := ts.Shutdown(ctx); err != nil {
				t.Errorf("second Shutdown: %v", err)
			}
			if err := ts.Close(); err != nil {
				t.Errorf("Close after Shutdown: %v", err)
			}
		})
	}
}

// TestShutdownContext: Shutdown gives up when ctx ends first and returns
// its error; the connections are closed anyway.
func TestShutdownContext(t *testing.T) {
	ts := start(t, server.Config{})
	h := hold(t, ts.addr, "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ts.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with a done context: %v", err)
	}
	h.expectEOF()
}

// TestServeAfterShutdown: Serve refuses to start on a closed server.
func TestServeAfterShutdown(t *testing.T) {
	ts := start(t, server.Config{})
	ts.stop(t)
	l, err := server.Listen(context.Background(), "127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := ts.Serve(l); !errors.Is(err, server.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}
