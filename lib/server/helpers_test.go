package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/server"
)

// ioTimeout bounds every read and write of a test client: a server that
// does not answer fails the test instead of hanging it.
const ioTimeout = 10 * time.Second

// testServer is a server on 127.0.0.1:0, shut down when the test ends.
type testServer struct {
	*server.Server
	addr   string
	table  *lockd.Table
	logs   *syncBuffer
	served chan error
	once   sync.Once
}

type options struct {
	table  lockd.Options
	noPark bool // keep a goroutine per idle holder (the non-Linux path)
}

// start serves a fresh table with cfg. Log lines go to ts.logs.
func start(t testing.TB, cfg server.Config, opts ...options) *testServer {
	t.Helper()
	var o options
	if len(opts) > 0 {
		o = opts[0]
	}
	logs := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	table := lockd.New(o.table)
	srv := server.New(table, cfg)
	if o.noPark {
		server.DisableParking(srv)
	}
	l, err := server.Listen(context.Background(), "127.0.0.1:0", cfg.DeadPeerTimeout)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ts := &testServer{Server: srv, addr: l.Addr().String(), table: table, logs: logs, served: make(chan error, 1)}
	go func() { ts.served <- srv.Serve(l) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and checks that Serve returned ErrServerClosed.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	ts.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if err := ts.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-ts.served:
			if !errors.Is(err, server.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(ioTimeout):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
}

// peer is one TCP connection to the server.
type peer struct {
	t    testing.TB
	name string
	nc   *net.TCPConn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *peer {
	t.Helper()
	c, err := dialErr(t, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}

// dialErr is dial for goroutines other than the test's.
func dialErr(t testing.TB, addr string) (*peer, error) {
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	tc := nc.(*net.TCPConn)
	return &peer{t: t, name: tc.LocalAddr().String(), nc: tc, r: bufio.NewReader(tc)}, nil
}

func (c *peer) write(s string) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := io.WriteString(c.nc, s)
	return err
}

// line reads one answer line, "\n" included.
func (c *peer) line() (string, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	return c.r.ReadString('\n')
}

func (c *peer) send(s string) {
	c.t.Helper()
	if err := c.write(s); err != nil {
		c.t.Fatalf("%s: send %q: %v", c.name, s, err)
	}
}

// expect reads one line and fails unless it is exactly want.
func (c *peer) expect(want string) {
	c.t.Helper()
	got, err := c.line()
	if got != want || err != nil {
		c.t.Fatalf("%s: got %q (err %v), want %q", c.name, got, err, want)
	}
}

// roundtrip sends req and expects the answer want.
func (c *peer) roundtrip(req, want string) {
	c.t.Helper()
	c.send(req)
	c.expect(want)
}

// grant reads an extension grant, "ok,token:N\n", and returns N.
func (c *peer) grant() uint64 {
	c.t.Helper()
	n, err := c.grantErr()
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return n
}

// grantErr is grant for goroutines other than the test's.
func (c *peer) grantErr() (uint64, error) {
	line, err := c.line()
	tok, ok := strings.CutPrefix(line, "ok,token:")
	n, perr := strconv.ParseUint(strings.TrimSuffix(tok, "\n"), 10, 64)
	if err != nil || !ok || !strings.HasSuffix(tok, "\n") || perr != nil || n == 0 {
		return 0, fmt.Errorf("got %q (err %v), want ok,token:N", line, err)
	}
	return n, nil
}

// expectEOF fails unless the server closed the connection with nothing more
// to say.
func (c *peer) expectEOF() {
	c.t.Helper()
	got, err := c.line()
	if got != "" || err != io.EOF {
		c.t.Fatalf("%s: got %q (err %v), want EOF", c.name, got, err)
	}
}

// expectSilence fails if anything (bytes, EOF) arrives within d.
func (c *peer) expectSilence(d time.Duration) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	got, err := c.r.ReadString('\n')
	if got != "" || !isTimeout(err) {
		c.t.Fatalf("%s: got %q (err %v) within %v, want nothing", c.name, got, err, d)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *peer) close() { _ = c.nc.Close() }

// reset closes with an RST instead of a FIN.
func (c *peer) reset() {
	_ = c.nc.SetLinger(0)
	_ = c.nc.Close()
}

// hold takes the legacy lock name on a new connection.
func hold(t testing.TB, addr, name string) *peer {
	t.Helper()
	c := dial(t, addr)
	c.roundtrip("lock,name:"+name+"\n", "ok\n")
	return c
}

// queue asks for name with extension keys that make it wait (such as
// "wait:inf") and returns once the server has queued the request: the
// ".keepalive" sent behind it is answered only after the lock request has
// been handled.
func queue(t testing.TB, addr, name, keys string) *peer {
	t.Helper()
	c := dial(t, addr)
	c.roundtrip("lock,name:"+name+","+keys+"\n.keepalive\n", "alive\n")
	return c
}

// refused checks that a new legacy client is not granted name, as proof that
// it is still held.
func refused(t testing.TB, addr, name string) {
	t.Helper()
	c := dial(t, addr)
	c.roundtrip("lock,name:"+name+"\n", "not-granted\n")
	c.expectEOF()
	c.close()
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// grab polls with legacy requests until name is granted (the lock was freed
// by something asynchronous, such as a disconnect) and returns the holder.
func grab(t testing.TB, addr, name string) *peer {
	t.Helper()
	var got *peer
	eventually(t, name+" to be granted", func() bool {
		c := dial(t, addr)
		c.send("lock,name:" + name + "\n")
		line, err := c.line()
		switch {
		case line == "ok\n":
			got = c
			return true
		case line == "not-granted\n":
			c.close()
			return false
		}
		t.Fatalf("lock %s: got %q (err %v)", name, line, err)
		return false
	})
	return got
}

// holders fetches the .holders document of name (all names when name is "").
func holders(t testing.TB, addr, name string) protocol.Holders {
	t.Helper()
	line := holdersLine(t, addr, name)
	if !strings.HasPrefix(line, "holders,{") || !strings.HasSuffix(line, "}\n") {
		t.Fatalf(".holders %q: got %q", name, line)
	}
	var doc protocol.Holders
	dec := json.NewDecoder(strings.NewReader(strings.TrimPrefix(line, "holders,")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf(".holders %q: decode %q: %v", name, line, err)
	}
	return doc
}

// holdersLine asks .holders (of name, or of all) and returns the answer line.
func holdersLine(t testing.TB, addr, name string) string {
	t.Helper()
	c := dial(t, addr)
	defer c.close()
	req := ".holders\n"
	if name != "" {
		req = ".holders,name:" + name + "\n"
	}
	c.send(req)
	line, err := c.line()
	if err != nil {
		t.Fatalf("%s: %v after %d bytes", req, err, len(line))
	}
	c.expectEOF()
	return line
}

// waiterIDs lists the client ids queued for name, in queue order.
func waiterIDs(t testing.TB, addr, name string) []string {
	t.Helper()
	doc := holders(t, addr, name)
	if len(doc.Locks) == 0 {
		return nil
	}
	ids := make([]string, len(doc.Locks[0].Waiters))
	for i, w := range doc.Locks[0].Waiters {
		ids[i] = w.ClientID
	}
	return ids
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// script runs a transcript on several connections. Each step is a
// connection digit, an operation and its argument:
//
//	"0>bytes"  connection 0 sends bytes exactly as written
//	"0<line"   connection 0 reads one line that must be exactly line
//	"0$"       connection 0 reads EOF: the server closed it, nothing more said
//	"0x"       connection 0 closes
//
// Connections are dialled on first use.
func script(t *testing.T, addr string, steps ...string) {
	t.Helper()
	conns := map[byte]*peer{}
	for i, st := range steps {
		if len(st) < 2 {
			t.Fatalf("step %d: bad step %q", i, st)
		}
		id, op, arg := st[0], st[1], st[2:]
		c := conns[id]
		if c == nil {
			c = dial(t, addr)
			c.name = "conn " + string(id)
			conns[id] = c
		}
		switch op {
		case '>':
			if err := c.write(arg); err != nil {
				t.Fatalf("step %d (%s sends %q): %v", i, c.name, arg, err)
			}
		case '<':
			got, err := c.line()
			if got != arg || err != nil {
				t.Fatalf("step %d: %s got %q (err %v), want %q", i, c.name, got, err, arg)
			}
		case '$':
			got, err := c.line()
			if got != "" || err != io.EOF {
				t.Fatalf("step %d: %s got %q (err %v), want EOF", i, c.name, got, err)
			}
		case 'x':
			c.close()
		default:
			t.Fatalf("step %d: bad step %q", i, st)
		}
	}
}
