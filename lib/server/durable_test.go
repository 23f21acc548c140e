package server_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/server"
)

// brokenDisk is a lockd.Watched TokenSource that the test breaks and
// mends: while broken it issues no token, as FileTokens at its durable
// ceiling on a disk that refuses writes.
type brokenDisk struct {
	mu       sync.Mutex
	n        uint64
	err      error
	watchers []func(error)
}

func (b *brokenDisk) Next() (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, fmt.Errorf("%w: %w", lockd.ErrNotDurable, b.err)
	}
	b.n++
	return b.n, nil
}

func (b *brokenDisk) Degraded() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *brokenDisk) Watch(f func(error)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watchers = append(b.watchers, f)
}

func (b *brokenDisk) set(err error) {
	b.mu.Lock()
	b.err = err
	ws := b.watchers
	b.mu.Unlock()
	for _, f := range ws {
		f(err)
	}
}

const full = "write /state/fence.tmp: no space left on device"

// TestNotDurable: while fencing tokens cannot be made durable, every lock
// request that would be granted is refused with
// "err,fencing state not durable: WHY", legacy ones too (tcpnetlock's
// clients take an err line for a failure); a waiter at the head of a queue
// stays queued and is granted once the disk recovers; an extension .ping
// and .stats show it, a legacy .ping is still exactly "pong".
func TestNotDurable(t *testing.T) {
	disk := &brokenDisk{}
	ts := start(t, server.Config{}, options{table: lockd.Options{Tokens: disk}})
	addr := ts.addr
	stats := func(want string) {
		t.Helper()
		c := dial(t, addr)
		c.send(".stats\n")
		line, err := c.line()
		if err != nil || !strings.Contains(line, want) || !strings.HasSuffix(line, "}\n") {
			t.Fatalf(".stats: %q (err %v), want it to contain %s", line, err, want)
		}
	}
	script(t, addr, "0>.ping\n", "0<pong\n", "0$", "1>.ping,host:probe\n", "1<pong\n", "1$")
	stats(`, "degraded": 0}`)

	h := dial(t, addr)
	h.roundtrip("lock,name:q,wait:0\n", "ok,token:1\n")
	w := queue(t, addr, "q", "wait:inf")
	s := dial(t, addr)
	s.roundtrip(".session,client-id:s\n", "session,dead-peer-timeout:30\n")

	disk.set(errors.New(full))
	const refusal = "fencing state not durable: " + full + "\n"
	script(t, addr,
		"0>lock,name:a\n", "0<err,"+refusal, "0$",
		"1>lock,name:a,wait:5\n", "1<err,"+refusal, "1$",
		"2>lock,name:a,mode:shared\n", "2<err,"+refusal, "2$",
		"3>.ping\n", "3<pong\n", "3$",
		"4>.ping,host:probe\n", "4<pong,degraded:"+refusal, "4$",
	)
	s.roundtrip("lock,name:b\n", "err,name:b,"+refusal)
	s.roundtrip(".ping\n", "pong,degraded:"+refusal)
	stats(`, "degraded": 1}`)
	// The holder lets go: the waiter would be next, but gets no token and
	// stays queued (released is sent after the queue was looked at).
	h.roundtrip("release\n", "released\n")
	w.roundtrip(".keepalive\n", "alive\n")
	if doc := holders(t, addr, "q"); len(doc.Locks) != 1 || len(doc.Locks[0].Holders) != 0 || len(doc.Locks[0].Waiters) != 1 {
		t.Fatalf(".holders of q: %+v, want one waiter and no holder", doc)
	}

	disk.set(nil) // the table serves the stuck queue by itself
	if n := w.grant(); n != 2 {
		t.Fatalf("the waiter got token %d after the recovery, want 2", n)
	}
	s.roundtrip("lock,name:b\n", "ok,name:b,token:3\n")
	s.roundtrip(".ping\n", "pong\n")
	stats(`, "degraded": 0}`)
	script(t, addr, "0>lock,name:a\n", "0<ok\n", "0>release\n", "0<released\n", "0$")
	if logs := ts.logs.String(); strings.Contains(logs, "lock refused") {
		t.Errorf("a log line per refused request:\n%s", logs)
	}
}

// TestNotDurablePingValue: the reason in pong,degraded: is one VALUE: no
// comma, no line break, whatever the error says.
func TestNotDurablePingValue(t *testing.T) {
	disk := &brokenDisk{}
	ts := start(t, server.Config{}, options{table: lockd.Options{Tokens: disk}})
	disk.set(errors.New("open /a,b/fence.tmp: x\ny\x7f"))
	script(t, ts.addr, "0>.ping,pid:1\n", "0<pong,degraded:fencing state not durable: open /a;b/fence.tmp: x y \n", "0$")
	if err := ts.Stats().Degraded; err == nil {
		t.Error("Stats().Degraded is nil")
	}
	// tnl's clients, old ones too, read it as a pong.
	if r, err := protocol.ParseReply([]byte("pong,degraded:fencing state not durable: open /a;b/fence.tmp: x y \n")); err != nil || r.Kind != protocol.KindPong {
		t.Errorf("ParseReply: %+v, %v", r, err)
	}
}

// exhausted is a TokenSource past its last token.
type exhausted struct{}

func (exhausted) Next() (uint64, error) { return 0, lockd.ErrTokensExhausted }

// TestTokensExhausted: a refusal for want of a token while the table is not
// degraded (no episode that someone logs once) is answered in the table's
// words, to a legacy request too, and is an error line each time.
func TestTokensExhausted(t *testing.T) {
	ts := start(t, server.Config{}, options{table: lockd.Options{Tokens: exhausted{}}})
	script(t, ts.addr, "0>lock,name:a\n", "0<err,fencing tokens exhausted\n", "0$")
	script(t, ts.addr, "0>.session\n", "0<session,dead-peer-timeout:30\n",
		"0>lock,name:b\n", "0<err,name:b,fencing tokens exhausted\n", "0>.ping\n", "0<pong\n")
	for _, name := range []string{"a", "b"} {
		if !regexp.MustCompile(`level=ERROR msg="lock refused" name=` + name + ` .*err="fencing tokens exhausted"`).MatchString(ts.logs.String()) {
			t.Errorf("no error line for the refusal of %s:\n%s", name, ts.logs.String())
		}
	}
}
