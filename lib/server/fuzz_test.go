package server_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/server"
)

// FuzzHostileConnection sends arbitrary bytes on a fresh connection (then
// half-closes it) while a legacy holder and a session holder keep their
// locks. Whatever the bytes, afterwards both holders still hold their locks,
// nobody else can take them, and the server still answers.
func FuzzHostileConnection(f *testing.F) {
	for _, seed := range []string{
		"lock,name:victim\n", "lock,name:victim,wait:inf\n", ".session\nrelease,name:victim\n",
		"release\n", ".break,name:victim\n", ".server-shutdown\n", "\x00\xff\xfe,,::\n\n",
		"lock,name:victim\r\nrelease\r\n", ".holders,name:victim\n", "lock,name:a,limit:0\n",
		"lock,name:victim,mode:shared\n", ".session,auth:x\nlock,name:victim,wait:0.01\n",
	} {
		f.Add([]byte(seed))
	}
	ts := start(f, server.Config{FirstLineTimeout: time.Second, MaxLineLength: 256})
	legacy := dialT(f, ts.addr)
	sendT(f, legacy, "lock,name:victim\n")
	expectT(f, legacy, "ok\n")
	sess := dialT(f, ts.addr)
	sendT(f, sess, ".session\nlock,name:victim2\n")
	expectT(f, sess, "session,dead-peer-timeout:30\n")
	if l := readLineT(f, sess); l[:len("ok,name:victim2,token:")] != "ok,name:victim2,token:" {
		f.Fatalf("session lock: %q", l)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c) // until the server closes
		c.Close()

		for _, name := range []string{"victim", "victim2"} {
			p := dialT(t, ts.addr)
			sendT(t, p, "lock,name:"+name+"\n")
			expectT(t, p, "not-granted\n")
			p.Close()
		}
		sendT(t, legacy, ".keepalive\n")
		expectT(t, legacy, "alive\n")
		sendT(t, sess, ".keepalive\n")
		expectT(t, sess, "alive\n")
	})
}

func dialT(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendT(t testing.TB, c net.Conn, s string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

var readers = map[net.Conn]*bufio.Reader{}

func readLineT(t testing.TB, c net.Conn) string {
	t.Helper()
	r := readers[c]
	if r == nil {
		r = bufio.NewReader(c)
		readers[c] = r
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	l, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %q, %v", l, err)
	}
	return l
}

func expectT(t testing.TB, c net.Conn, want string) {
	t.Helper()
	if got := readLineT(t, c); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
