package server_test

// Bounds on what one peer can make the server hold or do (issue 9): the
// length of a .holders answer, the memory a reader that does not read pins,
// the locks and waits of one session, the cost of many waits in one
// session, the log lines it can make the server repeat.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/server"
	"github.com/tnl-lock/tnl/lib/table"
)

// nopNotifier is the Notifier of owners a test puts in the table directly,
// to fill it faster than over the wire.
type nopNotifier struct{}

func (nopNotifier) Granted(table.Holder)     {}
func (nopNotifier) Lost(table.Holder, error) {}

func tableOwner(tb table.Table, id string) table.Owner {
	return tb.NewOwner(table.Info{ClientID: id, Host: "host", PID: 7, Addr: "127.0.0.1:9"}, nopNotifier{})
}

// marshalHolders is the answer line encoding/json makes of doc.
func marshalHolders(t *testing.T, doc protocol.Holders) string {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return "holders," + string(b) + "\n"
}

// TestHoldersMaxAnswerBytes: the answer is exactly encoding/json's of what
// it lists, at most MaxAnswerBytes long; one byte too few and the last party
// is left out, with "truncated":true.
func TestHoldersMaxAnswerBytes(t *testing.T) {
	const clock = 1764064188238534705
	table := lockd.Options{Now: func() int64 { return clock }}
	since := time.Unix(0, clock).UTC()
	full := func(max int) string {
		ts := start(t, server.Config{MaxAnswerBytes: max}, options{table: table})
		a := hold(t, ts.addr, "a")
		b := dial(t, ts.addr)
		b.roundtrip("lock,name:b,mode:shared,client-id:bob,pid:12,host:hb\n", "ok,token:2\n")
		w := queue(t, ts.addr, "a", "client-id:<w>,wait:inf")
		party := func(c *peer, id, host string, pid int, mode string, token uint64) protocol.Party {
			return protocol.Party{ClientID: id, Host: host, PID: pid, Addr: c.nc.LocalAddr().String(), Mode: mode, Since: since, Token: token}
		}
		doc := protocol.Holders{Locks: []protocol.LockInfo{
			{Name: "a", Mode: "exclusive", Limit: 1, Token: 1, Holders: []protocol.Party{party(a, "", "", 0, "exclusive", 1)},
				Waiters: []protocol.Party{party(w, "<w>", "", 0, "exclusive", 0)}},
			{Name: "b", Mode: "shared", Limit: 1, Token: 2, Holders: []protocol.Party{party(b, "bob", "hb", 12, "shared", 2)}, Waiters: []protocol.Party{}},
		}}
		got := holdersLine(t, ts.addr, "")
		want := marshalHolders(t, doc)
		if max >= len(want)+17 {
			if got != want {
				t.Errorf("max %d:\n got %s\nwant %s", max, got, want)
			}
			return want
		}
		// One byte short of room for the last party, and its place for
		// "truncated":true: b is left out.
		doc.Locks, doc.Truncated = doc.Locks[:1], true
		if want := marshalHolders(t, doc); got != want || len(got) > max {
			t.Errorf("max %d: %d bytes\n got %s\nwant %s", max, len(got), got, want)
		}
		return ""
	}
	want := full(1 << 20)
	// The encoder keeps room to end the answer as truncated: 17 bytes
	// more than a whole answer takes, `],"truncated":true}` instead of `]}`.
	full(len(want) + 17)
	full(len(want) + 16)
}

// fillTable puts n waiters with long client ids on name, held by another.
func fillTable(t *testing.T, tb *lockd.Table, name string, n int) {
	t.Helper()
	if _, res, _ := tb.Acquire(tableOwner(tb, "holder"), table.Request{Name: name}); res != table.Granted {
		t.Fatalf("hold %s: %v", name, res)
	}
	for i := range n {
		id := fmt.Sprintf("%05d-%s", i, strings.Repeat("w", 250))
		if _, res, _ := tb.Acquire(tableOwner(tb, id), table.Request{Name: name, Wait: true}); res != table.Queued {
			t.Fatalf("wait %d on %s: %v", i, name, res)
		}
	}
}

