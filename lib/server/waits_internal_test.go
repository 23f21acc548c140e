package server

import (
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// fakeHolder is a table.Holder of no table: the set only compares them.
// (Not of size zero: pointers to those may all be equal.)
type fakeHolder struct{ table.Holder }

// TestWaitSet runs random adds, drops and expiries against a plain list (the
// old representation) and checks that the set finds the same waits, that the
// next deadline is the earliest, and that waits run out earliest first, in
// arrival order when deadlines are equal.
func TestWaitSet(t *testing.T) {
	type model struct {
		h        table.Holder
		deadline time.Time
		expired  bool // taken from the heap, still a wait
	}
	rnd := rand.New(rand.NewSource(9))
	base := time.Unix(1000, 0)
	var ws waitSet
	var list []model
	now := base
	for step := range 20000 {
		switch op := rnd.Intn(10); {
		case op < 4 || len(list) == 0: // add
			h := &fakeHolder{}
			var d time.Time
			if rnd.Intn(4) > 0 {
				spread := []int{50, 5000}[rnd.Intn(2)] // equal deadlines often, and far apart
				d = base.Add(time.Duration(rnd.Intn(spread)) * time.Millisecond)
			}
			ws.add(h, d)
			list = append(list, model{h: h, deadline: d})
		case op < 7: // drop one, or one that is not there
			if rnd.Intn(5) == 0 {
				if ws.drop(&fakeHolder{}) {
					t.Fatalf("step %d: dropped a holder that never waited", step)
				}
				continue
			}
			i := rnd.Intn(len(list))
			if !ws.drop(list[i].h) {
				t.Fatalf("step %d: drop of a wait failed", step)
			}
			if ws.drop(list[i].h) {
				t.Fatalf("step %d: dropped a wait twice", step)
			}
			list = slices.Delete(list, i, i+1)
		default: // time passes; take what ran out, in order
			now = now.Add(time.Duration(rnd.Intn(5)) * time.Millisecond)
			var want []table.Holder
			idx := map[table.Holder]int{}
			for i, m := range list {
				idx[m.h] = i
				if !m.expired && !m.deadline.IsZero() && !now.Before(m.deadline) {
					want = append(want, m.h)
				}
			}
			// Earliest deadline first; equal deadlines in arrival order
			// (the list is in arrival order).
			slices.SortStableFunc(want, func(a, b table.Holder) int {
				return list[idx[a]].deadline.Compare(list[idx[b]].deadline)
			})
			var got []table.Holder
			for h := ws.expired(now); h != nil; h = ws.expired(now) {
				got = append(got, h)
				list[idx[h]].expired = true
			}
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: %d expired, want %d, or out of order", step, len(got), len(want))
			}
		}
		var next time.Time
		for _, m := range list {
			if !m.expired && !m.deadline.IsZero() && (next.IsZero() || m.deadline.Before(next)) {
				next = m.deadline
			}
		}
		if !ws.next().Equal(next) || ws.len() != len(list) {
			t.Fatalf("step %d: next %v, len %d; want %v, %d", step, ws.next(), ws.len(), next, len(list))
		}
	}
	// Emptied after a burst: the map and the heap are let go.
	for _, m := range list {
		ws.drop(m.h)
	}
	if ws.m != nil || cap(ws.heap) > 64 || ws.len() != 0 {
		t.Errorf("emptied: map %v, heap of %d", ws.m != nil, cap(ws.heap))
	}
}
