package client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/test/deadline"
)

// scripted is a server that hands the test every line it reads and writes
// what the test tells it to. Heartbeats are answered and counted apart.
type scripted struct {
	lines chan string
	beats chan string
	conn  chan net.Conn
}

func script(t *testing.T, l net.Listener) *scripted {
	s := &scripted{lines: make(chan string, 16), beats: make(chan string, 16), conn: make(chan net.Conn, 1)}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		s.conn <- c
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				close(s.lines)
				return
			}
			if line == ".keepalive\n" {
				io.WriteString(c, "alive\n")
				select {
				case s.beats <- line:
				default:
				}
				continue
			}
			s.lines <- line
		}
	}()
	return s
}

// TestWireBytes: every request the client sends, byte for byte, as
// tcpnetlock-era servers and tnl's own read them.
func TestWireBytes(t *testing.T) {
	l := listen(t)
	s := script(t, l)
	ctx := context.Background()
	within := func(ch <-chan string, what string) string { return deadline.Within(t, 10*time.Second, ch, what) }

	dialed := make(chan error, 1)
	var c *client.Client
	go func() {
		var err error
		c, err = client.Dial(ctx, client.Options{Addr: l.Addr().String(), ClientID: "alice,x@build1\n", Host: "build1", PID: 4242, AuthToken: "s3,cret"})
		dialed <- err
	}()
	if got, want := within(s.lines, "the session request"), ".session,client-id:alice_x@build1_,host:build1,pid:4242,auth:s3_cret\n"; got != want {
		t.Fatalf("session request %q; want %q", got, want)
	}
	nc := <-s.conn
	// A short dead-peer timeout: heartbeats come every 10ms.
	io.WriteString(nc, "session,dead-peer-timeout:0.06\n")
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := within(s.beats, "a heartbeat"); got != ".keepalive\n" {
		t.Fatalf("heartbeat %q", got)
	}

	steps := []struct {
		do     func() error
		want   string
		answer string
	}{
		{func() error { _, err := c.Lock(ctx, "job", client.LockOptions{}); return err }, "lock,name:job\n", "ok,name:job,token:1\n"},
		{func() error {
			_, err := c.Lock(ctx, "r/1", client.LockOptions{Wait: 2500 * time.Millisecond, Shared: true})
			return err
		}, "lock,name:r/1,wait:2.5,mode:shared\n", "ok,name:r/1,token:2\n"},
		{func() error {
			_, err := c.Lock(ctx, "sem", client.LockOptions{Wait: client.Forever, Limit: 3})
			return err
		}, "lock,name:sem,wait:inf,limit:3\n", "ok,name:sem,token:3\n"},
		{func() error {
			_, err := c.Lock(ctx, "one", client.LockOptions{Limit: 1})
			if !errors.Is(err, client.ErrNotGranted) {
				return err
			}
			return nil
		}, "lock,name:one\n", "not-granted,name:one\n"},
		{func() error { return c.Ping(ctx) }, ".ping\n", "pong\n"},
		{func() error { _, err := c.Stats(ctx); return err }, ".stats\n", "stats,{\"lock_count\": 3}\n"},
		{func() error { _, _, err := c.Holders(ctx); return err }, ".holders\n", "holders,{\"locks\":[]}\n"},
		{func() error { _, _, err := c.Holders(ctx, "job"); return err }, ".holders,name:job\n", "holders,{\"locks\":[]}\n"},
	}
	for _, st := range steps {
		done := make(chan error, 1)
		go func() { done <- st.do() }()
		if got := within(s.lines, st.want); got != st.want {
			t.Fatalf("sent %q; want %q", got, st.want)
		}
		io.WriteString(nc, st.answer)
		if err := deadline.Within(t, 10*time.Second, done, "the answer to "+st.want); err != nil {
			t.Fatalf("%q: %v", st.want, err)
		}
	}

	// A release, and the release a cancelled wait sends.
	held, err := func() (*client.Lock, error) {
		done := make(chan *client.Lock, 1)
		go func() {
			l, _ := c.Lock(ctx, "rel", client.LockOptions{})
			done <- l
		}()
		if got := within(s.lines, "lock rel"); got != "lock,name:rel\n" {
			return nil, errors.New("sent " + got)
		}
		io.WriteString(nc, "ok,name:rel,token:4\n")
		return deadline.Within(t, 10*time.Second, done, "the grant of rel"), nil
	}()
	if err != nil || held == nil {
		t.Fatalf("lock rel: %v", err)
	}
	released := make(chan error, 1)
	go func() { released <- held.Release() }()
	if got := within(s.lines, "release rel"); got != "release,name:rel\n" {
		t.Fatalf("sent %q; want release,name:rel", got)
	}
	io.WriteString(nc, "released,name:rel\n")
	if err := deadline.Within(t, 10*time.Second, released, "the release's answer"); err != nil {
		t.Fatal(err)
	}

	wctx, cancel := context.WithCancel(ctx)
	waited := make(chan error, 1)
	go func() {
		_, err := c.Lock(wctx, "w", client.LockOptions{Wait: time.Minute})
		waited <- err
	}()
	if got := within(s.lines, "lock w"); got != "lock,name:w,wait:60\n" {
		t.Fatalf("sent %q; want lock,name:w,wait:60", got)
	}
	cancel()
	if got := within(s.lines, "release w"); got != "release,name:w\n" {
		t.Fatalf("sent %q; want release,name:w", got)
	}
	io.WriteString(nc, "cancelled,name:w\n")
	if err := deadline.Within(t, 10*time.Second, waited, "the cancelled wait"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

// TestBreakWireBytes: the operator's one-shot request.
func TestBreakWireBytes(t *testing.T) {
	for _, tc := range []struct{ token, want string }{
		{"adm1n", ".break,name:stuck,auth:adm1n\n"},
		{"", ".break,name:stuck\n"},
	} {
		l := listen(t)
		s := script(t, l)
		done := make(chan error, 1)
		go func() {
			done <- client.Break(context.Background(), client.Options{Addr: l.Addr().String()}, "stuck", tc.token)
		}()
		if got := deadline.Within(t, 10*time.Second, s.lines, "the break request"); got != tc.want {
			t.Fatalf("sent %q; want %q", got, tc.want)
		}
		io.WriteString(<-s.conn, "released,name:stuck\n")
		if err := deadline.Within(t, 10*time.Second, done, "Break's answer"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDefaultSessionRequest: with the zero Options but an address, the
// session request names the user, this host and this process.
func TestDefaultSessionRequest(t *testing.T) {
	l := listen(t)
	s := script(t, l)
	go client.Dial(context.Background(), client.Options{Addr: l.Addr().String(), DialTimeout: time.Minute})
	got := deadline.Within(t, 10*time.Second, s.lines, "the session request")
	if !strings.HasPrefix(got, ".session,client-id:"+client.DefaultID()+",host:") || !strings.HasSuffix(got, ",pid:"+strconv.Itoa(os.Getpid())+"\n") {
		t.Fatalf("session request %q", got)
	}
}
