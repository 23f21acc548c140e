package server

import (
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// wait is a session's pending wait.
type wait struct {
	h        table.Holder
	deadline time.Time // zero: no limit
	seq      uint64    // order of arrival, for waits with the same deadline
	i        int       // index in waitSet.heap; -1: not in it
}

// waitSet is a session's pending waits: found by Holder in O(1), and those
// with a deadline in a min-heap, so that the next deadline is O(1) and each
// wait that runs out O(log n). Why not a list: a session may wait for
// thousands of names, and a turn that scanned every wait (for the next
// deadline, for the expired ones, for the one granted) made 150,000 waits
// cost tens of seconds of CPU. Only the connection's goroutine touches it
// (or Granted's direct answer, under wmu).
type waitSet struct {
	m    map[table.Holder]*wait // nil for a wait without a deadline: most are, and it saves 48 bytes each
	heap []*wait
	seq  uint64
	peak int // most waits in m since it was made
}

func (ws *waitSet) len() int { return len(ws.m) }

// add records that h waits, until deadline (zero: no limit).
func (ws *waitSet) add(h table.Holder, deadline time.Time) {
	if ws.m == nil {
		ws.m = make(map[table.Holder]*wait)
	}
	var w *wait
	if !deadline.IsZero() {
		ws.seq++
		w = &wait{h: h, deadline: deadline, seq: ws.seq, i: len(ws.heap)}
		ws.heap = append(ws.heap, w)
		ws.up(w.i)
	}
	ws.m[h] = w
	ws.peak = max(ws.peak, len(ws.m))
}

// drop forgets h's wait and reports whether there was one.
func (ws *waitSet) drop(h table.Holder) bool {
	w, ok := ws.m[h]
	if !ok {
		return false
	}
	delete(ws.m, h)
	if w != nil && w.i >= 0 {
		ws.remove(w.i)
	}
	if len(ws.m) == 0 && ws.peak > 64 {
		// A burst of waits is over: a map never shrinks, so let it go.
		ws.m, ws.peak = nil, 0
	}
	return true
}

// next is the earliest deadline of a wait still in the heap; zero: none.
func (ws *waitSet) next() time.Time {
	if len(ws.heap) == 0 {
		return time.Time{}
	}
	return ws.heap[0].deadline
}

// expired takes the earliest wait whose deadline is not after now out of the
// heap (it stays a wait until dropped) and returns its Holder, or nil.
func (ws *waitSet) expired(now time.Time) table.Holder {
	if len(ws.heap) == 0 || now.Before(ws.heap[0].deadline) {
		return nil
	}
	w := ws.heap[0]
	ws.remove(0)
	return w.h
}

func (ws *waitSet) less(i, j int) bool {
	a, b := ws.heap[i], ws.heap[j]
	if a.deadline.Equal(b.deadline) {
		return a.seq < b.seq
	}
	return a.deadline.Before(b.deadline)
}

func (ws *waitSet) swap(i, j int) {
	h := ws.heap
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}

func (ws *waitSet) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !ws.less(i, p) {
			return
		}
		ws.swap(i, p)
		i = p
	}
}

func (ws *waitSet) down(i int) {
	for n := len(ws.heap); ; {
		l, m := 2*i+1, i
		if l < n && ws.less(l, m) {
			m = l
		}
		if r := l + 1; r < n && ws.less(r, m) {
			m = r
		}
		if m == i {
			return
		}
		ws.swap(i, m)
		i = m
	}
}

func (ws *waitSet) remove(i int) {
	last := len(ws.heap) - 1
	w := ws.heap[i]
	if i != last {
		ws.swap(i, last)
	}
	ws.heap[last] = nil
	ws.heap = ws.heap[:last]
	w.i = -1
	if i != last {
		ws.down(i)
		ws.up(i)
	}
	if len(ws.heap) == 0 && cap(ws.heap) > 64 {
		ws.heap = nil // as for the map
	}
}
