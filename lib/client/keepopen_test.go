package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
)

// TestSilenceKeepsConnectionOpen: a lock lost to a silent server leaves the
// connection open, with no more heartbeats, until Close. A stalled server
// that wakes up must not read a close, and hand the lock on, while the
// program that held it is still stopping.
func TestSilenceKeepsConnectionOpen(t *testing.T) {
	l := listen(t)
	type event struct {
		line string
		err  error
		at   time.Time
	}
	events := make(chan event, 64)
	go func() {
		c, r := acceptGrant(l, "0.6", 3)
		if c == nil {
			return
		}
		defer c.Close()
		// Then silence: read what comes until the client closes.
		for {
			s, err := r.ReadString('\n')
			events <- event{s, err, time.Now()}
			if err != nil {
				return
			}
		}
	}()
	c, err := client.Dial(context.Background(), client.Options{Addr: l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lock, err := c.Lock(context.Background(), "x", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-lock.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("lock not lost to silence")
	}
	lost := time.Now()
	if !errors.Is(lock.Err(), client.ErrLost) || !strings.Contains(lock.Err().Error(), "no word from server") {
		t.Fatalf("Err = %v, want a loss to silence", lock.Err())
	}
	// For a whole dead-peer timeout after the loss, the server sees
	// neither a close nor a heartbeat sent after it.
	quiet := time.After(600 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case e := <-events:
			if e.err != nil {
				t.Fatalf("the server saw the connection end (%v) %v after the loss, before Close", e.err, e.at.Sub(lost))
			}
			if e.at.After(lost.Add(50 * time.Millisecond)) {
				t.Fatalf("the client still sends %q %v after the loss", e.line, e.at.Sub(lost))
			}
		case <-quiet:
			waiting = false
		}
	}
	c.Close()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-events:
			if e.err != nil {
				return // closed by Close
			}
		case <-deadline:
			t.Fatal("the connection is still open after Close")
		}
	}
}
