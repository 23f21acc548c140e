package tabletest

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/tnl-lock/tnl/lib/table"
)

func testFirstNames(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	p, _ := newOwner(t, tb, rec, table.Info{ClientID: "p"})
	all := []string{"b", "a.1", "c", "a", "B", "ab", "a-"}
	for _, name := range all {
		acquire(t, tb, o, table.Request{Name: name, Mode: sh}, table.Granted)
	}
	acquire(t, tb, p, table.Request{Name: "c", Wait: true}, table.Queued)
	sorted := slices.Sorted(slices.Values(all)) // byte order: "B" first
	for max := 0; max <= len(all)+2; max++ {
		names, more := tb.FirstNames(nil, max)
		want := sorted[:min(max, len(sorted))]
		if !slices.Equal(names, want) || more != (max < len(all)) {
			t.Errorf("FirstNames(nil, %d) = %q, %v; want %q, %v", max, names, more, want, max < len(all))
		}
	}
	// In dst's array when it is large enough; stale contents do not leak.
	dst := make([]string, 3, 10)
	copy(dst, []string{"zz", "zz", "zz"})
	names, more := tb.FirstNames(dst, 4)
	if !slices.Equal(names, sorted[:4]) || !more {
		t.Fatalf("FirstNames(dst, 4) = %q, %v; want %q, true", names, more, sorted[:4])
	}
	if &names[0] != &dst[:1][0] {
		t.Error("FirstNames(dst, 4) did not use dst's array, which has room for 10")
	}
	// Released and withdrawn names are gone from the listing.
	tb.ReleaseAll(o)
	rec.wait(1) // p's grant of c
	if names, more := tb.FirstNames(nil, 10); !slices.Equal(names, []string{"c"}) || more {
		t.Fatalf("FirstNames after ReleaseAll = %q, %v; want [c], false", names, more)
	}
	tb.ReleaseAll(p)
	checkEmpty(t, tb)
}

// listParties is the setup of the List tests: on s, three shared holders
// then waiters (exclusive, shared, exclusive); on m, a semaphore of 3 with
// two holders; on q, one shared holder after an exclusive one left.
type listParties struct {
	rec    *recorder
	owners map[string]table.Owner
	hs     map[string]table.Holder
}

func newListParties(t *testing.T, tb table.Table) *listParties {
	lp := &listParties{rec: newRecorder(), owners: map[string]table.Owner{}, hs: map[string]table.Holder{}}
	for i, r := range []struct {
		id    string
		name  string
		mode  table.Mode
		limit int
		want  table.Result
	}{
		{"s1", "s", sh, 0, table.Granted},
		{"s2", "s", sh, 5, table.Granted}, // a shared request's Limit means nothing
		{"s3", "s", sh, 0, table.Granted},
		{"w1", "s", ex, 1, table.Queued},
		{"w2", "s", sh, 0, table.Queued},
		{"w3", "s", ex, 0, table.Queued},
		{"m1", "m", ex, 3, table.Granted},
		{"m2", "m", ex, 3, table.Granted},
		{"q1", "q", ex, 3, table.Granted},
		{"q2", "q", sh, 0, table.Queued},
	} {
		o, _ := newOwner(t, tb, lp.rec, table.Info{ClientID: r.id, Host: "host-" + r.id, PID: 100 + i, Addr: fmt.Sprint("10.0.0.1:", 1000+i)})
		lp.owners[r.id] = o
		lp.hs[r.id] = acquire(t, tb, o, table.Request{Name: r.name, Mode: r.mode, Limit: r.limit, Wait: true}, r.want)
	}
	tb.Release(lp.hs["q1"]) // q2 granted; no exclusive request left on q
	if evs := lp.rec.take(); len(evs) != 1 || evs[0].h != lp.hs["q2"] {
		t.Fatalf("releasing q1 told %d events, want q2's grant", len(evs))
	}
	return lp
}

