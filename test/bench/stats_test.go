package main

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0.1, 1}} {
		if got := percentile(s, tc.p); got != tc.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("percentile([7], 99) = %v, want 7", got)
	}
}

func TestJain(t *testing.T) {
	for _, tc := range []struct {
		x    []int64
		want float64
	}{
		{[]int64{5, 5, 5, 5}, 1},
		{[]int64{1, 0, 0, 0}, 0.25},
		{[]int64{2, 1}, 0.9},
		{[]int64{0, 0}, 0},
		{nil, 0},
	} {
		if got := jain(tc.x); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("jain(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
}

func TestMinMax(t *testing.T) {
	lo, hi := minMax([]int64{3, 9, 1, 4})
	if lo != 1 || hi != 9 {
		t.Errorf("minMax = %d, %d, want 1, 9", lo, hi)
	}
	if lo, hi := minMax(nil); lo != 0 || hi != 0 {
		t.Errorf("minMax(nil) = %d, %d", lo, hi)
	}
}

func TestMergeSorted(t *testing.T) {
	got := mergeSorted([][]time.Duration{{5, 1}, nil, {3}})
	want := []time.Duration{1, 3, 5}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestHoldersOverlap(t *testing.T) {
	h := newHolders()
	a := h.get("a")
	if h.get("a") != a {
		t.Fatal("get returns a new holder for the same name")
	}
	a.enter(1)
	a.leave()
	a.enter(2)
	a.leave()
	if n := h.overlaps.Load(); n != 0 {
		t.Fatalf("sequential holders: %d overlaps, want 0", n)
	}
	a.enter(3)
	a.enter(4) // a second holder while the first is inside
	a.leave()
	a.leave()
	if n := h.overlaps.Load(); n != 1 {
		t.Fatalf("overlaps = %d, want 1", n)
	}
	if n := h.tokenErrors.Load(); n != 0 {
		t.Fatalf("token errors = %d, want 0", n)
	}
	b := h.get("b")
	b.enter(0) // no token: never a token error
	b.leave()
	b.enter(0)
	b.leave()
	a.enter(4) // not greater than the last token of a
	a.leave()
	if n := h.tokenErrors.Load(); n != 1 {
		t.Fatalf("token errors = %d, want 1", n)
	}
}
