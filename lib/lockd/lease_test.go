package lockd_test

import (
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

// fakeClock is a table clock that moves only when a test says.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() int64                   { return c.ns.Load() }
func (c *fakeClock) add(d time.Duration)          { c.ns.Add(int64(d)) }
func (c *fakeClock) at(d time.Duration) time.Time { return time.Unix(0, int64(d)) }

func leaseKey(s string) table.LeaseKey {
	var k table.LeaseKey
	copy(k[:], s)
	return k
}

// grants is a Notifier that hands the grants to the test and fails it on a
// loss.
type grants chan table.Holder

func (g grants) Granted(h table.Holder) { g <- h }
func (g grants) Lost(h table.Holder, why error) {
	panic("lost " + h.Name() + ": " + why.Error())
}

func (g grants) none(t *testing.T) {
	t.Helper()
	select {
	case h := <-g:
		t.Fatalf("granted %s token %d, want nothing", h.Name(), h.Token())
	default:
	}
}

func (g grants) one(t *testing.T, want table.Holder) {
	t.Helper()
	select {
	case h := <-g:
		if h != want {
			t.Fatalf("granted %s token %d, not the holder wanted", h.Name(), h.Token())
		}
	default:
		t.Fatal("granted nothing, want a grant")
	}
}

// TestLeaseClock: by the table's own clock, a lease lives its TTL from
// the grant, a renew (ttl 0: the granted TTL) moves its end, a renew never
// moves it past grant+MaxHold, and at its end ExpireDue takes it away and
// grants the waiter, counting it in Expired. Between its Expires and the
// expiry the lease is already gone for Renew, LookupLease and
// ReleaseLease.
func TestLeaseClock(t *testing.T) {
	var clk fakeClock
	clk.add(1000 * time.Second)
	tb := lockd.New(lockd.Options{Now: clk.now})
	g := make(grants, 4)
	o := tb.NewOwner(table.Info{ClientID: "o", Addr: "10.0.0.1:1"}, g)
	p := tb.NewOwner(table.Info{ClientID: "p"}, g)
	k := leaseKey("k")
	h, res, err := tb.Acquire(o, table.Request{Name: "x", Lease: &table.LeaseRequest{Key: k, TTL: 10 * time.Second}, MaxHold: 25 * time.Second})
	if res != table.Granted || err != nil || h.Token() != 1 {
		t.Fatalf("lease: %v, %v, token %v", res, err, h)
	}
	if n := o.Count(); n != 0 {
		t.Fatalf("owner Count with a granted lease = %d, want 0", n)
	}
	w, res, _ := tb.Acquire(p, table.Request{Name: "x", Wait: true})
	if res != table.Queued {
		t.Fatalf("waiter: %v", res)
	}
	want := table.Lease{Name: "x", Mode: table.Exclusive, Token: 1, Since: clk.at(1000 * time.Second),
		Expires: clk.at(1010 * time.Second), TTL: 10 * time.Second}
	if l, err := tb.LookupLease(k); l != want || err != nil {
		t.Fatalf("LookupLease = %+v, %v; want %+v", l, err, want)
	}
	var li table.LockInfo
	tb.List("x", table.Cursor{}, 10, &li)
	if len(li.Holders) != 1 || !li.Holders[0].Lease || li.Holders[0].Key != k || !li.Holders[0].Expires.Equal(want.Expires) || li.Holders[0].Addr != "" {
		t.Fatalf("List: %+v", li.Holders)
	}
	if len(li.Waiters) != 1 || li.Waiters[0].Lease || !li.Waiters[0].Expires.IsZero() {
		t.Fatalf("List waiters: %+v", li.Waiters)
	}

	clk.add(9 * time.Second)
	want.Expires = clk.at(1019 * time.Second)
	if l, err := tb.Renew(k, 0); l != want || err != nil {
		t.Fatalf("Renew(0) = %+v, %v; want %+v", l, err, want)
	}
	clk.add(5 * time.Second) // 1014: past the first end
	tb.ExpireDue()
	g.none(t)
	want.Expires = clk.at(1025 * time.Second) // the cap, not 1014+60
	if l, err := tb.Renew(k, time.Minute); l != want || err != nil {
		t.Fatalf("Renew past the max hold = %+v, %v; want %+v", l, err, want)
	}
	clk.add(11 * time.Second) // 1025: the end
	for _, f := range []func(table.LeaseKey) (table.Lease, error){tb.LookupLease, tb.ReleaseLease, func(k table.LeaseKey) (table.Lease, error) { return tb.Renew(k, 0) }} {
		if _, err := f(k); err != table.ErrNoLease {
			t.Fatalf("at its Expires: %v, want ErrNoLease", err)
		}
	}
	g.none(t)
	tb.ExpireDue()
	g.one(t, w)
	if c := tb.Counters(); c.Expired != 1 || c.Leases != 0 || c.Held != 1 {
		t.Fatalf("Counters after the expiry: %+v", c)
	}
	if tb.Release(h) {
		t.Fatal("Release of an expired lease = true")
	}
	if !tb.Release(w) {
		t.Fatal("Release of the waiter granted = false")
	}
}

// TestLeaseOwnerless: a granted lease is not its owner's: ReleaseAll and
// Find leave it, Break takes it away without a Lost (grants' Lost panics),
// and Release of its Holder still releases it. A lease granted from the
// queue leaves its owner too.
func TestLeaseOwnerless(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	g := make(grants, 4)
	o := tb.NewOwner(table.Info{ClientID: "o"}, g)
	plain, _, _ := tb.Acquire(o, table.Request{Name: "x"})
	lr := func(k string) *table.LeaseRequest { return &table.LeaseRequest{Key: leaseKey(k), TTL: time.Hour} }
	q, res, _ := tb.Acquire(o, table.Request{Name: "x", Wait: true, Lease: lr("q")})
	if res != table.Queued || o.Count() != 2 {
		t.Fatalf("queued lease: %v, Count %d", res, o.Count())
	}
	if _, err := tb.LookupLease(leaseKey("q")); err != table.ErrNoLease {
		t.Fatalf("LookupLease of a waiting lease: %v", err)
	}
	if _, res, err := tb.Acquire(o, table.Request{Name: "y", Lease: lr("q")}); res != table.Refused || !errors.Is(err, table.ErrInvalid) {
		t.Fatalf("a key in use: %v, %v", res, err)
	}
	tb.Release(plain)
	g.one(t, q)
	if n := o.Count(); n != 0 {
		t.Fatalf("Count after the lease's grant = %d", n)
	}
	tb.ReleaseAll(o)
	if !tb.Held(q) || tb.Find(o, "x") != nil {
		t.Fatal("ReleaseAll released the lease, or Find found it")
	}
	if !tb.Release(q) {
		t.Fatal("Release of a lease = false")
	}
	tb.Acquire(o, table.Request{Name: "z", Lease: lr("z")})
	if n := tb.Break("z"); n != 1 {
		t.Fatalf("Break = %d", n)
	}
	if c := tb.Counters(); c.Held != 0 || c.Leases != 0 || c.Names != 0 {
		t.Fatalf("Counters: %+v", c)
	}
	if _, res, err := tb.Acquire(o, table.Request{Name: "y", Lease: &table.LeaseRequest{}}); res != table.Refused || !errors.Is(err, table.ErrInvalid) {
		t.Fatalf("ttl 0: %v, %v", res, err)
	}
}

// TestLeaseTimer: on the real clock the table's timer ends a lease by
// itself and grants the waiter; a renewed lease outlives another lease
// granted with the same TTL at the same time.
func TestLeaseTimer(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	g := make(grants, 4)
	o := tb.NewOwner(table.Info{}, g)
	const ttl = 50 * time.Millisecond
	lr := func(k string) *table.LeaseRequest { return &table.LeaseRequest{Key: leaseKey(k), TTL: ttl} }
	tb.Acquire(o, table.Request{Name: "a", Lease: lr("a")})
	tb.Acquire(o, table.Request{Name: "b", Lease: lr("b")})
	wa, _, _ := tb.Acquire(o, table.Request{Name: "a", Wait: true})
	wb, _, _ := tb.Acquire(o, table.Request{Name: "b", Wait: true})
	if _, err := tb.Renew(leaseKey("b"), time.Hour); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-g:
		if h != wa {
			t.Fatalf("granted %s first, want a", h.Name())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the lease did not expire")
	}
	if _, err := tb.LookupLease(leaseKey("b")); err != nil || tb.Held(wb) {
		t.Fatalf("the renewed lease: %v", err)
	}
}

// BenchmarkLeaseMemory reports the heap that a held lease costs, with
// 100,000 leases on names of their own, the name included.
func BenchmarkLeaseMemory(b *testing.B) {
	const n = 100_000
	var per float64
	for b.Loop() {
		tb := lockd.New(lockd.Options{})
		o := tb.NewOwner(table.Info{ClientID: "bench", Host: "localhost", PID: 1}, nopNotifier{})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			var k table.LeaseKey
			copy(k[:], strconv.Itoa(i))
			r := table.Request{Name: "lock-" + strconv.Itoa(i), Lease: &table.LeaseRequest{Key: k, TTL: time.Hour}}
			if _, res, _ := tb.Acquire(o, r); res != table.Granted {
				b.Fatalf("lease %d: %v", i, res)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(after.HeapAlloc-before.HeapAlloc) / n
		if got := tb.Counters().Leases; got != n {
			b.Fatalf("leases %d, want %d", got, n)
		}
		runtime.KeepAlive(tb)
	}
	b.ReportMetric(per, "B/lease")
}

// TestLeaseConcurrent: leases granted, renewed, released and expiring
// (TTLs of a few milliseconds, so that the timer ends many of them while
// the others work) beside plain locks, from many goroutines, never put two
// exclusive holders on a name, and leave the table empty and consistent.
func TestLeaseConcurrent(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	names := []string{"a", "b", "c"}
	const workers, ops = 8, 300
	done := make(chan error, workers)
	for w := range workers {
		go func() {
			o := tb.NewOwner(table.Info{}, nopNotifier{})
			var keys []table.LeaseKey
			for i := range ops {
				name := names[(w+i)%len(names)]
				switch i % 5 {
				case 0, 1:
					k := leaseKey(strconv.Itoa(w) + "/" + strconv.Itoa(i))
					ttl := time.Duration(1+i%3) * time.Millisecond
					if _, res, err := tb.Acquire(o, table.Request{Name: name, Wait: i%2 == 0, Lease: &table.LeaseRequest{Key: k, TTL: ttl}}); res == table.Refused {
						done <- err
						return
					}
					keys = append(keys, k)
				case 2:
					if len(keys) > 0 {
						tb.Renew(keys[i%len(keys)], time.Millisecond)
					}
				case 3:
					if len(keys) > 0 {
						tb.ReleaseLease(keys[(i*7)%len(keys)])
					}
				case 4:
					if h, res, _ := tb.Acquire(o, table.Request{Name: name}); res == table.Granted {
						tb.Release(h)
					}
				}
				for _, li := range tb.Snapshot([]string{name}, 0) {
					if len(li.Holders) > 1 {
						done <- errors.New(name + ": two exclusive holders")
						return
					}
				}
			}
			tb.ReleaseAll(o)
			for _, k := range keys {
				tb.ReleaseLease(k)
			}
			done <- nil
		}()
	}
	for range workers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// A lease past its Expires but not yet taken away by the timer is
	// left; a waiter on each name is granted when it is.
	g := make(grants, len(names))
	o := tb.NewOwner(table.Info{}, g)
	for _, name := range names {
		h, res, _ := tb.Acquire(o, table.Request{Name: name, Wait: true})
		if res == table.Queued {
			select {
			case <-g:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: not granted after the run", name)
			}
		}
		tb.Release(h)
	}
	if c := tb.Counters(); c.Held != 0 || c.Waiting != 0 || c.Names != 0 || c.Leases != 0 || tb.Entries() != 0 {
		t.Fatalf("after the run: Counters %+v, %d entries", c, tb.Entries())
	}
}