func (lp *listParties) party(id string, mode table.Mode, limit int) table.Party {
	o := lp.owners[id]
	return table.Party{Info: *o.Info(), Mode: mode, Limit: limit, Token: lp.hs[id].Token()}
}

// sameParties compares parties but for Since, which must only be set: the
// suite does not know the table's clock.
func sameParties(t *testing.T, what string, got, want []table.Party) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d parties %+v, want %d %+v", what, len(got), got, len(want), want)
	}
	for i := range got {
		g := got[i]
		if g.Since.IsZero() {
			t.Errorf("%s: party %d (%s) has no Since", what, i, g.ClientID)
		}
		g.Since = want[i].Since
		if !reflect.DeepEqual(g, want[i]) {
			t.Errorf("%s: party %d:\n got %+v\nwant %+v", what, i, g, want[i])
		}
	}
}

func sameInfo(t *testing.T, what string, got, want table.LockInfo) {
	t.Helper()
	if got.Name != want.Name || got.Mode != want.Mode || got.Limit != want.Limit || got.Token != want.Token {
		t.Errorf("%s: name %q mode %v limit %d token %d; want %q %v %d %d", what,
			got.Name, modeName(got.Mode), got.Limit, got.Token, want.Name, modeName(want.Mode), want.Limit, want.Token)
	}
	sameParties(t, what+": holders", got.Holders, want.Holders)
	sameParties(t, what+": waiters", got.Waiters, want.Waiters)
}

