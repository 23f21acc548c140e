package tabletest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// The lease tests. Their short TTLs (shortTTL) are for what must happen
// at an expiry, which they wait for on a Notifier with the suite's
// deadline; what must hold while a lease is held they check on leases of
// longTTL, which no slow machine outlives.

const (
	shortTTL = 50 * time.Millisecond
	longTTL  = time.Hour
)

func leaseKey(s string) table.LeaseKey {
	var k table.LeaseKey
	copy(k[:], s)
	return k
}

// leaseReq is a lease request for name with the key made of k.
func leaseReq(name, k string, ttl time.Duration) table.Request {
	return table.Request{Name: name, Lease: &table.LeaseRequest{Key: leaseKey(k), TTL: ttl}}
}

func lookup(t *testing.T, tb table.Table, k string) table.Lease {
	t.Helper()
	l, err := tb.LookupLease(leaseKey(k))
	if err != nil {
		t.Fatalf("LookupLease(%s) = %v, want the lease", k, err)
	}
	return l
}

// noLease checks that no lease is held with the key made of k: LookupLease,
// Renew and ReleaseLease all say ErrNoLease.
func noLease(t *testing.T, tb table.Table, k, what string) {
	t.Helper()
	if l, err := tb.LookupLease(leaseKey(k)); !errors.Is(err, table.ErrNoLease) {
		t.Fatalf("%s: LookupLease(%s) = %+v, %v; want ErrNoLease", what, k, l, err)
	}
	if l, err := tb.Renew(leaseKey(k), 0); !errors.Is(err, table.ErrNoLease) {
		t.Fatalf("%s: Renew(%s) = %+v, %v; want ErrNoLease", what, k, l, err)
	}
	if l, err := tb.ReleaseLease(leaseKey(k)); !errors.Is(err, table.ErrNoLease) {
		t.Fatalf("%s: ReleaseLease(%s) = %+v, %v; want ErrNoLease", what, k, l, err)
	}
}

func sameLease(t *testing.T, what string, got, want table.Lease) {
	t.Helper()
	if got.Name != want.Name || got.Mode != want.Mode || got.Token != want.Token || got.TTL != want.TTL ||
		!got.Since.Equal(want.Since) || !got.Expires.Equal(want.Expires) {
		t.Fatalf("%s: %+v, want %+v", what, got, want)
	}
}

// grantedNow checks that the events told so far are the grants of hs, in
// that order, and nothing else.
func grantedNow(t *testing.T, rec *recorder, what string, hs ...table.Holder) {
	t.Helper()
	checkGrants(t, rec.take(), what, hs)
}

// grantedWithin waits for the grants of hs and checks that nothing else
// was told meanwhile.
func grantedWithin(t *testing.T, rec *recorder, what string, hs ...table.Holder) {
	t.Helper()
	checkGrants(t, rec.wait(len(hs)), what, hs)
}

func checkGrants(t *testing.T, evs []event, what string, hs []table.Holder) {
	t.Helper()
	var got []string
	ok := len(evs) == len(hs)
	for i, e := range evs {
		label := fmt.Sprintf("Granted %s on %q", ownerName(e.to), e.h.Name())
		if e.lost {
			label = fmt.Sprintf("Lost %s on %q (%v)", ownerName(e.to), e.h.Name(), e.why)
		}
		got = append(got, label)
		if i < len(hs) && (e.lost || e.h != hs[i]) {
			ok = false
		}
	}
	if !ok {
		var want []string
		for _, h := range hs {
			want = append(want, fmt.Sprintf("Granted %s on %q", ownerName(h.Owner()), h.Name()))
		}
		t.Fatalf("%s: told %q, want %q", what, got, want)
	}
}

// owned is a request and the owner that makes it.
type owned struct {
	o table.Owner
	r table.Request
}

