package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/test/deadline"
)

const testLease = "5f0c8e7a1b2d4c6e8f90a1b2c3d4e5f6"

// dialScripted opens a session with a scripted server and returns both.
func dialScripted(t *testing.T) (*client.Client, *scripted, net.Conn) {
	t.Helper()
	l := listen(t)
	s := script(t, l)
	dialed := make(chan error, 1)
	var c *client.Client
	go func() {
		var err error
		c, err = client.Dial(context.Background(), client.Options{Addr: l.Addr().String(), ClientID: "me", Host: "h", PID: 7})
		dialed <- err
	}()
	if got := deadline.Within(t, 10*time.Second, s.lines, "the session request"); got != ".session,client-id:me,host:h,pid:7\n" {
		t.Fatalf("session request %q", got)
	}
	nc := <-s.conn
	io.WriteString(nc, "session,dead-peer-timeout:30\n")
	if err := deadline.Within(t, 10*time.Second, dialed, "Dial"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, s, nc
}

// exchange runs do, checks the line it sends, answers it, and returns do's
// error.
func exchange(t *testing.T, s *scripted, nc net.Conn, do func() error, want, answer string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- do() }()
	if got := deadline.Within(t, 10*time.Second, s.lines, want); got != want {
		t.Fatalf("sent %q; want %q", got, want)
	}
	io.WriteString(nc, answer)
	return deadline.Within(t, 10*time.Second, done, "the answer to "+want)
}

// TestLeaseWireBytes: every lease request, byte for byte, and how each
// answer is read.
func TestLeaseWireBytes(t *testing.T) {
	c, s, nc := dialScripted(t)
	ctx := context.Background()

	var lease *client.Lease
	before := time.Now()
	err := exchange(t, s, nc, func() (err error) {
		lease, err = c.AcquireLease(ctx, "nightly", 2*time.Hour, client.LockOptions{Wait: 30 * time.Second, Shared: true, MaxHold: 24 * time.Hour})
		return err
	}, "lock,name:nightly,ttl:7200,wait:30,mode:shared,max-hold:86400\n",
		"ok,name:nightly,token:21,lease:"+testLease+",ttl:7199.999\n")
	if err != nil {
		t.Fatal(err)
	}
	if lease.ID != testLease || lease.Name != "nightly" || lease.Token != 21 || lease.TTL != 7199999*time.Millisecond {
		t.Fatalf("lease %+v", lease)
	}
	if lease.At.Before(before) || lease.At.After(time.Now()) || lease.Expires() != lease.At.Add(lease.TTL) {
		t.Fatalf("lease read at %v, expires %v (asked at %v)", lease.At, lease.Expires(), before)
	}

	err = exchange(t, s, nc, func() error {
		_, err := c.AcquireLease(ctx, "sem", time.Second, client.LockOptions{Limit: 3})
		return err
	}, "lock,name:sem,ttl:1,limit:3\n", "not-granted,name:sem\n")
	if !errors.Is(err, client.ErrNotGranted) {
		t.Fatalf("not granted: %v", err)
	}

	var st client.LeaseStatus
	err = exchange(t, s, nc, func() (err error) { st, err = c.Renew(ctx, testLease, 0); return err },
		".renew,lease:"+testLease+"\n", "renewed,name:nightly,token:21,ttl:7200\n")
	if err != nil || st.Name != "nightly" || st.Token != 21 || st.TTL != 2*time.Hour {
		t.Fatalf("renew: %+v, %v", st, err)
	}
	err = exchange(t, s, nc, func() (err error) { st, err = c.Renew(ctx, testLease, 10*time.Minute); return err },
		".renew,lease:"+testLease+",ttl:600\n", "renewed,name:nightly,token:21,ttl:600\n")
	if err != nil || st.TTL != 10*time.Minute {
		t.Fatalf("renew ttl:600: %+v, %v", st, err)
	}
	err = exchange(t, s, nc, func() (err error) { st, err = c.LeaseHeld(ctx, testLease); return err },
		".is-held,lease:"+testLease+"\n", "held,name:nightly,token:21,ttl:7134.512\n")
	if err != nil || st.Name != "nightly" || st.TTL != 7134512*time.Millisecond {
		t.Fatalf("is-held: %+v, %v", st, err)
	}
	err = exchange(t, s, nc, func() error { return c.ReleaseLease(ctx, testLease) },
		".release,lease:"+testLease+"\n", "released,name:nightly\n")
	if err != nil {
		t.Fatalf("release: %v", err)
	}
	for _, tc := range []struct {
		do   func() error
		want string
	}{
		{func() error { return c.ReleaseLease(ctx, testLease) }, ".release,lease:" + testLease + "\n"},
		{func() error { _, err := c.LeaseHeld(ctx, testLease); return err }, ".is-held,lease:" + testLease + "\n"},
		{func() error { _, err := c.Renew(ctx, testLease, 0); return err }, ".renew,lease:" + testLease + "\n"},
	} {
		err := exchange(t, s, nc, tc.do, tc.want, "err,no such lease\n")
		var se *client.ServerError
		if !errors.Is(err, client.ErrNoLease) || !errors.As(err, &se) || se.Msg != "no such lease" {
			t.Fatalf("%q answered err,no such lease: %v, want a ServerError that is ErrNoLease", tc.want, err)
		}
	}

	// A lock with a maximum hold, and its loss at the cap, right behind the
	// grant: the loss is not missed while Lock returns.
	var held *client.Lock
	err = exchange(t, s, nc, func() (err error) {
		held, err = c.Lock(ctx, "deploy", client.LockOptions{MaxHold: 2 * time.Second})
		return err
	}, "lock,name:deploy,max-hold:2\n", "ok,name:deploy,token:24\nlost,name:deploy,why:maximum hold of 2s reached\n")
	if err != nil {
		t.Fatal(err)
	}
	deadline.Within(t, 10*time.Second, held.Done(), "the loss at the maximum hold")
	var le *client.LostError
	if err := held.Err(); !errors.As(err, &le) || le.Name != "deploy" || le.Why != "maximum hold of 2s reached on server "+c.Addr() {
		t.Fatalf("lost at the cap: %#v", held.Err())
	}
}