func testList(t *testing.T, tb table.Table) {
	lp := newListParties(t, tb)
	p := lp.party
	s := table.LockInfo{
		Name: "s", Mode: sh, Limit: 1, Token: lp.hs["s3"].Token(),
		Holders: []table.Party{p("s1", sh, 1), p("s2", sh, 1), p("s3", sh, 1)},
		Waiters: []table.Party{p("w1", ex, 1), p("w2", sh, 1), p("w3", ex, 1)},
	}
	m := table.LockInfo{
		Name: "m", Mode: ex, Limit: 3, Token: lp.hs["m2"].Token(),
		Holders: []table.Party{p("m1", ex, 3), p("m2", ex, 3)},
	}
	q := table.LockInfo{
		Name: "q", Mode: sh, Limit: 1, Token: lp.hs["q2"].Token(),
		Holders: []table.Party{p("q2", sh, 1)},
	}
	for _, want := range []table.LockInfo{s, m, q} {
		var li table.LockInfo
		cur, ok := tb.List(want.Name, table.Cursor{}, 100, &li)
		if !ok || !cur.Done() {
			t.Fatalf("List(%q, max 100) = %v, done %v; want true, done", want.Name, ok, cur.Done())
		}
		sameInfo(t, fmt.Sprintf("List(%q)", want.Name), li, want)
	}
	var li table.LockInfo
	if _, ok := tb.List("nope", table.Cursor{}, 100, &li); ok {
		t.Fatal(`List("nope") = true for a name nobody holds`)
	}

	// max 0: the name's data, no party.
	li = table.LockInfo{}
	if _, ok := tb.List("s", table.Cursor{}, 0, &li); !ok || len(li.Holders)+len(li.Waiters) != 0 || li.Name != "s" || li.Token != s.Token {
		t.Fatalf("List(s, max 0) = %v, %+v; want true, the name's data and no party", ok, li)
	}

	// SkipHolders from the start lists the waiters only.
	cur, ok := tb.List("s", table.Cursor{}.SkipHolders(), 100, &li)
	if !ok || !cur.Done() {
		t.Fatalf("List(s, SkipHolders) = %v, done %v", ok, cur.Done())
	}
	sameParties(t, "List(s, SkipHolders): holders", li.Holders, nil)
	sameParties(t, "List(s, SkipHolders): waiters", li.Waiters, s.Waiters)

	// SkipHolders in the middle of the holders.
	cur, ok = tb.List("s", table.Cursor{}, 1, &li)
	if !ok || cur.Done() || cur.Waiters() {
		t.Fatalf("List(s, max 1) = %v, done %v, waiters %v; want true, not done, in the holders", ok, cur.Done(), cur.Waiters())
	}
	sameParties(t, "List(s, max 1): holders", li.Holders, s.Holders[:1])
	skip := cur.SkipHolders()
	if !skip.Waiters() || skip.Done() {
		t.Fatalf("SkipHolders: waiters %v, done %v", skip.Waiters(), skip.Done())
	}
	cur, ok = tb.List("s", skip, 2, &li)
	if !ok || cur.Done() || !cur.Waiters() {
		t.Fatalf("List(s, skipped, max 2) = %v, done %v, waiters %v; want true, not done, in the waiters", ok, cur.Done(), cur.Waiters())
	}
	sameParties(t, "List(s, skipped, max 2): holders", li.Holders, nil)
	sameParties(t, "List(s, skipped, max 2): waiters", li.Waiters, s.Waiters[:2])
	if cur.SkipHolders() != cur {
		t.Fatal("SkipHolders of a cursor in the waiters moved it")
	}
	cur, ok = tb.List("s", cur, 2, &li)
	if !ok || !cur.Done() {
		t.Fatalf("List(s, last page) = %v, done %v; want true, done", ok, cur.Done())
	}
	sameParties(t, "List(s, last page): holders", li.Holders, nil)
	sameParties(t, "List(s, last page): waiters", li.Waiters, s.Waiters[2:])
	// A done cursor lists nothing more.
	if _, ok := tb.List("s", cur, 2, &li); !ok || len(li.Holders)+len(li.Waiters) != 0 {
		t.Fatalf("List(s, done) = %v with %d parties; want true and none", ok, len(li.Holders)+len(li.Waiters))
	}

	// li's slices are emptied and reused.
	li = table.LockInfo{Holders: make([]table.Party, 3, 8), Waiters: make([]table.Party, 5, 8)}
	hs, ws := &li.Holders[:1][0], &li.Waiters[:1][0]
	if _, ok := tb.List("m", table.Cursor{}, 100, &li); !ok {
		t.Fatal("List(m) = false")
	}
	sameInfo(t, "List(m) into a used LockInfo", li, m)
	if len(li.Holders) == 0 || &li.Holders[0] != hs {
		t.Error("List(m) did not reuse li.Holders' array")
	}
	if cap(li.Waiters) != 8 || &li.Waiters[:1][0] != ws {
		t.Error("List(m) did not reuse li.Waiters' array")
	}

	// A waiter's Since becomes that of its grant, and it lists as a
	// holder with its token.
	for _, id := range []string{"s1", "s2", "s3"} {
		tb.Release(lp.hs[id])
	}
	lp.rec.take()
	want := table.LockInfo{
		Name: "s", Mode: ex, Limit: 1, Token: lp.hs["w1"].Token(),
		Holders: []table.Party{p("w1", ex, 1)},
		Waiters: []table.Party{p("w2", sh, 1), p("w3", ex, 1)},
	}
	got, _ := listAll(t, tb, "s", 100)
	sameInfo(t, "List(s) after its holders left", got, want)
	for _, o := range lp.owners {
		tb.ReleaseAll(o)
	}
	checkEmpty(t, tb)
}

