package tabletest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tnl-lock/tnl/lib/table"
)

// acquire is Acquire that fails t unless the result is want.
func acquire(t *testing.T, tb table.Table, o table.Owner, r table.Request, want table.Result) table.Holder {
	t.Helper()
	h, res, err := tb.Acquire(o, r)
	if res != want || (err != nil) != (want == table.Refused) {
		t.Fatalf("Acquire(%s, %+v) = %v, %v; want %v", ownerName(o), r, resultName(res), err, resultName(want))
	}
	if (h != nil) != (res == table.Granted || res == table.Queued) {
		t.Fatalf("Acquire(%s, %+v) = %v with holder %v", ownerName(o), r, resultName(res), h)
	}
	return h
}

func testHealthy(t *testing.T, tb table.Table) {
	if err := tb.Degraded(); err != nil {
		t.Fatalf("a fresh table: Degraded() = %v, want nil", err)
	}
	checkEmpty(t, tb)
	if c := tb.Counters(); c != (table.Counters{}) {
		t.Fatalf("a fresh table: Counters = %+v, want zero", c)
	}
}

func testOwner(t *testing.T, tb table.Table) {
	rec := newRecorder()
	info := table.Info{ClientID: "alice", Host: "h1", PID: 42, Addr: "10.0.0.1:5000"}
	o, _ := newOwner(t, tb, rec, info)
	p, _ := newOwner(t, tb, rec, table.Info{ClientID: "bob"})
	if got := o.Info(); got == nil || *got != info {
		t.Fatalf("Info() = %+v, want %+v", got, info)
	}
	count := func(o table.Owner, want int) {
		t.Helper()
		if got := o.Count(); got != want {
			t.Fatalf("%s: Count() = %d, want %d", ownerName(o), got, want)
		}
	}
	count(o, 0)
	x := acquire(t, tb, o, table.Request{Name: "x"}, table.Granted)
	count(o, 1)
	acquire(t, tb, o, table.Request{Name: "x"}, table.NotGranted)
	acquire(t, tb, o, table.Request{Name: "x", Limit: 2}, table.Refused)
	count(o, 1)
	y := acquire(t, tb, p, table.Request{Name: "y", Mode: sh}, table.Granted)
	yw := acquire(t, tb, o, table.Request{Name: "y", Wait: true}, table.Queued)
	xw := acquire(t, tb, p, table.Request{Name: "x", Wait: true}, table.Queued)
	count(o, 2)
	count(p, 2)
	if !tb.Cancel(yw) {
		t.Fatal("Cancel of a waiter = false")
	}
	count(o, 1)
	if !tb.Release(x) { // grants xw
		t.Fatal("Release of a held lock = false")
	}
	count(o, 0)
	count(p, 2)
	if n := tb.Break("x"); n != 1 {
		t.Fatalf("Break = %d, want 1", n)
	}
	rec.wait(2) // p's grant and its loss
	count(p, 1)
	tb.Release(y)
	count(p, 0)
	if tb.Release(xw) {
		t.Fatal("Release of a broken holder = true")
	}
	count(p, 0)
	if got := o.Info(); got == nil || *got != info {
		t.Fatalf("Info() = %+v after use, want %+v", got, info)
	}
	checkEmpty(t, tb)
}