// leaseAhead makes the lease lr held with the requests ws queued behind it,
// however slow the machine: lr waits behind a plain holder of o, ws queue
// behind lr, and then the plain holder leaves.
func leaseAhead(t *testing.T, tb table.Table, rec *recorder, o table.Owner, lr table.Request, ws ...owned) (table.Holder, []table.Holder) {
	t.Helper()
	blocker := acquire(t, tb, o, table.Request{Name: lr.Name, Mode: lr.Mode, Limit: lr.Limit}, table.Granted)
	lr.Wait = true
	h := acquire(t, tb, o, lr, table.Queued)
	var hs []table.Holder
	for _, w := range ws {
		w.r.Wait = true
		hs = append(hs, acquire(t, tb, w.o, w.r, table.Queued))
	}
	tb.Release(blocker)
	grantedNow(t, rec, "Release before a lease waiter", h)
	return h, hs
}

// awaitFree waits until name can be had by o, and releases it.
func awaitFree(t *testing.T, tb table.Table, rec *recorder, o table.Owner, name, what string) {
	t.Helper()
	h := acquire(t, tb, o, table.Request{Name: name, Wait: true}, table.Queued)
	grantedWithin(t, rec, what, h)
	tb.Release(h)
}

// testLeaseGrant: a lease is granted at once, or from the queue in its
// turn, told as any grant; once granted it is no owner's (Count, Find,
// ReleaseAll leave it), LookupLease finds it with its token, grant and
// Expires (grant plus TTL), and Release of its Holder or ReleaseLease of its
// key ends it.
func testLeaseGrant(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	p, _ := newOwner(t, tb, rec, table.Info{ClientID: "p"})
	count := func(o table.Owner, want int, what string) {
		t.Helper()
		if n := o.Count(); n != want {
			t.Fatalf("%s: %s.Count() = %d, want %d", what, ownerName(o), n, want)
		}
	}
	plain := acquire(t, tb, o, table.Request{Name: "x"}, table.Granted)
	rq := leaseReq("x", "q", longTTL)
	rq.Wait = true
	q := acquire(t, tb, p, rq, table.Queued)
	count(p, 1, "a lease request waiting")
	if tb.Find(p, "x") != q {
		t.Fatal("Find of a waiting lease request: not found")
	}
	noLease(t, tb, "q", "a lease request waiting")
	if !tb.Release(plain) {
		t.Fatal("Release of the holder before the lease = false")
	}
	grantedNow(t, rec, "Release before a lease waiter", q)
	if q.Token() <= plain.Token() {
		t.Fatalf("the lease granted from the queue: token %d, not above %d", q.Token(), plain.Token())
	}
	count(p, 0, "a lease granted from the queue")
	if tb.Find(p, "x") != nil {
		t.Fatal("Find of a granted lease: found, want nil (a lease has no owner)")
	}
	l := lookup(t, tb, "q")
	if l.Name != "x" || l.Mode != table.Exclusive || l.Token != q.Token() || l.TTL != longTTL || l.Since.IsZero() || !l.Expires.Equal(l.Since.Add(longTTL)) {
		t.Fatalf("LookupLease of a lease granted from the queue = %+v, want x, exclusive, token %d, TTL %v, Expires at Since+TTL", l, q.Token(), longTTL)
	}

	y := acquire(t, tb, p, leaseReq("y", "y", longTTL), table.Granted)
	if y.Token() <= q.Token() {
		t.Fatalf("a lease granted at once: token %d, not above %d", y.Token(), q.Token())
	}
	count(p, 0, "a lease granted at once")
	if l := lookup(t, tb, "y"); l.Name != "y" || l.Token != y.Token() || !l.Expires.Equal(l.Since.Add(longTTL)) {
		t.Fatalf("LookupLease of a lease granted at once = %+v", l)
	}
	z := acquire(t, tb, p, table.Request{Name: "z"}, table.Granted)
	tb.ReleaseAll(p)
	if !tb.Held(q) || !tb.Held(y) || tb.Held(z) {
		t.Fatalf("after ReleaseAll of their owner: leases held %v, %v (want true), its plain lock held %v (want false)", tb.Held(q), tb.Held(y), tb.Held(z))
	}
	sameLease(t, "LookupLease after ReleaseAll of its owner", lookup(t, tb, "q"), l)
	if c := tb.Counters(); c.Leases != 2 || c.Held != 2 {
		t.Fatalf("Counters with two leases held = %+v, want Leases 2, Held 2", c)
	}
	if !tb.Release(q) {
		t.Fatal("Release of a granted lease's Holder = false, want true")
	}
	noLease(t, tb, "q", "after Release of its Holder")
	got, err := tb.ReleaseLease(leaseKey("y"))
	if err != nil || got.Name != "y" || got.Token != y.Token() {
		t.Fatalf("ReleaseLease = %+v, %v; want the lease on y", got, err)
	}
	if tb.Held(y) || tb.Release(y) {
		t.Fatal("a lease released by its key is still held")
	}
	noLease(t, tb, "y", "after ReleaseLease")
	if stray := rec.take(); len(stray) > 0 {
		t.Fatalf("told %d events, want none", len(stray))
	}
	if c := tb.Counters(); c.Leases != 0 || c.Expired != 0 {
		t.Fatalf("Counters after the leases were released = %+v, want Leases 0, Expired 0", c)
	}
	checkEmpty(t, tb)
}

