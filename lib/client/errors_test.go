package client_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/server"
	"github.com/tnl-lock/tnl/test/deadline"
)

// TestServerErrorReasons: errors.Is reads the reason of an "err" answer,
// with or without details after it, and nothing else.
func TestServerErrorReasons(t *testing.T) {
	all := []error{client.ErrNotHeld, client.ErrInvalidName, client.ErrAuthRequired, client.ErrAuthFailed,
		client.ErrAdminRequired, client.ErrLimitMismatch, client.ErrQueueFull}
	for _, tc := range []struct {
		msg  string
		want error // nil: none
	}{
		{"not held", client.ErrNotHeld},
		{"invalid lock name", client.ErrInvalidName},
		{"authentication required", client.ErrAuthRequired},
		{"authentication failed", client.ErrAuthFailed},
		{"admin token required", client.ErrAdminRequired},
		{"limit mismatch", client.ErrLimitMismatch},
		{"limit mismatch: held with limit 3", client.ErrLimitMismatch},
		{"queue full", client.ErrQueueFull},
		{"not held any more", nil},
		{"not heldx", nil},
		{"limit mismatch held", nil},
		{"authentication", nil},
		{"", nil},
		{"too many locks in this session (max 5)", nil},
	} {
		err := error(&client.ServerError{Name: "x", Msg: tc.msg})
		for _, r := range all {
			if got := errors.Is(err, r); got != (r == tc.want) {
				t.Errorf("errors.Is(ServerError %q, %v) = %v", tc.msg, r, got)
			}
		}
		if errors.Is(err, client.ErrLost) || errors.Is(err, client.ErrNotGranted) {
			t.Errorf("ServerError %q is a sentinel it is not", tc.msg)
		}
	}
	// The words stay as they were.
	if got := (&client.ServerError{Name: "x", Msg: "not held"}).Error(); got != "server refused x: not held" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&client.ServerError{Msg: "queue full"}).Error(); got != "server refused: queue full" {
		t.Errorf("Error() = %q", got)
	}
}