func testReleaseAllCounts(t *testing.T, tb table.Table) {
	r := newScriptRun(t, tb)
	r.run([]step{
		excl("a", try, table.Granted).by("o").on("a"),
		shrd("b", try, table.Granted).by("o").on("b"),
		excl("c", try, table.Granted).by("p").on("c"),
		excl("d", wait, table.Queued).by("o").on("c"),
	})
	o := r.owners["o"]
	if n := o.Count(); n != 3 {
		t.Fatalf("Count = %d, want 3", n)
	}
	tb.ReleaseAll(o)
	if n := o.Count(); n != 0 {
		t.Fatalf("Count = %d after ReleaseAll", n)
	}
	if c := tb.Counters(); c.Held != 1 || c.Waiting != 0 || c.Names != 1 {
		t.Fatalf("Counters after ReleaseAll: %+v, want Held 1, Waiting 0, Names 1", c)
	}
	for _, id := range []string{"a", "b", "d"} {
		if tb.Held(r.holders[id]) || tb.Release(r.holders[id]) || tb.Cancel(r.holders[id]) {
			t.Errorf("%s still held or waiting after ReleaseAll", id)
		}
	}
	tb.ReleaseAll(o) // nothing left: harmless
	if !tb.Held(r.holders["c"]) {
		t.Fatal("ReleaseAll of o released p's lock")
	}
	if stray := r.rec.take(); len(stray) > 0 {
		t.Fatalf("ReleaseAll told %s", r.eventLabels(stray, true, true))
	}
	r.finish()
}

// testReleaseAllSameName: an owner that holds a name and waits for it
// too (not re-entrant) lets the next owner in when it goes, whatever the
// order it releases its two in.
func testReleaseAllSameName(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	p, _ := newOwner(t, tb, rec, table.Info{ClientID: "p"})
	acquire(t, tb, o, table.Request{Name: "x"}, table.Granted)
	acquire(t, tb, o, table.Request{Name: "x", Wait: true}, table.Queued)
	w := acquire(t, tb, p, table.Request{Name: "x", Wait: true}, table.Queued)
	tb.ReleaseAll(o)
	if n := o.Count(); n != 0 {
		t.Fatalf("Count = %d after ReleaseAll", n)
	}
	evs := rec.waitUntil(func(evs []event) bool {
		return slices.ContainsFunc(evs, func(e event) bool { return e.h == w })
	})
	for _, e := range evs {
		if e.lost || (e.h != w && e.to != o) {
			t.Fatalf("ReleaseAll told %s %v of %s", ownerName(e.to), e.lost, e.h.Name())
		}
	}
	if !slices.ContainsFunc(evs, func(e event) bool { return e.h == w }) {
		t.Fatal("ReleaseAll of the owner ahead did not grant the next owner's waiter")
	}
	if !tb.Held(w) {
		t.Fatal("the next owner was told of its grant but does not hold")
	}
	if li, _ := listAll(t, tb, "x", 10); partyIDs(li.Holders) != "p" || len(li.Waiters) != 0 {
		t.Fatalf("after ReleaseAll: holders %q, waiters %d; want p and none", partyIDs(li.Holders), len(li.Waiters))
	}
	tb.Release(w)
	checkEmpty(t, tb)
}

func testFind(t *testing.T, tb table.Table) {
	r := newScriptRun(t, tb)
	r.run([]step{
		excl("x", try, table.Granted).by("o").on("x"),
		excl("y1", try, table.Granted).by("p").on("y"),
		excl("y", wait, table.Queued).by("o").on("y"),
		shrd("z", try, table.Granted).by("p").on("z"),
	})
	o, p := r.owners["o"], r.owners["p"]
	for _, c := range []struct {
		o    table.Owner
		name string
		want table.Holder
	}{
		{o, "x", r.holders["x"]},
		{o, "y", r.holders["y"]}, // waiting
		{p, "y", r.holders["y1"]},
		{o, "z", nil},
		{p, "x", nil},
		{o, "nope", nil},
	} {
		if got := tb.Find(c.o, c.name); got != c.want {
			t.Errorf("Find(%s, %q) = %v, want %v", ownerName(c.o), c.name, r.labelOrNil(got), r.labelOrNil(c.want))
		}
	}
	tb.Release(r.holders["x"])
	if got := tb.Find(o, "x"); got != nil {
		t.Errorf("Find after Release = %v, want nil", r.labelOrNil(got))
	}
	tb.Release(r.holders["y"])
	if got := tb.Find(o, "y"); got != nil {
		t.Errorf("Find after withdrawing = %v, want nil", r.labelOrNil(got))
	}
	tb.Break("z")
	r.rec.wait(1)
	if got := tb.Find(p, "z"); got != nil {
		t.Errorf("Find after Break = %v, want nil", r.labelOrNil(got))
	}
	r.finish()
}