// testLeaseInvalid: a lease request with a TTL not above 0, or with the key
// of a lease held or awaited, is refused with ErrInvalid.
func testLeaseInvalid(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	for _, ttl := range []time.Duration{0, -time.Second} {
		if h, res, err := tb.Acquire(o, leaseReq("x", "k", ttl)); res != table.Refused || h != nil || !errors.Is(err, table.ErrInvalid) {
			t.Fatalf("lease with TTL %v: %v, %v; want Refused, ErrInvalid", ttl, resultName(res), err)
		}
	}
	h := acquire(t, tb, o, leaseReq("x", "k", longTTL), table.Granted)
	w := leaseReq("x", "w", longTTL)
	w.Wait = true
	acquire(t, tb, o, w, table.Queued)
	for _, k := range []string{"k", "w"} {
		if _, res, err := tb.Acquire(o, leaseReq("y", k, longTTL)); res != table.Refused || !errors.Is(err, table.ErrInvalid) {
			t.Fatalf("lease with the key of another: %v, %v; want Refused, ErrInvalid", resultName(res), err)
		}
	}
	tb.ReleaseAll(o)
	tb.Release(h)
	checkEmpty(t, tb)
}

// testLeaseWrongKey: Renew, ReleaseLease and LookupLease with a key that
// is not the lease's say ErrNoLease and change nothing.
func testLeaseWrongKey(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	h := acquire(t, tb, o, leaseReq("x", "right", longTTL), table.Granted)
	before := lookup(t, tb, "right")
	noLease(t, tb, "wrong", "a wrong key")
	noLease(t, tb, "x", "the lock's name as a key")
	if !tb.Held(h) {
		t.Fatal("the lease is not held after calls with a wrong key")
	}
	sameLease(t, "the lease after calls with a wrong key", lookup(t, tb, "right"), before)
	tb.Release(h)
	checkEmpty(t, tb)
}

// testLeaseExpiry: at its Expires the table ends a lease by itself and
// grants the first waiter (FIFO), telling it; the lease is gone for good,
// and Counters.Expired counts it.
func testLeaseExpiry(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	a, _ := newOwner(t, tb, rec, table.Info{ClientID: "a"})
	b, _ := newOwner(t, tb, rec, table.Info{ClientID: "b"})
	h, ws := leaseAhead(t, tb, rec, o, leaseReq("x", "k", shortTTL), owned{a, table.Request{Name: "x"}}, owned{b, table.Request{Name: "x"}})
	grantedWithin(t, rec, "the lease's expiry", ws[0])
	if tb.Held(h) || tb.Release(h) {
		t.Fatal("an expired lease is still held")
	}
	noLease(t, tb, "k", "after its expiry")
	if c := tb.Counters(); c.Expired != 1 || c.Leases != 0 || c.Held != 1 || c.Waiting != 1 {
		t.Fatalf("Counters after the expiry = %+v, want Expired 1, Leases 0, Held 1, Waiting 1", c)
	}
	tb.ReleaseAll(b)
	tb.ReleaseAll(a)
	checkEmpty(t, tb)
}

