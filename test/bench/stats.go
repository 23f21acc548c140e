package main

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method, or 0 for no samples. Nearest rank and not interpolation,
// so that p99 is always a latency some cycle really had.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// jain is Jain's fairness index of x: 1 when every worker got the same share,
// 1/n when one worker got everything. It is 0 for no grants at all.
func jain(x []int64) float64 {
	var sum, sq float64
	for _, v := range x {
		f := float64(v)
		sum += f
		sq += f * f
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(x)) * sq)
}

// minMax returns the smallest and largest of x (0, 0 when empty).
func minMax(x []int64) (lo, hi int64) {
	if len(x) == 0 {
		return 0, 0
	}
	lo, hi = x[0], x[0]
	for _, v := range x[1:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// mergeSorted concatenates the per-worker samples and sorts them.
func mergeSorted(per [][]time.Duration) []time.Duration {
	n := 0
	for _, s := range per {
		n += len(s)
	}
	all := make([]time.Duration, 0, n)
	for _, s := range per {
		all = append(all, s...)
	}
	slices.Sort(all)
	return all
}

// holders is the in-process holder counter: every worker enters a name right
// after the peer granted it and leaves it right before it asks for the
// release, so two workers inside one name at once means the peer granted an
// exclusive lock twice. It also checks that fencing tokens, where the peer
// gives them, strictly increase per name.
type holders struct {
	mu sync.Mutex
	m  map[string]*holder

	overlaps    atomic.Int64
	tokenErrors atomic.Int64
}

// holder is one lock name's state. Workers look it up once, before the
// measured loop, so that the counter costs two atomic adds per cycle.
type holder struct {
	parent *holders
	inside atomic.Int32
	last   atomic.Uint64
}

func newHolders() *holders { return &holders{m: make(map[string]*holder)} }

func (h *holders) get(name string) *holder {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.m[name]
	if !ok {
		s = &holder{parent: h}
		h.m[name] = s
	}
	return s
}

// enter records a grant carrying token (0: the peer gives none).
func (s *holder) enter(token uint64) {
	if s.inside.Add(1) != 1 {
		s.parent.overlaps.Add(1)
	}
	if token != 0 {
		// Swap, not load-then-store, so that the check stays race-free even
		// when an overlap lets two holders in at once.
		if prev := s.last.Swap(token); token <= prev {
			s.parent.tokenErrors.Add(1)
		}
	}
}

// leave must come before the release request is sent: once it is on the
// wire the peer may grant the name to someone else, who would then count us.
func (s *holder) leave() { s.inside.Add(-1) }