// TestServerReasonsFromServer: the reasons as the real server gives them.
func TestServerReasonsFromServer(t *testing.T) {
	addr := startServer(t, server.Config{AuthToken: "s3cret", AdminToken: "adm1n"})
	ctx := context.Background()

	_, err := client.Dial(ctx, client.Options{Addr: addr})
	var se *client.ServerError
	if !errors.Is(err, client.ErrAuthRequired) || !errors.As(err, &se) || se.Msg != "authentication required" {
		t.Errorf("Dial without the secret: %v", err)
	}
	if want := "server " + addr + " refused the session: authentication required"; err == nil || err.Error() != want {
		t.Errorf("Dial without the secret: %v; want %q", err, want)
	}
	if _, err := client.Dial(ctx, client.Options{Addr: addr, AuthToken: "wrong"}); !errors.Is(err, client.ErrAuthFailed) || errors.Is(err, client.ErrAuthRequired) {
		t.Errorf("Dial with a wrong secret: %v", err)
	}
	if err := client.Break(ctx, client.Options{Addr: addr}, "x", "s3cret"); !errors.Is(err, client.ErrAdminRequired) {
		t.Errorf("Break with the shared secret only: %v", err)
	}
	if err := client.Break(ctx, client.Options{Addr: addr}, "x", "adm1n"); !errors.Is(err, client.ErrNotHeld) || err.Error() != "server refused x: not held" {
		t.Errorf("Break of a free lock: %v", err)
	}

	a, err := client.Dial(ctx, client.Options{Addr: addr, AuthToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Lock(ctx, "sem", client.LockOptions{Limit: 3}); err != nil {
		t.Fatal(err)
	}
	b, err := client.Dial(ctx, client.Options{Addr: addr, AuthToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Lock(ctx, "sem", client.LockOptions{Limit: 2}); !errors.Is(err, client.ErrLimitMismatch) || !errors.As(err, &se) || se.Name != "sem" {
		t.Errorf("Lock with another limit: %v", err)
	}
}

func TestQueueFullFromServer(t *testing.T) {
	addr := startServerWith(t, lockd.Options{MaxWaiters: 1}, server.Config{})
	ctx := context.Background()
	h, w1, w2 := dial(t, addr, "h"), dial(t, addr, "w1"), dial(t, addr, "w2")
	if _, err := h.Lock(ctx, "q", client.LockOptions{}); err != nil {
		t.Fatal(err)
	}
	go w1.Lock(ctx, "q", client.LockOptions{Wait: client.Forever})
	waitFor(t, func() bool {
		infos, _, err := h.Holders(ctx, "q")
		return err == nil && len(infos) == 1 && len(infos[0].Waiters) == 1
	})
	if _, err := w2.Lock(ctx, "q", client.LockOptions{Wait: client.Forever}); !errors.Is(err, client.ErrQueueFull) {
		t.Errorf("a second waiter over MaxWaiters 1: %v", err)
	}
}

// TestLostError: a loss is a *LostError, ErrLost for errors.Is, named for a
// lock and unnamed for the session, with the words it always had.
func TestLostError(t *testing.T) {
	l := listen(t)
	s := script(t, l)
	ctx := context.Background()
	dialed := make(chan *client.Client, 1)
	go func() {
		c, _ := client.Dial(ctx, client.Options{Addr: l.Addr().String()})
		dialed <- c
	}()
	deadline.Within(t, 10*time.Second, s.lines, "the session request")
	nc := <-s.conn
	io.WriteString(nc, "session,dead-peer-timeout:60\n")
	c := deadline.Within(t, 10*time.Second, dialed, "Dial")
	if c == nil {
		t.Fatal("Dial failed")
	}
	defer c.Close()
	got := make(chan *client.Lock, 2)
	for _, name := range []string{"x", "y"} {
		go func() {
			l, _ := c.Lock(ctx, name, client.LockOptions{})
			got <- l
		}()
		deadline.Within(t, 10*time.Second, s.lines, "lock "+name)
		io.WriteString(nc, "ok,name:"+name+",token:1\n")
	}
	locks := map[string]*client.Lock{}
	for range 2 {
		l := deadline.Within(t, 10*time.Second, got, "a grant")
		if l == nil {
			t.Fatal("Lock failed")
		}
		locks[l.Name()] = l
	}

	// An operator's break ends one lock.
	io.WriteString(nc, "lost,name:x\n")
	x := locks["x"]
	deadline.Within(t, 10*time.Second, x.Done(), "lock x to end")
	var le *client.LostError
	want := "lock lost: broken by an operator on server " + l.Addr().String()
	if err := x.Err(); !errors.As(err, &le) || !errors.Is(err, client.ErrLost) || err.Error() != want ||
		le.Name != "x" || le.Why != "broken by an operator on server "+l.Addr().String() || le.Err != nil {
		t.Fatalf("x.Err() = %#v", err)
	}

	// The server closes: every lock and the session are lost, with the
	// network's error underneath.
	nc.Close()
	y := locks["y"]
	deadline.Within(t, 10*time.Second, y.Done(), "lock y to end")
	want = "lock lost: connection to server " + l.Addr().String() + " ended: EOF"
	if err := y.Err(); !errors.As(err, &le) || err.Error() != want || le.Name != "y" || !errors.Is(err, io.EOF) || !errors.Is(err, client.ErrLost) {
		t.Fatalf("y.Err() = %#v (%v); want %q, named y, EOF underneath", err, err, want)
	}
	if err := c.Err(); !errors.As(err, &le) || err.Error() != want || le.Name != "" {
		t.Fatalf("c.Err() = %#v; want %q, unnamed", err, want)
	}
	if err := y.Release(); !errors.As(err, &le) || err.Error() != want || le.Name != "y" {
		t.Fatalf("y.Release() = %v; want %q, named y", err, want)
	}
	if _, err := c.Lock(ctx, "z", client.LockOptions{}); !errors.As(err, &le) || err.Error() != want || le.Name != "" {
		t.Fatalf("Lock after the loss = %v; want the session's loss", err)
	}
}

// TestLostErrorBadReply: a server that breaks the protocol loses the
// session, in the words it always had.
func TestLostErrorBadReply(t *testing.T) {
	l := listen(t)
	s := script(t, l)
	dialed := make(chan *client.Client, 1)
	go func() {
		c, _ := client.Dial(context.Background(), client.Options{Addr: l.Addr().String()})
		dialed <- c
	}()
	deadline.Within(t, 10*time.Second, s.lines, "the session request")
	nc := <-s.conn
	io.WriteString(nc, "session,dead-peer-timeout:60\ngarbage\n")
	c := deadline.Within(t, 10*time.Second, dialed, "Dial")
	if c == nil {
		t.Fatal("Dial failed")
	}
	defer c.Close()
	deadline.Within(t, 10*time.Second, c.Done(), "the session to end")
	var le *client.LostError
	want := `lock lost: server ` + l.Addr().String() + ` sent "garbage"`
	if err := c.Err(); !errors.As(err, &le) || err.Error() != want || le.Err != nil {
		t.Fatalf("c.Err() = %v; want %q", err, want)
	}
}