// TestHoldersDefaultBound: with the defaults, a name with 10,000 waiters
// (the most --max-waiters allows) is listed in queue order up to 1 MiB,
// and the answer says it is cut.
func TestHoldersDefaultBound(t *testing.T) {
	ts := start(t, server.Config{})
	fillTable(t, ts.table, "x", 10000)
	for _, name := range []string{"", "x"} {
		line := holdersLine(t, ts.addr, name)
		if len(line) > 1<<20 || !strings.HasSuffix(line, `],"truncated":true}`+"\n") {
			t.Fatalf(".holders %s: %d bytes, want at most %d, truncated: ...%s", name, len(line), 1<<20, line[max(0, len(line)-80):])
		}
		var doc protocol.Holders
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "holders,")), &doc); err != nil || len(doc.Locks) != 1 {
			t.Fatalf(".holders %s: %v, %d locks", name, err, len(doc.Locks))
		}
		ws := doc.Locks[0].Waiters
		if len(ws) < 2000 || len(ws) == 10000 { // 370 bytes each
			t.Errorf(".holders %s: %d waiters listed", name, len(ws))
		}
		for i, w := range ws {
			if !strings.HasPrefix(w.ClientID, fmt.Sprintf("%05d-", i)) {
				t.Fatalf(".holders %s: waiter %d is %.10s..., out of queue order", name, i, w.ClientID)
			}
		}
	}
}

// TestHoldersPages: a name with more parties than one page of the table's
// listing is listed whole, in order, and MaxListed still bounds each list.
func TestHoldersPages(t *testing.T) {
	ts := start(t, server.Config{MaxListed: 300})
	fillTable(t, ts.table, "x", 299)
	doc := holders(t, ts.addr, "x")
	if doc.Truncated || len(doc.Locks) != 1 || len(doc.Locks[0].Holders) != 1 || len(doc.Locks[0].Waiters) != 299 {
		t.Fatalf("299 waiters: truncated %v, %+v", doc.Truncated, doc.Locks)
	}
	for i, w := range doc.Locks[0].Waiters {
		if !strings.HasPrefix(w.ClientID, fmt.Sprintf("%05d-", i)) {
			t.Fatalf("waiter %d is %.10s..., out of queue order", i, w.ClientID)
		}
	}
	fillTable(t, ts.table, "y", 301)
	doc = holders(t, ts.addr, "y")
	if !doc.Truncated || len(doc.Locks[0].Waiters) != 300 {
		t.Errorf("301 waiters, MaxListed 300: truncated %v, %d listed", doc.Truncated, len(doc.Locks[0].Waiters))
	}
	// Exactly MaxListed holders: nothing is left out, nothing said so.
	ts = start(t, server.Config{MaxListed: 2})
	hold(t, ts.addr, "z")
	queue(t, ts.addr, "z", "wait:inf")
	queue(t, ts.addr, "z", "wait:inf")
	if doc := holders(t, ts.addr, "z"); doc.Truncated || len(doc.Locks[0].Holders) != 1 || len(doc.Locks[0].Waiters) != 2 {
		t.Errorf("MaxListed 2, 1 holder and 2 waiters: %+v", doc)
	}
}

// TestHoldersSlowReader: sessions that ask .holders over and over and never
// read block only themselves: a release that grants one of their waits
// answers at once, others are served, each pins little memory, and each is
// cut when its answer has not gone out within the dead-peer timeout, which
// releases what it held.
func TestHoldersSlowReader(t *testing.T) {
	const (
		slow     = 20
		deadPeer = 2 * time.Second
		perConn  = 512 << 10 // what one may pin, at most
	)
	ts := start(t, server.Config{DeadPeerTimeout: deadPeer})
	fillTable(t, ts.table, "big", 5000) // answers of 1 MiB, cut
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapInuse

	l := hold(t, ts.addr, "x")
	req0 := ts.Stats().Requests
	for i := range slow {
		c := dial(t, ts.addr)
		c.roundtrip(".session\n", "session,dead-peer-timeout:2\n")
		if i == 0 {
			c.roundtrip("lock,name:x,wait:inf\n.keepalive\n", "alive\n")
		}
		c.send(strings.Repeat(".holders\n", 50)) // 50 MiB of answers, never read
	}
	// Once each reader's goroutine has got to its first .holders (stuck in
	// a write, or still going if the socket's buffers take more), what each
	// holds is what any of them ever holds.
	eventually(t, "the readers to get to their answers", func() bool {
		return ts.Stats().Requests >= req0+uint64(slow)*2+2
	})
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapInuse) - int64(heap0); grew > slow*perConn {
		t.Errorf("%d readers that do not read: heap grew by %d KiB, more than %d KiB each", slow, grew>>10, perConn>>10)
	} else {
		t.Logf("%d readers that do not read: heap grew by %d KiB (%d KiB each)", slow, grew>>10, grew/slow>>10)
	}

	// x goes to the first reader, whose goroutine is stuck writing: the
	// releaser is answered at once all the same.
	t0 := time.Now()
	l.roundtrip("release\n", "released\n")
	if d := time.Since(t0); d > time.Second {
		t.Errorf("release took %v while the waiter does not read", d)
	}
	c := dial(t, ts.addr)
	c.roundtrip(".ping\n", "pong\n")
	refused(t, ts.addr, "x")
	// Cut within the dead-peer timeout of its answer: x is free again.
	g := grab(t, ts.addr, "x")
	g.close()
	eventually(t, "the readers to be cut", func() bool { return ts.Stats().Connections <= 1 })
	if !strings.Contains(ts.logs.String(), `msg="connection closed: answers not read in time"`) {
		t.Errorf("no log line for the readers cut:\n%s", ts.logs.String())
	}
}

