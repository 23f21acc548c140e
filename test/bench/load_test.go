package main

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func nullTargets(t *testing.T) (legacy, session, waiting *target) {
	addr := nullAddr(t)
	mk := func(mode string, f func(ctx context.Context, _ bool) (locker, error)) *target {
		return &target{peer: "null", mode: mode, pid: os.Getpid(), exclusive: false, newLocker: f}
	}
	legacy = mk("legacy", func(context.Context, bool) (locker, error) { return newTnlLegacy(addr), nil })
	session = mk("session", func(ctx context.Context, _ bool) (locker, error) { return openSession(ctx, addr) })
	waiting = mk("session wait:inf", func(ctx context.Context, _ bool) (locker, error) {
		s, err := openSession(ctx, addr)
		if err == nil {
			s.wait = "inf"
		}
		return s, err
	})
	return legacy, session, waiting
}

func TestRunLoadNull(t *testing.T) {
	legacy, session, waiting := nullTargets(t)
	spec := loadSpec{scenario: "uncontended", workers: 4, warmup: 50 * time.Millisecond, measure: 200 * time.Millisecond, maxCycles: 1_000_000}
	for _, tg := range []*target{legacy, session} {
		res := runLoad(context.Background(), tg, spec)
		if res.Err != "" {
			t.Fatalf("%s: %s", tg.mode, res.Err)
		}
		if res.Ops <= 0 || res.OpsPerSec <= 0 || res.P50us <= 0 || res.P99us < res.P50us {
			t.Errorf("%s: implausible result %+v", tg.mode, res)
		}
		if res.MinGrants <= 0 || res.MaxGrants < res.MinGrants || res.Jain <= 0 || res.Jain > 1 {
			t.Errorf("%s: fairness %d/%d jain %v", tg.mode, res.MinGrants, res.MaxGrants, res.Jain)
		}
		if res.Overlaps != 0 || res.TokenErrors != 0 {
			t.Errorf("%s: own names, yet %d overlaps, %d token errors", tg.mode, res.Overlaps, res.TokenErrors)
		}
		if res.Case != "C=4" || res.Workers != 4 {
			t.Errorf("case %q workers %d", res.Case, res.Workers)
		}
	}
	// The null server grants everything: contended overlaps are counted,
	// but they do not fail the run, since it claims no locking.
	spec.contended, spec.scenario = true, "contended"
	res := runLoad(context.Background(), waiting, spec)
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	if res.failed() {
		t.Errorf("null contended run failed: %+v", res)
	}
}

// fakeLock is a lock table of one name that can be told to misbehave.
type fakeLock struct {
	mu      sync.Mutex
	token   atomic.Uint64
	unsafe  bool // grant without locking: overlaps
	regress bool // hand out the same token every time
	failAt  int  // a worker's lock fails from its failAt-th call on
}

func (f *fakeLock) target() *target {
	return &target{peer: "fake", mode: "fake", pid: os.Getpid(), exclusive: true,
		newLocker: func(context.Context, bool) (locker, error) { return &fakeLocker{f: f}, nil }}
}

type fakeLocker struct {
	f *fakeLock
	n int
}

func (l *fakeLocker) lock(ctx context.Context, name string) (uint64, error) {
	l.n++
	if l.f.failAt > 0 && l.n >= l.f.failAt {
		return 0, errors.New("boom")
	}
	if !l.f.unsafe {
		l.f.mu.Lock()
	}
	if l.f.regress {
		return 1, nil
	}
	return l.f.token.Add(1), nil
}

func (l *fakeLocker) unlock(context.Context, string) error {
	if !l.f.unsafe {
		l.f.mu.Unlock()
	}
	return nil
}

func (l *fakeLocker) close() error { return nil }

func TestRunLoadDetectsUnsafety(t *testing.T) {
	spec := loadSpec{scenario: "contended", workers: 4, contended: true, warmup: 10 * time.Millisecond, measure: 150 * time.Millisecond, maxCycles: 100_000}

	res := runLoad(context.Background(), (&fakeLock{}).target(), spec)
	if res.Err != "" || res.Overlaps != 0 || res.TokenErrors != 0 || res.failed() {
		t.Fatalf("a correct lock failed: %+v", res)
	}

	// With a hold, workers that never wait for each other are inside the
	// name together for sure.
	held := spec
	held.hold = time.Millisecond
	res = runLoad(context.Background(), (&fakeLock{unsafe: true}).target(), held)
	if res.Overlaps == 0 {
		t.Fatalf("an unsafe lock went unnoticed: %+v", res)
	}
	if !res.failed() {
		t.Fatal("overlaps by an exclusive peer do not fail the run")
	}

	res = runLoad(context.Background(), (&fakeLock{regress: true}).target(), spec)
	if res.TokenErrors == 0 || !res.failed() {
		t.Fatalf("repeated tokens went unnoticed: %+v", res)
	}
}

func TestRunLoadWorkerError(t *testing.T) {
	spec := loadSpec{scenario: "uncontended", workers: 2, warmup: 10 * time.Millisecond, measure: 100 * time.Millisecond, maxCycles: 100_000}
	res := runLoad(context.Background(), (&fakeLock{failAt: 3}).target(), spec)
	if res.Err == "" || !res.failed() {
		t.Fatalf("a failing worker is not reported: %+v", res)
	}

	// Bounded by count as well as by time: 2 workers, 5 cycles each.
	spec.maxCycles = 5
	res = runLoad(context.Background(), (&fakeLock{}).target(), spec)
	if res.Err != "" || res.Ops > 10 {
		t.Fatalf("maxCycles 5: %+v", res)
	}
}

func TestRunLoadConnectError(t *testing.T) {
	tg := &target{peer: "x", mode: "x", pid: os.Getpid(), exclusive: true,
		newLocker: func(context.Context, bool) (locker, error) { return nil, errors.New("refused") }}
	res := runLoad(context.Background(), tg, loadSpec{scenario: "uncontended", workers: 2, measure: time.Millisecond, maxCycles: 1})
	if res.Err == "" {
		t.Fatal("connect error not reported")
	}
}
