package client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
)

// TestCancelledLockEndsWithItsReleaseAnswer: a Lock whose context ends
// sends a release and returns once the server has answered it, whatever
// came first: the grant (ok, then released), the end of the wait (timeout
// or not-granted, then err not held), or nothing (cancelled). The next Lock
// on the same name then gets its own answer, not a leftover of the pair.
func TestCancelledLockEndsWithItsReleaseAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers string // the server's lines after it read the release
	}{
		{"granted meanwhile", "ok,name:x,token:5\nreleased,name:x\n"},
		{"timed out meanwhile", "timeout,name:x\nerr,name:x,not held\n"},
		{"refused meanwhile", "not-granted,name:x\nerr,name:x,not held\n"},
		{"refused with an error meanwhile", "err,name:x,limit mismatch\nerr,name:x,not held\n"},
		{"still waiting", "cancelled,name:x\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t)
			lines := make(chan string, 16)
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				r := bufio.NewReader(c)
				next := func() string {
					s, err := r.ReadString('\n')
					if err != nil {
						return ""
					}
					lines <- s
					return s
				}
				next()
				io.WriteString(c, "session,dead-peer-timeout:60\n")
				next() // lock,name:x,wait:inf
				next() // release,name:x
				io.WriteString(c, tc.answers)
				next() // lock,name:x
				io.WriteString(c, "ok,name:x,token:9\n")
				next() // until the client closes
			}()
			c, err := client.Dial(context.Background(), client.Options{Addr: l.Addr().String()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, err := c.Lock(ctx, "x", client.LockOptions{Wait: client.Forever})
				errc <- err
			}()
			want := []string{"", "lock,name:x,wait:inf\n"}
			for i, w := range want {
				select {
				case got := <-lines:
					if i > 0 && got != w {
						t.Fatalf("server read %q, want %q", got, w)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("server did not read line %d", i+1)
				}
			}
			cancel()
			select {
			case got := <-lines:
				if got != "release,name:x\n" {
					t.Fatalf("server read %q, want the release", got)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no release after the context ended")
			}
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Lock returned %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Lock did not return after the release was answered")
			}
			lock, err := c.Lock(context.Background(), "x", client.LockOptions{})
			if err != nil {
				t.Fatalf("the next Lock: %v, want the lock of its own answer", err)
			}
			if lock.Token() != 9 {
				t.Fatalf("the next Lock got token %d, want 9", lock.Token())
			}
			if s := <-lines; !strings.HasPrefix(s, "lock,name:x") {
				t.Fatalf("server read %q, want the next lock", s)
			}
		})
	}
}

// TestContextEndsExchangesWithStalledServer: a server that accepted the
// connection and then says nothing (stopped, say) does not keep a caller
// whose context ended: neither in the session exchange of Dial, nor in the
// release that ends a cancelled wait.
func TestContextEndsExchangesWithStalledServer(t *testing.T) {
	l := listen(t)
	answerSession := make(chan bool, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				r.ReadString('\n')
				if <-answerSession {
					io.WriteString(c, "session,dead-peer-timeout:60\n")
				}
				io.Copy(io.Discard, r) // then silence
			}()
		}
	}()
	addr := l.Addr().String()

	// Dial: the session line is never answered.
	answerSession <- false
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := client.Dial(ctx, client.Options{Addr: addr, DialTimeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Dial returned %v after the context ended, want at once", d)
	}

	// Lock: the wait's release is never answered.
	answerSession <- true
	c, err := client.Dial(context.Background(), client.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	if _, err := c.Lock(ctx, "x", client.LockOptions{Wait: client.Forever}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Lock returned %v after the context ended, want within about a second", d)
	}
}
