package server

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
)

// countingListener counts the Read calls the server makes on its
// connections; hide makes its connections no syscall.Conn, so that they
// cannot be parked (as with TLS).
type countingListener struct {
	net.Listener
	hide  bool
	reads *atomic.Int64
}

type countingConn struct {
	net.Conn
	reads *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(b)
}

type countingSyscallConn struct{ countingConn }

func (c countingSyscallConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (l countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := countingConn{nc, l.reads}
	if l.hide {
		return c, nil
	}
	return countingSyscallConn{c}, nil
}

// spinServer serves on a counting listener and returns a legacy holder of
// "x" once it is idle, with the counter.
func spinServer(t *testing.T, hide bool) (*Server, *atomic.Int64) {
	t.Helper()
	s := New(lockd.New(lockd.Options{}), Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reads := &atomic.Int64{}
	go s.Serve(countingListener{l, hide, reads})
	t.Cleanup(func() { _ = s.Close() })
	h, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	_, _ = io.WriteString(h, "lock,name:x\n")
	_ = h.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := bufio.NewReader(h).ReadString('\n'); got != "ok\n" || err != nil {
		t.Fatalf("lock: %q %v", got, err)
	}
	return s, reads
}

// idleReads is how many times the server read from an idle holder over
// window (a dozen park delays). A holder that waits in Read, or is parked,
// is read from a few times; a spinning one, thousands of times.
func idleReads(reads *atomic.Int64) int64 {
	const window = 300 * time.Millisecond
	before := reads.Load()
	time.Sleep(window) // the window of observation, not synchronisation
	return reads.Load() - before
}

// TestIdleHolderThatCannotParkWaits: a legacy holder on a connection that
// cannot be parked (TLS, say) waits in Read; it used to spin on its past
// park deadline, millions of Reads a second.
func TestIdleHolderThatCannotParkWaits(t *testing.T) {
	s, reads := spinServer(t, true)
	if n := idleReads(reads); n > 5 {
		t.Fatalf("the server read %d times from an idle holder in 300ms, want a few", n)
	}
	if s.parker != nil && Parked(s) != 0 {
		t.Fatalf("parked: %d, want 0", Parked(s))
	}
}

// TestHolderResumedWithNothingToReadParksAgain: a parked holder resumed by
// a stale event (its fd number reused) finds nothing to read and parks
// again, instead of timing out at its past park deadline for ever.
func TestHolderResumedWithNothingToReadParksAgain(t *testing.T) {
	s, reads := spinServer(t, false)
	if s.parker == nil {
		t.Skip("no epoll here")
	}
	deadline := time.Now().Add(10 * time.Second)
	for Parked(s) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the holder was not parked")
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	c := s.conns
	s.mu.Unlock()
	if got := s.parker.take(int(c.fd)); got != c {
		t.Fatalf("take(%d) = %p, want the holder %p", c.fd, got, c)
	}
	go c.run() // what the parker's loop does with an event
	for Parked(s) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the holder was not parked again")
		}
		time.Sleep(time.Millisecond)
	}
	if n := idleReads(reads); n > 5 {
		t.Fatalf("the server read %d times from an idle holder in 300ms, want a few", n)
	}
}
