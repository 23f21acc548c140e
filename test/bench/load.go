package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// locker is one worker's handle on a peer: it locks and unlocks one name at
// a time. token is the peer's fencing token for the grant, 0 when it has none.
type locker interface {
	lock(ctx context.Context, name string) (token uint64, err error)
	unlock(ctx context.Context, name string) error
	close() error
}

// target is a peer in one mode (tnl legacy, tnl session, redis, ...) that
// hands out a locker per worker.
type target struct {
	peer, mode string
	pid        int // the server process whose CPU and memory are measured
	// exclusive is false for the null server, which grants everything: its
	// overlaps are counted but do not fail the run.
	exclusive bool
	newLocker func(ctx context.Context, contended bool) (locker, error)
}

// loadSpec is one timed run.
type loadSpec struct {
	scenario  string
	workers   int
	contended bool          // all workers on one name
	hold      time.Duration // time between grant and release; 0 in the scenarios
	warmup    time.Duration
	measure   time.Duration
	// maxCycles bounds each worker's loop by count as well as by time.
	maxCycles int
}

// maxSamplesPerWorker caps the latency samples a worker keeps (8 bytes
// each), so that a very fast peer cannot make the benchmark itself big.
const maxSamplesPerWorker = 1 << 20

// cycleTimeout bounds a single lock+unlock beyond the end of the run; a
// contended wait:inf that outlives it is a hung server.
const cycleTimeout = 5 * time.Second

// setupTimeout bounds connecting the workers (64 etcd sessions take a
// while: each is a lease grant through raft).
const setupTimeout = 30 * time.Second

// runSeq numbers the runs of this process, so that no run reuses a lock name
// that an earlier, failed run may have left held.
var runSeq atomic.Int64

type workerOut struct {
	grants  int64
	samples []time.Duration
	err     error
}

// runLoad runs spec against t: every worker locks and unlocks its name in a
// loop; cycles that end inside the measuring window are counted.
func runLoad(ctx context.Context, t *target, spec loadSpec) *Result {
	res := &Result{Scenario: spec.scenario, Case: fmt.Sprintf("C=%d", spec.workers), Peer: t.peer, Mode: t.mode, Workers: spec.workers, exclusive: t.exclusive}
	if !t.exclusive {
		res.Note = "no lock table: overlaps not enforced"
	}
	// The lockers live in ctx (etcd sessions keep their lease alive in it);
	// the cycles run in runCtx, which ends cycleTimeout after the window.
	ctx, cancel := context.WithTimeout(ctx, setupTimeout+spec.warmup+spec.measure+cycleTimeout)
	defer cancel()

	lockers := make([]locker, spec.workers)
	defer func() {
		for _, l := range lockers {
			if l != nil {
				_ = l.close()
			}
		}
	}()
	for i := range lockers {
		l, err := t.newLocker(ctx, spec.contended)
		if err != nil {
			res.Err = fmt.Sprintf("worker %d: connecting: %v", i, err)
			return res
		}
		lockers[i] = l
	}

	h := newHolders()
	start := time.Now()
	mStart := start.Add(spec.warmup)
	mEnd := mStart.Add(spec.measure)
	runCtx, cancelRun := context.WithDeadline(ctx, mEnd.Add(cycleTimeout))
	defer cancelRun()
	for _, l := range lockers {
		if a, ok := l.(interface{ arm(time.Time) }); ok {
			a.arm(mEnd.Add(cycleTimeout))
		}
	}
	outs := make([]workerOut, spec.workers)
	seq := runSeq.Add(1)
	var wg sync.WaitGroup
	for i := range lockers {
		name := fmt.Sprintf("bench-%d-%d", seq, i)
		if spec.contended {
			name = fmt.Sprintf("bench-%d-contended", seq)
		}
		wg.Go(func() {
			outs[i] = work(runCtx, lockers[i], name, h.get(name), mStart, mEnd, spec.maxCycles, spec.hold)
		})
	}

	// CPU is read at the edges of the measuring window, by this goroutine,
	// while the workers run.
	cpu0, cpuErr := sleepThenCPU(ctx, t.pid, mStart)
	cpu1, cpuErr1 := sleepThenCPU(ctx, t.pid, mEnd)
	wg.Wait()
	if cpuErr == nil && cpuErr1 == nil {
		res.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
	}

	grants := make([]int64, spec.workers)
	per := make([][]time.Duration, spec.workers)
	var errs []error
	for i, o := range outs {
		grants[i] = o.grants
		per[i] = o.samples
		res.Ops += o.grants
		if o.err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", i, o.err))
		}
	}
	res.Seconds = spec.measure.Seconds()
	res.OpsPerSec = float64(res.Ops) / res.Seconds
	all := mergeSorted(per)
	res.P50us = us(percentile(all, 50))
	res.P99us = us(percentile(all, 99))
	res.MinGrants, res.MaxGrants = minMax(grants)
	res.Jain = jain(grants)
	for _, l := range lockers {
		if r, ok := l.(interface{ retryCount() int64 }); ok {
			res.Retries += r.retryCount()
		}
	}
	res.Overlaps = h.overlaps.Load()
	res.TokenErrors = h.tokenErrors.Load()
	if res.Ops > 0 && res.ServerCPUSeconds > 0 {
		res.CPUusPerOp = res.ServerCPUSeconds * 1e6 / float64(res.Ops)
	}
	if len(errs) > 0 {
		res.Err = fmt.Sprintf("%d of %d workers failed; first: %v", len(errs), spec.workers, errs[0])
	}
	return res
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// work is one worker's loop, bounded by mEnd and by maxCycles.
func work(ctx context.Context, l locker, name string, h *holder, mStart, mEnd time.Time, maxCycles int, hold time.Duration) workerOut {
	var out workerOut
	for n := 0; n < maxCycles; n++ {
		t0 := time.Now()
		if !t0.Before(mEnd) {
			break
		}
		if ctx.Err() != nil {
			out.err = ctx.Err()
			break
		}
		tok, err := l.lock(ctx, name)
		if err != nil {
			out.err = fmt.Errorf("lock %s: %w", name, err)
			break
		}
		h.enter(tok)
		if hold > 0 {
			time.Sleep(hold)
		}
		h.leave()
		if err := l.unlock(ctx, name); err != nil {
			out.err = fmt.Errorf("unlock %s: %w", name, err)
			break
		}
		t1 := time.Now()
		// A cycle counts when it ends inside the window: unbiased in a
		// steady state, whatever the cycle's length.
		if !t1.Before(mStart) && t1.Before(mEnd) {
			out.grants++
			if len(out.samples) < maxSamplesPerWorker {
				out.samples = append(out.samples, t1.Sub(t0))
			}
		}
	}
	if errors.Is(out.err, context.Canceled) {
		out.err = fmt.Errorf("interrupted")
	}
	return out
}

// sleepThenCPU waits until at, then reads pid's CPU time.
func sleepThenCPU(ctx context.Context, pid int, at time.Time) (time.Duration, error) {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return procCPU(pid)
}
