package client_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/test/deadline"
)

// TestMutexWire: Lock waits without limit (the context bounds it),
// TryLock asks once, a TryLock while this process holds the Mutex asks
// nothing, and a loss while held comes back from Unlock, which frees the
// Mutex for the next Lock.
func TestMutexWire(t *testing.T) {
	c, s, nc := dialScripted(t)
	ctx := context.Background()
	m := c.Mutex("m", client.LockOptions{MaxHold: time.Minute})
	if err := exchange(t, s, nc, func() error { return m.Lock(ctx) }, "lock,name:m,wait:inf,max-hold:60\n", "ok,name:m,token:1\n"); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.TryLock(ctx); ok || err != nil {
		t.Fatalf("TryLock while held here: %v, %v", ok, err)
	}
	if h := m.Held(); h == nil || h.Token() != 1 {
		t.Fatalf("Held: %v", h)
	}
	io.WriteString(nc, "lost,name:m,why:maximum hold of 1m0s reached\n")
	deadline.Within(t, 10*time.Second, m.Held().Done(), "the loss")
	if err := m.Unlock(); !errors.Is(err, client.ErrLost) {
		t.Fatalf("Unlock after the loss: %v", err)
	}
	if err := m.Unlock(); !errors.Is(err, client.ErrNotLocked) {
		t.Fatalf("second Unlock: %v", err)
	}
	var ok bool
	if err := exchange(t, s, nc, func() (err error) { ok, err = m.TryLock(ctx); return err }, "lock,name:m,max-hold:60\n", "not-granted,name:m\n"); err != nil || ok {
		t.Fatalf("TryLock, held elsewhere: %v, %v", ok, err)
	}
	if err := exchange(t, s, nc, func() (err error) { ok, err = m.TryLock(ctx); return err }, "lock,name:m,max-hold:60\n", "ok,name:m,token:2\n"); err != nil || !ok {
		t.Fatalf("TryLock: %v, %v", ok, err)
	}
	if err := exchange(t, s, nc, m.Unlock, "release,name:m\n", "released,name:m\n"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Lock(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with an ended context: %v", err)
	}
}