// testLeaseRenew: a renew moves Expires to now plus the TTL asked, or
// the granted TTL for 0, and keeps the token, the grant and the granted
// TTL; a lease renewed before its end is still held after the end it had:
// a second lease granted after it with twice its TTL expires (a waiter is
// granted) while the renewed one is held. (Twice: a table that ended the
// renewed lease at its old end has done so by then, on a slow machine
// too.)
func testLeaseRenew(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	h := acquire(t, tb, o, leaseReq("x", "k", longTTL), table.Granted)
	l := lookup(t, tb, "k")
	for _, ttl := range []time.Duration{0, 2 * longTTL, longTTL / 2} {
		before := time.Now()
		got, err := tb.Renew(leaseKey("k"), ttl)
		after := time.Now()
		want := ttl
		if ttl == 0 {
			want = longTTL
		}
		if err != nil || got.Expires.Before(before.Add(want)) || got.Expires.After(after.Add(want)) {
			t.Fatalf("Renew(%v) = %+v, %v; want Expires between %v and %v", ttl, got, err, before.Add(want), after.Add(want))
		}
		l.Expires = got.Expires
		sameLease(t, fmt.Sprintf("Renew(%v)", ttl), got, l) // the token, grant and TTL as they were
		sameLease(t, fmt.Sprintf("LookupLease after Renew(%v)", ttl), lookup(t, tb, "k"), l)
	}
	tb.Release(h)

	// The race with the first end: a slow machine may reach the renew
	// after it; then the attempt is made again, with a longer TTL.
	for ttl := 4 * shortTTL; ; ttl *= 2 {
		n := ttl.String()
		start := time.Now()
		acquire(t, tb, o, leaseReq("renewed"+n, "r"+n, ttl), table.Granted)
		acquire(t, tb, o, leaseReq("other"+n, "o"+n, 2*ttl), table.Granted)
		if _, err := tb.Renew(leaseKey("r"+n), longTTL); err != nil {
			if time.Since(start) >= ttl && 2*ttl < deadline {
				awaitFree(t, tb, rec, o, "renewed"+n, "the expiry of a lease renewed too late")
				awaitFree(t, tb, rec, o, "other"+n, "the expiry of a lease")
				continue
			}
			t.Fatalf("Renew before the lease's end = %v", err)
		}
		h, res, err := tb.Acquire(o, table.Request{Name: "other" + n, Wait: true})
		switch res {
		case table.Queued:
			grantedWithin(t, rec, "the expiry of the lease that was not renewed", h)
		case table.Granted: // it expired already
		default:
			t.Fatalf("a waiter for the lease that was not renewed: %v, %v", resultName(res), err)
		}
		tb.Release(h)
		if l, err := tb.LookupLease(leaseKey("r" + n)); err != nil || !l.Expires.After(time.Now()) {
			t.Fatalf("the renewed lease, after a lease granted after it with twice its TTL expired: %+v, %v; want it held", l, err)
		}
		if _, err := tb.ReleaseLease(leaseKey("r" + n)); err != nil {
			t.Fatal(err)
		}
		break
	}
	checkEmpty(t, tb)
}

