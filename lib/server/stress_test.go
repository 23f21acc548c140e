package server_test

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/server"
)

const thousand = 1000

// grantLog records grants. Its run is each waiter's part once the lock is
// its turn: check that nobody else is inside, record the grant, release. The
// order of the records is the grant order, because each is made while
// holding.
type grantLog struct {
	inside  atomic.Int32
	overlap atomic.Int32
	mu      sync.Mutex
	order   []int
	tokens  []uint64
}

func (g *grantLog) run(t *testing.T, i int, c *peer) {
	// Every waiter reads its grant at the same moment, and the last one
	// waits for all the others: a longer deadline than ioTimeout.
	_ = c.nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	tok, err := c.grantErr()
	if err != nil {
		t.Errorf("client %d: %v", i, err)
		return
	}
	if g.inside.Add(1) != 1 {
		g.overlap.Add(1)
	}
	g.mu.Lock()
	g.order = append(g.order, i)
	g.tokens = append(g.tokens, tok)
	g.mu.Unlock()
	g.inside.Add(-1)
	if err := c.write("release\n"); err != nil {
		t.Errorf("client %d: release: %v", i, err)
		return
	}
	if line, err := c.line(); line != "released\n" {
		t.Errorf("client %d: release: got %q (err %v)", i, line, err)
		return
	}
	if line, err := c.line(); line != "" || err != io.EOF {
		t.Errorf("client %d: after release: got %q (err %v), want EOF", i, line, err)
	}
}

func (g *grantLog) check(t *testing.T, wantOrder []int) {
	t.Helper()
	if n := g.overlap.Load(); n != 0 {
		t.Errorf("%d grants overlapped another holder", n)
	}
	if len(g.order) != len(wantOrder) {
		t.Fatalf("%d of %d waiters served", len(g.order), len(wantOrder))
	}
	if !slices.Equal(g.order, wantOrder) {
		for k := range g.order {
			if g.order[k] != wantOrder[k] {
				t.Fatalf("grant %d went to client %d, want client %d (not FIFO)", k, g.order[k], wantOrder[k])
			}
		}
	}
	for k := 1; k < len(g.tokens); k++ {
		if g.tokens[k] <= g.tokens[k-1] {
			t.Fatalf("grant %d: token %d after %d", k, g.tokens[k], g.tokens[k-1])
		}
	}
}

// TestThousandWaitersFIFO: 1,000 clients queue for one name one after the
// other (each request is known to be queued, by the .keepalive answered
// behind it, before the next is sent), then wait together. They are served
// in exactly that order, one at a time.
func TestThousandWaitersFIFO(t *testing.T) {
	ts := start(t, server.Config{})
	gate := hold(t, ts.addr, "one")
	clients := make([]*peer, thousand)
	want := make([]int, thousand)
	wantIDs := make([]string, thousand)
	for i := range clients {
		clients[i] = queue(t, ts.addr, "one", fmt.Sprintf("client-id:c%d,wait:inf", i))
		want[i], wantIDs[i] = i, "c"+strconv.Itoa(i)
	}
	if ids := waiterIDs(t, ts.addr, "one"); !slices.Equal(ids, wantIDs) {
		t.Fatalf(".holders lists %d waiters, not in arrival order", len(ids))
	}
	var g grantLog
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { g.run(t, i, c) })
	}
	gate.roundtrip("release\n", "released\n")
	wg.Wait()
	g.check(t, want)
	if c := ts.table.Counters(); c.Held != 0 || c.Waiting != 0 || c.Names != 0 || c.Acquired != thousand+1 {
		t.Errorf("counters %+v, want %d acquired, nothing left", c, thousand+1)
	}
}

// TestThousandConcurrentClients: 1,000 clients ask for one name at the same
// moment. The queue order the server chose is read from .holders once all
// are queued; the grants must follow it, one holder at a time.
func TestThousandConcurrentClients(t *testing.T) {
	ts := start(t, server.Config{})
	gate := hold(t, ts.addr, "one")
	clients := make([]*peer, thousand)
	var queued, done sync.WaitGroup
	var g grantLog
	begin := make(chan struct{})
	for i := range clients {
		queued.Add(1)
		done.Go(func() {
			<-begin
			c, err := dialErr(t, ts.addr)
			if err == nil {
				err = c.write(fmt.Sprintf("lock,name:one,client-id:c%d,wait:inf\n.keepalive\n", i))
			}
			var line string
			if err == nil {
				line, err = c.line()
			}
			queued.Done()
			if line != "alive\n" {
				t.Errorf("client %d: got %q (err %v), want alive", i, line, err)
				return
			}
			g.run(t, i, c)
		})
	}
	close(begin)
	queued.Wait()
	if t.Failed() {
		gate.close()
		done.Wait()
		t.FailNow()
	}
	ids := waiterIDs(t, ts.addr, "one")
	want := make([]int, 0, len(ids))
	seen := map[int]bool{}
	for _, id := range ids {
		i, err := strconv.Atoi(id[1:])
		if err != nil || seen[i] {
			t.Fatalf("waiter %q listed twice or unknown", id)
		}
		seen[i] = true
		want = append(want, i)
	}
	if len(want) != thousand {
		t.Fatalf(".holders lists %d waiters, want %d", len(want), thousand)
	}
	gate.roundtrip("release\n", "released\n")
	done.Wait()
	g.check(t, want)
}
