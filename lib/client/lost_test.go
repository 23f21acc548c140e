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
	"github.com/tnl-lock/tnl/test/deadline"
)

// TestLostEndsThatLeaseOnly: a server's "lost,name:N" (an operator broke
// the lock) ends the lock of N at once, with ErrLost and why, and nothing
// else: the session and its other locks go on. A scripted server says it
// on its own, with nothing asked, as lib/server does after a .break.
func TestLostEndsThatLeaseOnly(t *testing.T) {
	l := listen(t)
	sendLost := make(chan struct{})
	released := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		lines := make(chan string)
		go func() {
			defer close(lines)
			for {
				s, err := r.ReadString('\n')
				if err != nil {
					return
				}
				lines <- s
			}
		}()
		for {
			select {
			case <-sendLost:
				sendLost = nil
				io.WriteString(c, "lost,name:x\n")
			case s, ok := <-lines:
				if !ok {
					return
				}
				switch {
				case strings.HasPrefix(s, ".session"):
					io.WriteString(c, "session,dead-peer-timeout:30\n")
				case strings.HasPrefix(s, "lock,name:x"):
					io.WriteString(c, "ok,name:x,token:5\n")
				case strings.HasPrefix(s, "lock,name:y"):
					io.WriteString(c, "ok,name:y,token:6\n")
				case s == ".keepalive\n":
					io.WriteString(c, "alive\n")
				case s == "release,name:y\n":
					released <- s
					io.WriteString(c, "released,name:y\n")
				default:
					io.WriteString(c, "bad-action\n")
				}
			}
		}
	}()
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Options{Addr: l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	x, err := c.Lock(ctx, "x", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	y, err := c.Lock(ctx, "y", client.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	close(sendLost)
	deadline.Within(t, 5*time.Second, x.Done(), `lock x to end after "lost,name:x" (the client ignores "lost"?)`)
	want := "lock lost: broken by an operator on server " + l.Addr().String()
	if err := x.Err(); !errors.Is(err, client.ErrLost) || err.Error() != want {
		t.Fatalf("x.Err() = %v, want %q (errors.Is ErrLost)", err, want)
	}
	select {
	case <-y.Done():
		t.Fatalf("lock y ended too: %v", y.Err())
	default:
	}
	if err := y.Release(); err != nil {
		t.Fatalf("release y after x was lost: %v", err)
	}
	deadline.Within(t, 5*time.Second, released, "the server to read the release of y")
}