// testLeaseMaxHold: a lease's Expires never passes its grant plus its
// MaxHold, at grant or by renew, and at that cap the table ends it as at
// any Expires. A holder that is not a lease is listed with grant+MaxHold
// as its Expires.
func testLeaseMaxHold(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	r := leaseReq("x", "k", longTTL)
	r.MaxHold = 2 * longTTL
	h := acquire(t, tb, o, r, table.Granted)
	l := lookup(t, tb, "k")
	if !l.Expires.Equal(l.Since.Add(longTTL)) {
		t.Fatalf("a lease with a max hold above its TTL: Expires %v, want Since+TTL %v", l.Expires, l.Since.Add(longTTL))
	}
	for _, ttl := range []time.Duration{3 * longTTL, 10 * longTTL} {
		got, err := tb.Renew(leaseKey("k"), ttl)
		if err != nil || !got.Expires.Equal(l.Since.Add(2*longTTL)) {
			t.Fatalf("Renew(%v) past the max hold = %+v, %v; want Expires at Since+MaxHold %v", ttl, got, err, l.Since.Add(2*longTTL))
		}
	}
	tb.Release(h)

	r = leaseReq("x", "k", longTTL)
	r.MaxHold = longTTL / 2
	h = acquire(t, tb, o, r, table.Granted)
	if l := lookup(t, tb, "k"); !l.Expires.Equal(l.Since.Add(longTTL / 2)) {
		t.Fatalf("a lease with a max hold below its TTL: Expires %v, want Since+MaxHold %v", l.Expires, l.Since.Add(longTTL/2))
	}
	tb.Release(h)

	p := table.Request{Name: "p", MaxHold: longTTL}
	ph := acquire(t, tb, o, p, table.Granted)
	li, _ := listAll(t, tb, "p", 10)
	if len(li.Holders) != 1 || li.Holders[0].Lease || !li.Holders[0].Expires.Equal(li.Holders[0].Since.Add(longTTL)) {
		t.Fatalf("a plain lock with a max hold, listed: %+v; want Expires at Since+MaxHold, not a lease", li.Holders)
	}
	tb.Release(ph)

	r = leaseReq("x", "k", longTTL)
	r.MaxHold = shortTTL
	h, ws := leaseAhead(t, tb, rec, o, r, owned{o, table.Request{Name: "x"}})
	w := ws[0]
	grantedWithin(t, rec, "the end of a lease at its max hold", w)
	if tb.Held(h) {
		t.Fatal("a lease is held past its max hold")
	}
	noLease(t, tb, "k", "at its max hold")
	if c := tb.Counters(); c.Expired != 1 {
		t.Fatalf("Counters after the max hold = %+v, want Expired 1", c)
	}
	tb.Release(w)
	checkEmpty(t, tb)
}

// testLeaseModes: shared and semaphore leases are held beside each other
// as other holders are, agree on the semaphore size, and a waiter goes
// when the last of them ends (ReleaseLease tells it before returning).
func testLeaseModes(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	s1 := leaseReq("s", "s1", longTTL)
	s1.Mode = sh
	s2 := leaseReq("s", "s2", longTTL)
	s2.Mode = sh
	h1 := acquire(t, tb, o, s1, table.Granted)
	h2 := acquire(t, tb, o, s2, table.Granted)
	if h2.Token() <= h1.Token() {
		t.Fatalf("shared leases: tokens %d then %d", h1.Token(), h2.Token())
	}
	if l := lookup(t, tb, "s1"); l.Mode != sh {
		t.Fatalf("LookupLease of a shared lease: mode %v", l.Mode)
	}
	w := acquire(t, tb, o, table.Request{Name: "s", Wait: true}, table.Queued)
	if _, err := tb.ReleaseLease(leaseKey("s1")); err != nil {
		t.Fatal(err)
	}
	grantedNow(t, rec, "ReleaseLease of one of two shared leases")
	if _, err := tb.ReleaseLease(leaseKey("s2")); err != nil {
		t.Fatal(err)
	}
	grantedNow(t, rec, "ReleaseLease of the last shared lease", w)
	tb.Release(w)

	m1 := leaseReq("m", "m1", longTTL)
	m1.Limit = 2
	m2 := leaseReq("m", "m2", longTTL)
	m2.Limit = 2
	acquire(t, tb, o, m1, table.Granted)
	acquire(t, tb, o, m2, table.Granted)
	acquire(t, tb, o, table.Request{Name: "m", Limit: 2}, table.NotGranted)
	if _, res, err := tb.Acquire(o, table.Request{Name: "m", Limit: 3}); res != table.Refused || !errors.Is(err, table.ErrLimitMismatch) {
		t.Fatalf("a semaphore of another size beside semaphore leases: %v, %v; want Refused, limit mismatch", resultName(res), err)
	}
	mw := acquire(t, tb, o, table.Request{Name: "m", Limit: 2, Wait: true}, table.Queued)
	if n := tb.Break("m"); n != 2 {
		t.Fatalf("Break of two semaphore leases = %d", n)
	}
	grantedWithin(t, rec, "Break of two semaphore leases (nobody to tell of them)", mw)
	noLease(t, tb, "m1", "after Break")
	noLease(t, tb, "m2", "after Break")
	if c := tb.Counters(); c.Leases != 0 || c.Expired != 0 {
		t.Fatalf("Counters after Break of the leases = %+v, want Leases 0, Expired 0", c)
	}
	tb.Release(mw)
	checkEmpty(t, tb)
}