func (r *scriptRun) labelOrNil(h table.Holder) string {
	if h == nil {
		return "nil"
	}
	return r.label(h)
}

func testHeld(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	p, _ := newOwner(t, tb, rec, table.Info{ClientID: "p"})
	held := func(what string, h table.Holder, want bool) {
		t.Helper()
		if got := tb.Held(h); got != want {
			t.Fatalf("Held(%s) = %v, want %v", what, got, want)
		}
	}
	a := acquire(t, tb, o, table.Request{Name: "x"}, table.Granted)
	held("a granted holder", a, true)
	b := acquire(t, tb, p, table.Request{Name: "x", Wait: true}, table.Queued)
	c := acquire(t, tb, p, table.Request{Name: "x", Wait: true}, table.Queued)
	held("a waiter", b, false)
	tb.Cancel(c)
	held("a cancelled waiter", c, false)
	tb.Release(a)
	held("a released holder", a, false)
	held("a waiter granted by a release", b, true)
	tb.Break("x")
	rec.wait(2)
	held("a broken holder", b, false)
	checkEmpty(t, tb)
}

func testCounters(t *testing.T, tb table.Table) {
	r := newScriptRun(t, tb)
	want := func(c table.Counters) {
		t.Helper()
		if got := tb.Counters(); got != c {
			t.Fatalf("Counters = %+v, want %+v", got, c)
		}
	}
	r.run([]step{
		excl("a", try, table.Granted),                         // acquired 1
		excl("b", try, table.NotGranted),                      // not 1
		excl("b", wait, table.Queued),                         // waiting 1
		refused(sem("c", 2, try, 0), table.ErrLimitMismatch),  // not 2
		refused(sem("c", 2, wait, 0), table.ErrLimitMismatch), // not 3
	})
	want(table.Counters{Acquired: 1, NotAcquired: 3, Held: 1, Waiting: 1, Names: 1})
	r.run([]step{
		rel("a", true, "b"),                   // acquired 2
		shrd("d", try, table.Granted).on("y"), // acquired 3
		shrd("e", try, table.Granted).on("y"), // acquired 4
		excl("f", wait, table.Queued).on("y"), // waiting 1
		excl("g", wait, table.Queued).on("y"), // waiting 2
		cancel("g", true),                     // waiting 1
	})
	tb.CountTimeout() // as the server does for g, whose wait ran out
	want(table.Counters{Acquired: 4, NotAcquired: 4, Held: 3, Waiting: 1, Names: 2})
	r.run([]step{
		rel("d", true),
		rel("e", true, "f"), // acquired 5
		brk(1, "f").on("y"),
	})
	want(table.Counters{Acquired: 5, NotAcquired: 4, Held: 1, Waiting: 0, Names: 1})
	r.run([]step{rel("b", true)})
	want(table.Counters{Acquired: 5, NotAcquired: 4})
	r.finish()
}