// testListPaging lists one name with every page size and checks that the
// pages add up to the whole listing, and that a cursor is done exactly when
// nothing follows.
func testListPaging(t *testing.T, tb table.Table) {
	lp := newListParties(t, tb)
	full, ok := listAll(t, tb, "s", 1000)
	if !ok || len(full.Holders) != 3 || len(full.Waiters) != 3 {
		t.Fatalf("List(s) = %v with %d holders and %d waiters, want 3 and 3", ok, len(full.Holders), len(full.Waiters))
	}
	total := len(full.Holders) + len(full.Waiters)
	for page := 1; page <= total+1; page++ {
		var li, got table.LockInfo
		var cur table.Cursor
		for calls := 1; ; calls++ {
			next, ok := tb.List("s", cur, page, &li)
			if !ok {
				t.Fatalf("page size %d: List = false on call %d", page, calls)
			}
			got.Holders = append(got.Holders, li.Holders...)
			got.Waiters = append(got.Waiters, li.Waiters...)
			listed := len(got.Holders) + len(got.Waiters)
			if next.Done() != (listed == total) {
				t.Fatalf("page size %d, call %d: %d of %d parties listed, cursor done %v", page, calls, listed, total, next.Done())
			}
			if len(li.Waiters) > 0 && !next.Waiters() || len(got.Holders) < len(full.Holders) && next.Waiters() {
				t.Fatalf("page size %d, call %d: cursor in the waiters %v after %d of %d holders and %d waiters",
					page, calls, next.Waiters(), len(got.Holders), len(full.Holders), len(got.Waiters))
			}
			if next.Done() {
				break
			}
			if calls > total {
				t.Fatalf("page size %d: more than %d calls", page, total)
			}
			cur = next
		}
		got.Name, got.Mode, got.Limit, got.Token = full.Name, full.Mode, full.Limit, full.Token
		sameInfo(t, fmt.Sprintf("page size %d", page), got, full)
	}
	for _, o := range lp.owners {
		tb.ReleaseAll(o)
	}
	checkEmpty(t, tb)
}

// testListStale: a cursor on a party that has left its list since (a
// holder released, a waiter granted or withdrawn) cannot go on.
func testListStale(t *testing.T, tb table.Table) {
	lp := newListParties(t, tb)
	var li table.LockInfo
	onHolder, ok := tb.List("s", table.Cursor{}, 1, &li) // on s1
	if !ok || partyIDs(li.Holders) != "s1" {
		t.Fatalf("List(s, max 1) = %v, holders %q; want s1", ok, partyIDs(li.Holders))
	}
	onWaiter, ok := tb.List("s", table.Cursor{}.SkipHolders(), 1, &li) // on w1
	if !ok || partyIDs(li.Waiters) != "w1" {
		t.Fatalf("List(s, waiters, max 1) = %v, waiters %q; want w1", ok, partyIDs(li.Waiters))
	}
	onW2, ok := tb.List("s", onWaiter, 1, &li) // on w2
	if !ok || partyIDs(li.Waiters) != "w2" {
		t.Fatalf("List(s, after w1, max 1) = %v, waiters %q; want w2", ok, partyIDs(li.Waiters))
	}
	onS2, ok := tb.List("s", onHolder, 1, &li) // on s2
	if !ok || partyIDs(li.Holders) != "s2" {
		t.Fatalf("List(s, after s1, max 1) = %v, holders %q; want s2", ok, partyIDs(li.Holders))
	}

	tb.Release(lp.hs["s1"])
	if _, ok := tb.List("s", onHolder, 10, &li); ok {
		t.Error("List from a cursor on a holder released since = true")
	}
	if _, ok := tb.List("s", onS2, 10, &li); !ok || partyIDs(li.Holders) != "s3" || partyIDs(li.Waiters) != "w1 w2 w3" {
		t.Errorf("List from s2 after s1 left = %v, holders %q, waiters %q; want s3 and w1 w2 w3", ok, partyIDs(li.Holders), partyIDs(li.Waiters))
	}
	tb.Release(lp.hs["s2"])
	tb.Release(lp.hs["s3"]) // w1 granted
	if evs := lp.rec.take(); len(evs) != 1 || evs[0].h != lp.hs["w1"] {
		t.Fatalf("releasing s's holders told %d events, want w1's grant", len(evs))
	}
	if _, ok := tb.List("s", onWaiter, 10, &li); ok {
		t.Error("List from a cursor on a waiter granted since = true")
	}
	if !tb.Cancel(lp.hs["w2"]) {
		t.Fatal("Cancel(w2) = false")
	}
	if _, ok := tb.List("s", onW2, 10, &li); ok {
		t.Error("List from a cursor on a waiter withdrawn since = true")
	}
	for _, o := range lp.owners {
		tb.ReleaseAll(o)
	}
	checkEmpty(t, tb)
}
