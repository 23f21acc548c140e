package client_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/server"
)

// A lost lock's KillBy is 3/4 of the dead-peer timeout after the server
// last heard from the client: when the client sent the last heartbeat the
// server answered. Not after the loss was declared (half the timeout after
// the last line), and not after a line the server sent on its own, which
// proves nothing about what it heard.
func TestKillByFromLastAnsweredHeartbeat(t *testing.T) {
	// Long enough that a loaded machine still sends the three heartbeats
	// in time; the tolerances below are a fraction of it for the same
	// reason.
	const deadPeer = 2400 * time.Millisecond // heartbeats every 400ms, loss after 1.2s
	const slack = deadPeer / 8
	for _, tc := range []struct {
		name   string
		aside  bool // a line of its own after the last answer
		before bool // KillBy comes before the loss is declared
	}{
		{"silence", false, false},
		{"a line of its own, then silence", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t)
			lastAnswered := make(chan time.Time, 1)
			go func() {
				var at time.Time
				// Always tell the test what was answered (zero: nothing),
				// so that it never waits for a goroutine that gave up.
				sent := false
				defer func() {
					if !sent {
						lastAnswered <- at
					}
				}()
				c, r := acceptGrant(l, "2.4", 1)
				if c == nil {
					return
				}
				defer c.Close()
				for n := 0; n < 3; {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.TrimSpace(line) == ".keepalive" {
						at = time.Now()
						io.WriteString(c, "alive\n")
						n++
					}
				}
				lastAnswered <- at
				sent = true
				if tc.aside {
					// An operator's break of a lock this client does not
					// hold: a line, but no answer to anything it sent.
					time.Sleep(deadPeer / 4)
					io.WriteString(c, "lost,name:other\n")
				}
				io.Copy(io.Discard, r) // then silence
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
			if !lock.KillBy().IsZero() {
				t.Fatalf("KillBy of a held lock = %v, want zero", lock.KillBy())
			}
			select {
			case <-lock.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("lock not lost")
			}
			lost := time.Now()
			var answered time.Time
			select {
			case answered = <-lastAnswered:
			case <-time.After(10 * time.Second):
				t.Fatal("the scripted server said nothing of the heartbeats it answered")
			}
			if answered.IsZero() {
				t.Fatal("the connection ended before three heartbeats were answered")
			}
			kb := lock.KillBy()
			// The heartbeat was sent before the server read it, and less
			// than a round trip on loopback before.
			want := answered.Add(deadPeer * 3 / 4)
			if d := kb.Sub(want); d > 0 || d < -slack {
				t.Errorf("KillBy is %v after the last answered heartbeat, want 3/4 of %v (%v), or up to %v less",
					kb.Sub(answered), deadPeer, deadPeer*3/4, slack)
			}
			if got := kb.Before(lost); got != tc.before {
				t.Errorf("KillBy %v the loss (%v apart), want before: %v", map[bool]string{true: "before", false: "after"}[got], kb.Sub(lost), tc.before)
			}
			if !tc.before {
				// Declared lost half the timeout after the last line: a
				// quarter of it is left.
				if left := kb.Sub(lost); left > deadPeer/4 || left < deadPeer/4-slack {
					t.Errorf("KillBy %v after the loss, want about a quarter of %v", left, deadPeer)
				}
			}
			lock.Release()
			if kb2 := lock.KillBy(); !kb2.Equal(kb) {
				t.Errorf("KillBy changed after Release: %v, then %v", kb, kb2)
			}
		})
	}
}

// A lock released is not lost: no deadline.
func TestKillByZeroAfterRelease(t *testing.T) {
	addr := startServer(t, server.Config{})
	c := dial(t, addr, "a")
	lock, err := c.Lock(context.Background(), "r", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	if !lock.KillBy().IsZero() {
		t.Fatalf("KillBy after Release = %v, want zero", lock.KillBy())
	}
}
