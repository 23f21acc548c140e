package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the bench binary when it is
// re-run as "nullserver", as startNull does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "nullserver" {
		os.Exit(runNullServer(os.Args[2:], os.Stderr))
	}
	os.Exit(m.Run())
}

// nullAddr starts an in-process null server for the test.
func nullAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serveNull(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("serveNull: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestNullReply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		session bool
		holding bool
		line    string
		want    string
		close   bool
	}{
		{name: "legacy lock", line: "lock,name:a\n", want: "ok\n"},
		{name: "legacy lock crlf spaces", line: " lock , name : a \r\n", want: "ok\n"},
		{name: "legacy lock with client id", line: "lock,name:a,client-id:me\n", want: "ok\n"},
		{name: "extension lock", line: "lock,name:a,wait:5\n", want: "ok,token:1\n"},
		{name: "legacy release", holding: true, line: "release\n", want: "released\n", close: true},
		{name: "second lock while holding", holding: true, line: "lock,name:b\n", want: "bad-action\n"},
		{name: "keepalive while holding", holding: true, line: ".keepalive\n", want: "alive\n"},
		{name: "ping", line: ".ping\n", want: "pong\n", close: true},
		{name: "unknown", line: "frob\n", want: "bad-action\n", close: true},
		{name: "session", line: ".session,client-id:bench\n", want: "session,dead-peer-timeout:30\n"},
		{name: "session lock", session: true, line: "lock,name:n1\n", want: "ok,name:n1,token:1\n"},
		{name: "session wait", session: true, line: "lock,name:n1,wait:inf\n", want: "ok,name:n1,token:1\n"},
		{name: "session release", session: true, line: "release,name:n1\n", want: "released,name:n1\n"},
		{name: "session ping", session: true, line: ".ping\n", want: "pong\n"},
		{name: "session quit", session: true, line: ".quit\n", want: "bye\n", close: true},
		{name: "last name wins", session: true, line: "lock,name:x,name:y\n", want: "ok,name:y,token:1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := nullState{session: tc.session, holding: tc.holding}
			var tok atomic.Uint64
			got, closeAfter := st.reply(nil, []byte(tc.line), &tok)
			if string(got) != tc.want || closeAfter != tc.close {
				t.Errorf("reply(%q) = %q, close %v; want %q, close %v", tc.line, got, closeAfter, tc.want, tc.close)
			}
		})
	}
}

func TestField(t *testing.T) {
	for _, tc := range []struct {
		rest, key string
		want      string
		present   bool
	}{
		{"name:a", "name", "a", true},
		{"client-id:x, name : b ", "name", "b", true},
		{"name:a:b", "name", "a:b", true},
		{"wait", "wait", "", true},
		{"name:a", "wait", "", false},
		{"", "name", "", false},
	} {
		got := field([]byte(tc.rest), tc.key)
		if (got != nil) != tc.present || string(got) != tc.want {
			t.Errorf("field(%q, %q) = %q (present %v), want %q (present %v)", tc.rest, tc.key, got, got != nil, tc.want, tc.present)
		}
	}
}

// TestNullWire checks the exact bytes on the wire, including several
// requests in one write and the close after a legacy release.
func TestNullWire(t *testing.T) {
	addr := nullAddr(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "lock,name:a\n.keepalive\nrelease\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c) // the server closes after "released"
	if err != nil {
		t.Fatal(err)
	}
	if want := "ok\nalive\nreleased\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}

	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c2)
	if _, err := io.WriteString(c2, ".session\nlock,name:a\nlock,name:b\nrelease,name:a\n"); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for range 4 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	want := "session,dead-peer-timeout:30\n|ok,name:a,token:1\n|ok,name:b,token:2\n|released,name:a\n"
	if got := strings.Join(lines, "|"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLegacyAndSessionCycles(t *testing.T) {
	addr := nullAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	l := newTnlLegacy(addr)
	for range 3 {
		if _, err := l.lock(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		if err := l.unlock(ctx, "x"); err != nil {
			t.Fatal(err)
		}
	}
	_ = l.close()

	s, err := openSession(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.timeout != 30*time.Second {
		t.Errorf("dead-peer timeout = %v, want 30s", s.timeout)
	}
	var last uint64
	for _, name := range []string{"x", "x", "y"} {
		tok, err := s.lock(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if tok <= last {
			t.Errorf("token %d after %d", tok, last)
		}
		last = tok
		if err := s.unlock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.keepalive(); err != nil {
		t.Fatal(err)
	}
}

// scripted is a server that answers each line with the next canned reply.
func scripted(t *testing.T, replies ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for _, r := range replies {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
			if _, err := io.WriteString(c, r); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

func TestUnexpectedReplies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var er *errReply

	_, err := newTnlLegacy(scripted(t, "not-granted\n")).lock(ctx, "a")
	if !errors.As(err, &er) || er.got != "not-granted\n" {
		t.Errorf("legacy lock answered not-granted: err %v", err)
	}

	s, err := openSession(ctx, scripted(t, "session,dead-peer-timeout:2.5\n", "not-granted,name:a\n", "ok,name:b,token:7\n", "err,name:b,not held\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.timeout != 2500*time.Millisecond {
		t.Errorf("timeout = %v, want 2.5s", s.timeout)
	}
	if _, err := s.lock(ctx, "a"); !errors.As(err, &er) {
		t.Errorf("session lock answered not-granted: err %v", err)
	}
	if tok, err := s.lock(ctx, "b"); err != nil || tok != 7 {
		t.Errorf("lock b = %d, %v; want 7", tok, err)
	}
	if err := s.unlock(ctx, "b"); !errors.As(err, &er) {
		t.Errorf("release answered err: err %v", err)
	}

	if _, err := openSession(ctx, scripted(t, "bad-action\n")); !errors.As(err, &er) {
		t.Errorf(".session answered bad-action: err %v", err)
	}
}

func TestParseGrant(t *testing.T) {
	p := []byte("ok,name:a,")
	for _, tc := range []struct {
		line string
		tok  uint64
		ok   bool
	}{
		{"ok,name:a,token:42\n", 42, true},
		{"ok,name:a,token:42,since:1\n", 42, true},
		{"ok,name:a,mode:shared,token:9\n", 9, true},
		{"ok,name:a,token:\n", 0, false},
		{"ok,name:a,token:4x\n", 0, false},
		{"ok,name:a,xtoken:4\n", 0, false},
		{"ok,name:ab,token:4\n", 0, false},
		{"not-granted,name:a\n", 0, false},
		{"ok,name:a,token:99999999999999999999\n", 0, false},
	} {
		tok, ok := parseGrant([]byte(tc.line), p)
		if tok != tc.tok || ok != tc.ok {
			t.Errorf("parseGrant(%q) = %d, %v; want %d, %v", tc.line, tok, ok, tc.tok, tc.ok)
		}
	}
}

func TestParseSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"30,other:1", 30 * time.Second, true},
		{"45s", 45 * time.Second, true},
		{"0", 0, false},
		{"x", 0, false},
		{"", 0, false},
	} {
		got, err := parseSeconds([]byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseSeconds(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