// TestSessionCaps: over MaxSessionLocks (held and awaited) or
// MaxSessionWaits, a session's lock request is refused with one clear line,
// and it keeps everything it had.
func TestSessionCaps(t *testing.T) {
	ts := start(t, server.Config{MaxSessionLocks: 3, MaxSessionWaits: 1})
	script(t, ts.addr,
		"0>lock,name:x\n", "0<ok\n", // token 1
		"1>lock,name:y\n", "1<ok\n", // token 2
		"2>.session,client-id:s\n", "2<session,dead-peer-timeout:30\n",
		"2>lock,name:x,wait:inf\n.keepalive\n", "2<alive\n",
		"2>lock,name:y,wait:5\n", "2<err,name:y,too many waits in this session (max 1)\n",
		"2>lock,name:z,wait:5\n", "2<ok,name:z,token:3\n", // at the cap on waits, but free
		"2>lock,name:y\n", "2<not-granted,name:y\n",
		"2>lock,name:a\n", "2<ok,name:a,token:4\n",
		"2>lock,name:b\n", "2<err,name:b,too many locks in this session (max 3)\n",
		"2>lock,name:b,wait:inf\n", "2<err,name:b,too many locks in this session (max 3)\n",
		"2>release,name:a\n", "2<released,name:a\n",
		"2>lock,name:b\n", "2<ok,name:b,token:5\n",
		"0>release\n", "0<released\n", "0$",
		"2<ok,name:x,token:6\n", // the wait kept its place
		"3>lock,name:x\n", "3<not-granted\n", "3$",
	)
	if n := strings.Count(ts.logs.String(), "lock refused: too many"); n != 3 {
		t.Errorf("%d log lines for the refusals, want 3:\n%s", n, ts.logs.String())
	}
	// Negative: no cap.
	ts = start(t, server.Config{MaxSessionLocks: -1, MaxSessionWaits: -1})
	c := dial(t, ts.addr)
	c.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "lock,name:n%d\n", i)
	}
	c.send(b.String())
	for i := range 200 {
		c.expect("ok,name:n" + strconv.Itoa(i) + ",token:" + strconv.Itoa(i+1) + "\n")
	}
}

// TestSessionDefaultCaps: a session may wait for 10,000 names, and not for
// one more, by default.
func TestSessionDefaultCaps(t *testing.T) {
	const waits = 10000
	ts := start(t, server.Config{})
	o := tableOwner(ts.table, "holder")
	for i := range waits + 1 {
		ts.table.Acquire(o, table.Request{Name: "n" + strconv.Itoa(i)})
	}
	c := dial(t, ts.addr)
	c.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	var b strings.Builder
	for i := range waits + 1 {
		fmt.Fprintf(&b, "lock,name:n%d,wait:inf\n", i)
	}
	go c.write(b.String())
	c.expect(fmt.Sprintf("err,name:n%d,too many waits in this session (max %d)\n", waits, waits))
	if st := ts.Stats(); st.Waiting != waits {
		t.Errorf("%d waiting, want %d", st.Waiting, waits)
	}
}