// testLeaseTokens: leases draw their tokens as other holders do, each
// above every token granted before on the name, after an expiry too; a
// renew keeps the token.
func testLeaseTokens(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	var last uint64
	next := func(what string, h table.Holder) {
		t.Helper()
		if h.Token() <= last {
			t.Fatalf("%s: token %d, not above %d", what, h.Token(), last)
		}
		last = h.Token()
	}
	for i := range 3 {
		h := acquire(t, tb, o, leaseReq("x", fmt.Sprint("k", i), longTTL), table.Granted)
		next("a lease", h)
		if l, err := tb.Renew(leaseKey(fmt.Sprint("k", i)), 0); err != nil || l.Token != h.Token() {
			t.Fatalf("Renew = %+v, %v; want token %d", l, err, h.Token())
		}
		tb.Release(h)
		p := acquire(t, tb, o, table.Request{Name: "x"}, table.Granted)
		next("a plain lock after a lease", p)
		tb.Release(p)
	}
	h, ws := leaseAhead(t, tb, rec, o, leaseReq("x", "short", shortTTL), owned{o, leaseReq("x", "after", longTTL)})
	next("a lease granted from the queue", h)
	grantedWithin(t, rec, "the expiry of a lease before a lease waiter", ws[0])
	next("a lease granted at the expiry of another", ws[0])
	if l := lookup(t, tb, "after"); l.Token != ws[0].Token() {
		t.Fatalf("LookupLease: token %d, want %d", l.Token, ws[0].Token())
	}
	if _, err := tb.ReleaseLease(leaseKey("after")); err != nil {
		t.Fatal(err)
	}
	checkEmpty(t, tb)
}

// testLeaseList: List shows a held lease with Lease, its Key and its
// Expires, the Info of its request without Addr; a waiting lease request
// with Lease and Key and no Expires; plain parties with neither.
func testLeaseList(t *testing.T, tb table.Table) {
	rec := newRecorder()
	info := table.Info{ClientID: "alice", Host: "h1", PID: 42, Addr: "10.0.0.1:5000"}
	o, _ := newOwner(t, tb, rec, info)
	h := acquire(t, tb, o, leaseReq("x", "k", longTTL), table.Granted)
	p := acquire(t, tb, o, table.Request{Name: "y"}, table.Granted)
	wr := leaseReq("y", "w", longTTL)
	wr.Wait = true
	w := acquire(t, tb, o, wr, table.Queued)
	l := lookup(t, tb, "k")
	li, ok := listAll(t, tb, "x", 10)
	noAddr := info
	noAddr.Addr = ""
	if !ok || len(li.Holders) != 1 || li.Token != h.Token() {
		t.Fatalf("List of a lease: %+v", li)
	}
	if got := li.Holders[0]; !got.Lease || got.Key != leaseKey("k") || !got.Expires.Equal(l.Expires) || got.Token != h.Token() || got.Info != noAddr || !got.Since.Equal(l.Since) {
		t.Fatalf("a lease listed as %+v; want Lease, its key, Expires %v, token %d, Info %+v, Since %v", got, l.Expires, h.Token(), noAddr, l.Since)
	}
	li, _ = listAll(t, tb, "y", 10)
	if len(li.Holders) != 1 || len(li.Waiters) != 1 {
		t.Fatalf("List of y: %+v", li)
	}
	if got := li.Holders[0]; got.Lease || got.Key != (table.LeaseKey{}) || !got.Expires.IsZero() || got.Info != info {
		t.Fatalf("a plain holder listed as %+v; want no lease, no Expires", got)
	}
	if got := li.Waiters[0]; !got.Lease || got.Key != leaseKey("w") || !got.Expires.IsZero() {
		t.Fatalf("a waiting lease request listed as %+v; want Lease, its key, no Expires", got)
	}
	tb.Release(p)
	grantedNow(t, rec, "Release before a lease waiter", w)
	tb.Release(w)
	tb.Release(h)
	checkEmpty(t, tb)
}
