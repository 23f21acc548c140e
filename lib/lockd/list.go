package lockd

import (
	"slices"

	"github.com/tnl-lock/tnl/lib/table"
)

// Listing a table of any size with bounded memory: FirstNames picks the
// names to list, List copies their holders and waiters a page at a time.
// Why not copy the whole table at once: a peer can make the table huge (a million names, ten
// thousand waiters on each of thousands of names), and an answer that
// copies all of it first takes hundreds of megabytes for a moment, and as
// long as the peer does not read it.

// FirstNames returns the first max names (in byte order) that are held or
// awaited, sorted, in dst's array (when it is large enough), and whether
// there are more. It keeps at most max names while it looks: O(N log max)
// time and O(max) memory for N names, whatever N is. max < 1 returns none.
func (t *Table) FirstNames(dst []string, max int) (names []string, more bool) {
	if max < 1 {
		return dst[:0], t.names.Load() > 0
	}
	// A max-heap of the max smallest names seen so far: its top is the
	// name the next smaller one replaces.
	h := dst[:0]
	if want := min(max, int(t.names.Load())+64); cap(h) < want {
		h = make([]string, 0, want)
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for name := range s.m {
			switch {
			case len(h) < max:
				h = append(h, name)
				heapUp(h, len(h)-1)
			case name < h[0]:
				h[0] = name
				heapDown(h, 0)
				more = true
			default:
				more = true
			}
		}
		s.mu.Unlock()
	}
	slices.Sort(h)
	clear(h[len(h):cap(h)]) // names left from an earlier use: let them go
	return h, more
}

func heapUp(h []string, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p] >= h[i] {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func heapDown(h []string, i int) {
	for {
		l, big := 2*i+1, i
		if l < len(h) && h[l] > h[big] {
			big = l
		}
		if r := l + 1; r < len(h) && h[r] > h[big] {
			big = r
		}
		if big == i {
			return
		}
		h[i], h[big] = h[big], h[i]
		i = big
	}
}

// List fills li with name's mode, limit and latest token, and with at most
// max of its parties after cur: holders oldest first, then waiters in queue
// order (li.Holders and li.Waiters are emptied first and reused). It
// returns the cursor to go on from, and false when the name has no holder
// or waiter, or when the party the cursor stands on has left its list since
// (granted, released, cancelled): the listing cannot go on from there.
// Each call locks one shard and copies at most max parties. A cursor whose
// Last this Table did not make cannot go on: List returns false.
func (t *Table) List(name string, cur table.Cursor, max int, li *table.LockInfo) (table.Cursor, bool) {
	li.Holders, li.Waiters = li.Holders[:0], li.Waiters[:0]
	s := t.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[name]
	if e == nil {
		return cur, false
	}
	li.Name, li.Mode, li.Limit, li.Token = e.name, e.mode, int(e.limit), e.token
	if e.nexcl == 0 {
		li.Limit = 1 // e.limit is left over from exclusive requests that are gone
	}
	if e.nheld == 0 {
		li.Mode = table.Exclusive
	}
	if cur.AtEnd {
		return cur, true
	}
	var h *holder
	last, _ := cur.Last.(*holder)
	switch {
	case cur.Last == nil && !cur.InQ:
		h = e.held
	case cur.Last == nil:
		h = e.qhead
	case last == nil || last.entry != e || last.state != listState(cur.InQ):
		return cur, false
	default:
		h = last.next
	}
	for n := 0; ; n++ {
		if h == nil {
			if cur.InQ || e.qhead == nil {
				cur.AtEnd = true
				return cur, true
			}
			cur.InQ, cur.Last, h = true, nil, e.qhead
		}
		if n == max {
			// Something follows: a cursor that is not done always has a
			// party after it (at the time of the call), so that a caller
			// that stops here knows it leaves something out.
			return cur, true
		}
		if cur.InQ {
			li.Waiters = append(li.Waiters, party(h))
		} else {
			li.Holders = append(li.Holders, party(h))
		}
		cur.Last = h
		h = h.next
	}
}

// listState is the state of the parties in the holders or the waiters list.
func listState(waiters bool) uint8 {
	if waiters {
		return stateWaiting
	}
	return stateHeld
}