func testTokens(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	last := map[string]uint64{}
	check := func(what string, h table.Holder) {
		t.Helper()
		tok := h.Token()
		if tok == 0 {
			t.Fatalf("%s: granted with token 0", what)
		}
		if tok <= last[h.Name()] {
			t.Fatalf("%s: token %d, not above %d granted before on %q", what, tok, last[h.Name()], h.Name())
		}
		last[h.Name()] = tok
	}
	// listed checks that List has the latest token granted on name.
	listed := func(name string) {
		t.Helper()
		li, ok := listAll(t, tb, name, 100)
		if !ok || li.Token != last[name] {
			t.Fatalf("List(%q) token %d (%v), want the latest grant's %d", name, li.Token, ok, last[name])
		}
	}
	// grants checks the grants of a Release, told before it returned.
	grants := func(n int) {
		t.Helper()
		evs := rec.take()
		if len(evs) != n {
			t.Fatalf("Release told %d grants before it returned, want %d", len(evs), n)
		}
		for _, e := range evs {
			check("a grant told by Granted", e.h)
			if e.token != e.h.Token() {
				t.Fatalf("Granted told token %d, then Token() = %d", e.token, e.h.Token())
			}
		}
	}
	for round := range 3 {
		a := acquire(t, tb, o, table.Request{Name: "x"}, table.Granted)
		check(fmt.Sprint("round ", round, ": x"), a)
		listed("x")
		b := acquire(t, tb, o, table.Request{Name: "x", Mode: sh, Wait: true}, table.Queued)
		c := acquire(t, tb, o, table.Request{Name: "x", Mode: sh, Wait: true}, table.Queued)
		if b.Token() != 0 || c.Token() != 0 {
			t.Fatalf("waiters with tokens %d, %d; want 0", b.Token(), c.Token())
		}
		if li, _ := listAll(t, tb, "x", 100); len(li.Waiters) != 2 || li.Waiters[0].Token != 0 || li.Waiters[1].Token != 0 {
			t.Fatalf("waiters listed as %+v, want two with token 0", li.Waiters)
		}
		y := acquire(t, tb, o, table.Request{Name: "y", Mode: sh}, table.Granted)
		check("y", y)
		listed("y")
		listed("x")
		tb.Release(a)
		grants(2)
		listed("x")
		if b.Token() == c.Token() {
			t.Fatalf("two shared grants with token %d", b.Token())
		}
		d := acquire(t, tb, o, table.Request{Name: "x", Mode: sh}, table.Granted)
		check("x", d)
		listed("x")
		tb.Release(b)
		tb.Release(c)
		tb.Release(d)
		tb.Release(y)
		checkEmpty(t, tb) // x and y may be forgotten; their tokens may not
	}
}

func testBreakLost(t *testing.T, tb table.Table) {
	rec := newRecorder()
	var owners []table.Owner
	var hs []table.Holder
	for i := range 3 {
		o, _ := newOwner(t, tb, rec, table.Info{ClientID: fmt.Sprint("s", i)})
		owners = append(owners, o)
		hs = append(hs, acquire(t, tb, o, table.Request{Name: "x", Mode: sh}, table.Granted))
	}
	w, _ := newOwner(t, tb, rec, table.Info{ClientID: "w"})
	wh := acquire(t, tb, w, table.Request{Name: "x", Limit: 2, Wait: true}, table.Queued)
	if n := tb.Break("x"); n != 3 {
		t.Fatalf("Break = %d, want 3", n)
	}
	evs := rec.wait(4)
	lost := map[table.Holder]int{}
	granted := 0
	for _, e := range evs {
		switch {
		case e.lost:
			lost[e.h]++
			if !errors.Is(e.why, table.ErrBroken) {
				t.Errorf("Lost(%s) with %v, want an error that is ErrBroken", ownerName(e.to), e.why)
			}
		case e.h == wh:
			granted++
		default:
			t.Errorf("Granted to %s on Break", ownerName(e.to))
		}
	}
	for i, h := range hs {
		if lost[h] != 1 {
			t.Errorf("holder %d told Lost %d times, want once", i, lost[h])
		}
		if tb.Held(h) || tb.Release(h) || tb.Cancel(h) {
			t.Errorf("holder %d still held or waiting after Break", i)
		}
		if n := owners[i].Count(); n != 0 {
			t.Errorf("owner %d: Count = %d after Break", i, n)
		}
	}
	if granted != 1 || !tb.Held(wh) {
		t.Fatalf("the waiter was told Granted %d times, Held = %v; want once and true", granted, tb.Held(wh))
	}
	if c := tb.Counters(); c.Held != 1 || c.Waiting != 0 || c.Names != 1 {
		t.Fatalf("Counters after Break: %+v, want Held 1, Waiting 0, Names 1", c)
	}
	tb.Release(wh)
	checkEmpty(t, tb)
}
