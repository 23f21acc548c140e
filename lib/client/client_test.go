package client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/server"
	"github.com/tnl-lock/tnl/test/deadline"
)

func startServer(t *testing.T, cfg server.Config) string {
	t.Helper()
	return startServerWith(t, lockd.Options{}, cfg)
}

func startServerWith(t *testing.T, table lockd.Options, cfg server.Config) string {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv := server.New(lockd.New(table), cfg)
	l, err := server.Listen(context.Background(), "127.0.0.1:0", cfg.DeadPeerTimeout)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func dial(t *testing.T, addr, id string) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), client.Options{Addr: addr, ClientID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLockReleaseAndTokens(t *testing.T) {
	addr := startServer(t, server.Config{})
	ctx := context.Background()
	a, b := dial(t, addr, "a"), dial(t, addr, "b")

	la, err := a.Lock(ctx, "job", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "job", client.LockOptions{}); !errors.Is(err, client.ErrNotGranted) {
		t.Fatalf("second lock: got %v, want ErrNotGranted", err)
	}
	if _, err := b.Lock(ctx, "job", client.LockOptions{Wait: 50 * time.Millisecond}); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("timed wait: got %v, want ErrTimeout", err)
	}
	if err := la.Release(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(la.Err(), client.ErrReleased) {
		t.Fatalf("Err after Release = %v", la.Err())
	}
	select {
	case <-la.Done():
	default:
		t.Fatal("Done not closed after Release")
	}
	lb, err := b.Lock(ctx, "job", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lb.Token() <= la.Token() {
		t.Fatalf("tokens not increasing: %d then %d", la.Token(), lb.Token())
	}
}

func TestWaitIsServedInOrderAndHoldersShowsQueue(t *testing.T) {
	addr := startServer(t, server.Config{})
	ctx := context.Background()
	h := dial(t, addr, "holder")
	lh, err := h.Lock(ctx, "q", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	got := make(chan string, n)
	clients := make([]*client.Client, n)
	for i := range clients {
		id := string(rune('a' + i))
		clients[i] = dial(t, addr, id)
		go func(c *client.Client, id string) {
			l, err := c.Lock(ctx, "q", client.LockOptions{Wait: client.Forever})
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- id
			l.Release()
		}(clients[i], id)
		// Queue them one after the other: wait until the server lists it.
		waitFor(t, func() bool {
			infos, _, err := h.Holders(ctx, "q")
			return err == nil && len(infos) == 1 && len(infos[0].Waiters) == i+1
		})
	}
	infos, _, err := h.Holders(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos[0].Holders) != 1 || infos[0].Holders[0].ClientID != "holder" || infos[0].Waiters[0].ClientID != "a" {
		t.Fatalf("holders = %+v", infos[0])
	}
	lh.Release()
	var order []string
	for range n {
		order = append(order, deadline.Within(t, 10*time.Second, got, "the next waiter's grant after a release"))
	}
	if strings.Join(order, "") != "abcde" {
		t.Fatalf("grant order %v, want a b c d e", order)
	}
}

func TestContextEndsWaitAndLeavesQueue(t *testing.T) {
	addr := startServer(t, server.Config{})
	h, w := dial(t, addr, "holder"), dial(t, addr, "waiter")
	if _, err := h.Lock(context.Background(), "x", client.LockOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := w.Lock(ctx, "x", client.LockOptions{Wait: client.Forever})
		errc <- err
	}()
	waitFor(t, func() bool {
		infos, _, _ := h.Holders(context.Background(), "x")
		return len(infos) == 1 && len(infos[0].Waiters) == 1
	})
	cancel()
	if err := deadline.Within(t, 5*time.Second, errc, "Lock to return after its context was cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// Lock waited for the answer to its release (up to a second, for a
	// server that stalls): the queue is left, at the latest soon after.
	waitFor(t, func() bool {
		infos, _, err := h.Holders(context.Background(), "x")
		return err == nil && len(infos) == 1 && len(infos[0].Waiters) == 0
	})
	// The session is still usable for the same name.
	if _, err := w.Lock(context.Background(), "x", client.LockOptions{}); !errors.Is(err, client.ErrNotGranted) {
		t.Fatalf("after cancel: %v", err)
	}
}

// A server that accepts the session and then says nothing: the lock must be
// declared lost after half the dead-peer timeout.
func TestSilentServerLosesLease(t *testing.T) {
	l := listen(t)
	go func() {
		c, r := acceptGrant(l, "0.4", 9)
		if c == nil {
			return
		}
		defer c.Close()
		io.Copy(io.Discard, r) // then silence
	}()
	c, err := client.Dial(context.Background(), client.Options{Addr: l.Addr().String(), DeadPeerTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.DeadPeerTimeout() != 400*time.Millisecond {
		t.Fatalf("DeadPeerTimeout = %v, want the server's 400ms", c.DeadPeerTimeout())
	}
	lock, err := c.Lock(context.Background(), "x", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lock.Token() != 9 {
		t.Fatalf("token %d", lock.Token())
	}
	start := time.Now()
	select {
	case <-lock.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("lock not lost")
	}
	if !errors.Is(lock.Err(), client.ErrLost) {
		t.Fatalf("Err = %v, want ErrLost", lock.Err())
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("loss declared after %v", el)
	}
}

func TestServerGoneLosesLease(t *testing.T) {
	srv := server.New(lockd.New(lockd.Options{}), server.Config{Logger: slog.New(slog.DiscardHandler)})
	l, err := server.Listen(context.Background(), "127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	c := dial(t, l.Addr().String(), "c")
	lock, err := c.Lock(context.Background(), "x", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	deadline.Within(t, 5*time.Second, lock.Done(), "the lock to end after the server closed the connection")
	if !errors.Is(lock.Err(), client.ErrLost) {
		t.Fatalf("Err = %v", lock.Err())
	}
	if err := lock.Release(); !errors.Is(err, client.ErrLost) {
		t.Fatalf("Release after loss = %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err := client.Dial(context.Background(), client.Options{Addr: addr})
	if err == nil || !strings.Contains(err.Error(), "cannot reach server "+addr+": connection refused") {
		t.Fatalf("got %v", err)
	}
}

func TestSharedAndLimitAndStats(t *testing.T) {
	addr := startServer(t, server.Config{})
	ctx := context.Background()
	a, b, c := dial(t, addr, "a"), dial(t, addr, "b"), dial(t, addr, "c")
	if _, err := a.Lock(ctx, "r", client.LockOptions{Shared: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "r", client.LockOptions{Shared: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lock(ctx, "r", client.LockOptions{}); !errors.Is(err, client.ErrNotGranted) {
		t.Fatalf("exclusive over shared: %v", err)
	}
	if _, err := a.Lock(ctx, "sem", client.LockOptions{Limit: 2}); err != nil {
		t.Fatal(err)
	}
	var se *client.ServerError
	if _, err := b.Lock(ctx, "sem", client.LockOptions{Limit: 3}); !errors.As(err, &se) || se.Msg != "limit mismatch" {
		t.Fatalf("limit mismatch: %v", err)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st["lock_count"] != 3 || st["sessions"] != 3 {
		t.Fatalf("stats %v", st)
	}
}

// listen is the listener of a scripted server on 127.0.0.1:0, closed when
// the test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// acceptGrant plays the server's first part for one client on l: it opens
// the session with the given dead-peer timeout (seconds, as on the wire)
// and grants the first lock request, on name x, with token. It returns the
// connection and its reader, or nil when l was closed; the caller closes
// the connection. For scripted servers' goroutines: it never fails a test.
func acceptGrant(l net.Listener, deadPeer string, token int) (net.Conn, *bufio.Reader) {
	c, err := l.Accept()
	if err != nil {
		return nil, nil
	}
	r := bufio.NewReader(c)
	r.ReadString('\n')
	io.WriteString(c, "session,dead-peer-timeout:"+deadPeer+"\n")
	r.ReadString('\n')
	io.WriteString(c, "ok,name:x,token:"+strconv.Itoa(token)+"\n")
	return c, r
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
