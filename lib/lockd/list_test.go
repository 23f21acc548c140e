package lockd_test

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

func listOwner(id string) table.Owner {
	return lockd.NewOwner(table.Info{ClientID: id}, notifyFunc(func(table.Holder) {}))
}

// TestFirstNames: the first k names in byte order, and whether more exist,
// for every k, with names spread over every shard, so that the heap that
// merges the shards' maps sees every order of arrival (the conformance
// suite's few names do not).
func TestFirstNames(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	var all []string
	rnd := rand.New(rand.NewSource(7))
	for _, i := range rnd.Perm(300) {
		n := fmt.Sprintf("n%04d", i*7%1000)
		all = append(all, n)
		if _, res, _ := tb.Acquire(listOwner("o"), table.Request{Name: n}); res != table.Granted {
			t.Fatalf("acquire %s: %v", n, res)
		}
	}
	slices.Sort(all)
	if got, more := tb.FirstNames(nil, 0); got != nil || !more {
		t.Errorf("FirstNames(0) = %q, %v; want none, more", got, more)
	}
	for k := 1; k <= len(all)+2; k++ {
		got, more := tb.FirstNames(nil, k)
		want := all[:min(k, len(all))]
		if !slices.Equal(got, want) || more != (k < len(all)) {
			t.Fatalf("FirstNames(%d) = %d names (%q...), more %v; want %d, more %v", k, len(got), got[:min(3, len(got))], more, len(want), k < len(all))
		}
	}
}

// TestListCursorLost: when the party a cursor stands on leaves its list
// (released, granted), List says so instead of listing from a wrong place;
// other changes do not disturb it. Which party a returned cursor stands on
// is lockd's choice (a cursor that has listed the last holder stands at the
// start of the waiters, on nobody), so this is here and not in the
// conformance suite, which checks the stale cursors every table has.
func TestListCursorLost(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	acq := func(id string, r table.Request) table.Holder {
		r.Name = "x"
		h, _, _ := tb.Acquire(listOwner(id), r)
		return h
	}
	h0 := acq("h0", table.Request{Mode: table.Shared})
	h1 := acq("h1", table.Request{Mode: table.Shared})
	w0 := acq("w0", table.Request{Wait: true})
	w1 := acq("w1", table.Request{Wait: true})
	var li table.LockInfo

	cur, ok := tb.List("x", table.Cursor{}, 1, &li) // h0, h1 follows
	tb.Release(h1)                                  // another holder leaves: fine
	if next, ok2 := tb.List("x", cur, 1, &li); !ok || !ok2 || len(li.Waiters) != 1 || li.Waiters[0].ClientID != "w0" || next.Done() {
		t.Fatalf("after another holder left: %v %v %+v", ok, ok2, li)
	}
	tb.Release(h0) // the cursor's holder leaves: w0 is granted
	if _, ok := tb.List("x", cur, 1, &li); ok {
		t.Errorf("cursor on a released holder: still ok, %+v", li)
	}

	// A cursor at the end of a list has moved on already: w0 holds, and the
	// cursor after it stands at the start of the waiters.
	cur, _ = tb.List("x", table.Cursor{}, 1, &li)
	if len(li.Holders) != 1 || li.Holders[0].ClientID != "w0" || !cur.Waiters() || cur.Done() {
		t.Fatalf("holders: %+v, cursor at the waiters %v", li, cur.Waiters())
	}
	acq("w2", table.Request{Wait: true})
	tb.Release(w0) // w1 granted
	if next, ok := tb.List("x", cur, 5, &li); !ok || len(li.Waiters) != 1 || li.Waiters[0].ClientID != "w2" || !next.Done() {
		t.Errorf("waiters after w0 left: %v %+v", ok, li)
	}

	// A cursor on a waiter that is granted meanwhile has lost its place.
	acq("w3", table.Request{Wait: true})
	cur, _ = tb.List("x", table.Cursor{}.SkipHolders(), 1, &li) // w2, w3 follows
	if len(li.Waiters) != 1 || li.Waiters[0].ClientID != "w2" || cur.Done() {
		t.Fatalf("waiters: %+v, done %v", li, cur.Done())
	}
	tb.Release(w1) // w2 granted
	if _, ok := tb.List("x", cur, 1, &li); ok {
		t.Errorf("cursor on a granted waiter: still ok, %+v", li)
	}
	// A done cursor lists nothing more, and is fine.
	cur, _ = tb.List("x", table.Cursor{}, 10, &li)
	if _, ok := tb.List("x", cur, 10, &li); !cur.Done() || !ok || len(li.Holders)+len(li.Waiters) != 0 {
		t.Errorf("a done cursor: done %v, ok %v, %+v", cur.Done(), ok, li)
	}
}