// processCPU is this process's user and system time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSessionManyWaits: 150,000 waits in one session cost the server time
// in proportion to their number, not to its square: queued, then granted
// (each found among the others), then timed out. Before they were a list,
// and queueing them alone took 35 s of CPU. The figure is this process's
// CPU (server and client both); the bound is far above it and far below
// the quadratic cost, also under the race detector.
func TestSessionManyWaits(t *testing.T) {
	if testing.Short() {
		t.Skip("150,000 waits: not in -short")
	}
	const n = 150000
	ts := start(t, server.Config{MaxSessionLocks: -1, MaxSessionWaits: -1, DeadPeerTimeout: 5 * time.Minute})
	o := tableOwner(ts.table, "holder")
	hs := make([]table.Holder, n)
	for i := range n {
		hs[i], _, _ = ts.table.Acquire(o, table.Request{Name: "w" + strconv.Itoa(i)})
	}
	c := dial(t, ts.addr)
	c.roundtrip(".session\n", "session,dead-peer-timeout:300\n")
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "lock,name:w%d,wait:%d\n", i, 1000+i%7) // deadlines in no order
	}
	b.WriteString(".ping\n")
	cpu0 := processCPU()
	go c.write(b.String())
	c.expect("pong\n")
	queued := processCPU() - cpu0
	// Granted in an order unlike theirs: each grant finds its wait.
	var got atomic.Int64
	done := make(chan error, 1)
	go func() {
		for range n {
			line, err := c.line()
			if err != nil || !strings.HasPrefix(line, "ok,name:w") {
				done <- fmt.Errorf("got %q (%v), want a grant", line, err)
				return
			}
			got.Add(1)
		}
		done <- nil
	}()
	for i := n - 1; i >= 0; i-- {
		ts.table.Release(hs[i])
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	total := processCPU() - cpu0
	t.Logf("%d waits in one session: queued in %v of CPU, granted in %v more", n, queued.Round(time.Millisecond), (total - queued).Round(time.Millisecond))
	if bound := 20 * time.Second; total > bound {
		t.Errorf("%d waits cost %v of CPU, more than %v", n, total, bound)
	}
}

// TestSessionWaitsOrder: the timeouts of a session's waits come in the order
// of their deadlines; a wait granted before its deadline is answered ok,
// once; releasing a wait answers cancelled and nothing else.
func TestSessionWaitsOrder(t *testing.T) {
	ts := start(t, server.Config{})
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		hold(t, ts.addr, n)
	}
	c := dial(t, ts.addr)
	c.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	c.roundtrip("lock,name:a,wait:0.3\nlock,name:b,wait:inf\nlock,name:c,wait:0.1\nlock,name:d,wait:0.2\nlock,name:e,wait:0.2\n.ping\n", "pong\n")
	c.roundtrip("release,name:d\n", "cancelled,name:d\n")
	c.expect("timeout,name:c\n")
	c.expect("timeout,name:e\n")
	c.expect("timeout,name:a\n")
	c.roundtrip(".keepalive\n", "alive\n")
	c.roundtrip("release,name:b\n", "cancelled,name:b\n")
	c.expectSilence(50 * time.Millisecond)
}

// TestRefusalLogLimited: a flood of refused requests makes a few log lines
// a second and summaries that count the rest, exactly.
func TestRefusalLogLimited(t *testing.T) {
	const n = 200
	ts := start(t, server.Config{AuthToken: "s3cret"})
	t0 := time.Now()
	for range n {
		c := dial(t, ts.addr)
		c.roundtrip("lock,name:x\n", "err,authentication required\n")
		c.close()
	}
	windows := int(time.Since(t0)/time.Second) + 2 // those the flood touched, at most
	ts.stop(t)                                     // tells the summaries still due
	passed, suppressed := 0, 0
	sum := regexp.MustCompile(`msg="request refused: authentication required \((\d+) similar lines suppressed\)"`)
	for _, l := range strings.Split(ts.logs.String(), "\n") {
		if m := sum.FindStringSubmatch(l); m != nil {
			k, _ := strconv.Atoi(m[1])
			suppressed += k
		} else if strings.Contains(l, `msg="request refused: authentication required"`) {
			passed++
		}
	}
	if passed+suppressed != n || passed > 5*windows {
		t.Errorf("%d refusals: %d lines, %d told as suppressed; want %d in all, at most %d lines:\n%s", n, passed, suppressed, n, 5*windows, ts.logs.String())
	}
}