// TestLeaseRefusedLocally: values the server would refuse are refused
// before anything is sent, and a lease id is never echoed.
func TestLeaseRefusedLocally(t *testing.T) {
	c, s, _ := dialScripted(t)
	ctx := context.Background()
	for what, err := range map[string]error{
		"ttl 0":          func() error { _, err := c.AcquireLease(ctx, "x", 0, client.LockOptions{}); return err }(),
		"ttl 367 days":   func() error { _, err := c.AcquireLease(ctx, "x", 367*24*time.Hour, client.LockOptions{}); return err }(),
		"max-hold 1ns":   func() error { _, err := c.Lock(ctx, "x", client.LockOptions{MaxHold: 1}); return err }(),
		"renew ttl -1s":  func() error { _, err := c.Renew(ctx, testLease, -time.Second); return err }(),
		"id not hex":     func() error { _, err := c.Renew(ctx, "SECRET-ID-0123456789abcdef012345", 0); return err }(),
		"release short":  func() error { return c.ReleaseLease(ctx, "abc") }(),
		"is-held spaces": func() error { _, err := c.LeaseHeld(ctx, " "+testLease); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
	_, err := c.Renew(ctx, "SECRET-ID-0123456789abcdef012345", 0)
	if want := "invalid lease id: want 32 lowercase hex digits"; err == nil || err.Error() != want {
		t.Errorf("bad id: %v, want %q", err, want)
	}
	select {
	case line := <-s.lines:
		t.Fatalf("sent %q", line)
	default:
	}
}

// TestLeaseReleaseBesideRelease: a lease release and the session's own
// release of the same name, both in flight: each gets the answer to the
// request written first, whichever order they are in.
func TestLeaseReleaseBesideRelease(t *testing.T) {
	c, s, nc := dialScripted(t)
	ctx := context.Background()
	var held *client.Lock
	if err := exchange(t, s, nc, func() (err error) {
		held, err = c.Lock(ctx, "r", client.LockOptions{Shared: true})
		return err
	}, "lock,name:r,mode:shared\n", "ok,name:r,token:3\n"); err != nil {
		t.Fatal(err)
	}
	leaseDone := make(chan error, 1)
	go func() { leaseDone <- c.ReleaseLease(ctx, testLease) }()
	if got := deadline.Within(t, 10*time.Second, s.lines, "the lease release"); got != ".release,lease:"+testLease+"\n" {
		t.Fatalf("sent %q", got)
	}
	relDone := make(chan error, 1)
	go func() { relDone <- held.Release() }()
	if got := deadline.Within(t, 10*time.Second, s.lines, "the release"); got != "release,name:r\n" {
		t.Fatalf("sent %q", got)
	}
	// The lease's answer first (its request was first): no such lease.
	io.WriteString(nc, "err,no such lease\nreleased,name:r\n")
	if err := deadline.Within(t, 10*time.Second, leaseDone, "ReleaseLease"); !errors.Is(err, client.ErrNoLease) {
		t.Fatalf("lease release: %v", err)
	}
	if err := deadline.Within(t, 10*time.Second, relDone, "Release"); err != nil {
		t.Fatalf("release: %v", err)
	}

	// Now the lease holds r too, and its release goes second.
	if err := exchange(t, s, nc, func() (err error) {
		held, err = c.Lock(ctx, "r", client.LockOptions{Shared: true})
		return err
	}, "lock,name:r,mode:shared\n", "ok,name:r,token:4\n"); err != nil {
		t.Fatal(err)
	}
	go func() { relDone <- held.Release() }()
	deadline.Within(t, 10*time.Second, s.lines, "the release")
	go func() { leaseDone <- c.ReleaseLease(ctx, testLease) }()
	deadline.Within(t, 10*time.Second, s.lines, "the lease release")
	io.WriteString(nc, "released,name:r\n")
	if err := deadline.Within(t, 10*time.Second, relDone, "Release"); err != nil {
		t.Fatalf("release: %v", err)
	}
	select {
	case err := <-leaseDone:
		t.Fatalf("the lease release took the session release's answer: %v", err)
	default:
	}
	io.WriteString(nc, "released,name:r\n")
	if err := deadline.Within(t, 10*time.Second, leaseDone, "ReleaseLease"); err != nil {
		t.Fatalf("lease release: %v", err)
	}
}

// TestLeaseWithdrawnAsGranted: a lease granted just as its wait is
// withdrawn is released by its id: the release by name does not end it.
func TestLeaseWithdrawnAsGranted(t *testing.T) {
	c, s, nc := dialScripted(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.AcquireLease(ctx, "n", time.Hour, client.LockOptions{Wait: client.Forever})
		done <- err
	}()
	if got := deadline.Within(t, 10*time.Second, s.lines, "the lease request"); got != "lock,name:n,ttl:3600,wait:inf\n" {
		t.Fatalf("sent %q", got)
	}
	cancel()
	if got := deadline.Within(t, 10*time.Second, s.lines, "the withdrawal"); got != "release,name:n\n" {
		t.Fatalf("sent %q", got)
	}
	io.WriteString(nc, "ok,name:n,token:9,lease:"+testLease+",ttl:3600\nerr,name:n,not held\n")
	if got := deadline.Within(t, 10*time.Second, s.lines, "the lease's release"); got != ".release,lease:"+testLease+"\n" {
		t.Fatalf("sent %q", got)
	}
	io.WriteString(nc, "released,name:n\n")
	if err := deadline.Within(t, 10*time.Second, done, "AcquireLease"); !errors.Is(err, context.Canceled) {
		t.Fatalf("withdrawn: %v", err)
	}
}

// TestLeaseUnknownToServer: a server that grants a lease request as a
// plain lock (it ignores ttl:) is said to know no leases, and the lock it
// gave the session is released at once.
func TestLeaseUnknownToServer(t *testing.T) {
	c, s, nc := dialScripted(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.AcquireLease(context.Background(), "n", time.Hour, client.LockOptions{})
		done <- err
	}()
	if got := deadline.Within(t, 10*time.Second, s.lines, "the lease request"); got != "lock,name:n,ttl:3600\n" {
		t.Fatalf("sent %q", got)
	}
	io.WriteString(nc, "ok,name:n,token:9\n")
	if got := deadline.Within(t, 10*time.Second, s.lines, "the release"); got != "release,name:n\n" {
		t.Fatalf("sent %q", got)
	}
	io.WriteString(nc, "released,name:n\n")
	want := "server " + c.Addr() + " granted n without a lease id: it does not know leases"
	if err := deadline.Within(t, 10*time.Second, done, "AcquireLease"); err == nil || err.Error() != want {
		t.Fatalf("AcquireLease: %v, want %q", err, want)
	}
}

// TestLeaseQueryBadAction: a server that predates leases answers their
// requests bad-action: an UnknownActionError naming the action, and the
// session goes on.
func TestLeaseQueryBadAction(t *testing.T) {
	c, s, nc := dialScripted(t)
	ctx := context.Background()
	err := exchange(t, s, nc, func() error { _, err := c.LeaseHeld(ctx, testLease); return err },
		".is-held,lease:"+testLease+"\n", "bad-action\n")
	var ue *client.UnknownActionError
	if !errors.As(err, &ue) || ue.Action != ".is-held" || err.Error() != "server "+c.Addr()+" does not know .is-held (it answered bad-action): it predates it" {
		t.Fatalf("is-held answered bad-action: %v", err)
	}
	if err := exchange(t, s, nc, func() error { return c.Ping(ctx) }, ".ping\n", "pong\n"); err != nil {
		t.Fatalf("ping after: %v", err)
	}
}
