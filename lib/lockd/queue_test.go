package lockd_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

// TestQueueBoundRandom holds Options.MaxWaiters against random traffic from
// many goroutines over names in different shards: a request that would
// wait is refused with ErrQueueFull exactly when its name already has
// MaxWaiters waiters, and no queue ever grows past the bound, whatever
// made room (a release, a cancel, a break, an owner gone). The rest of
// the table's rules under such traffic are the conformance suite's.
//
// A test mutex per name is held around every call on the name, so that the
// waiters listed just before a call are the ones the call meets.
func TestQueueBoundRandom(t *testing.T) {
	for _, bound := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("MaxWaiters ", bound), func(t *testing.T) { queueBoundRandom(t, bound) })
	}
}

func queueBoundRandom(t *testing.T, bound int) {
	const workers, ops, nNames = 6, 1500, 8
	tb := lockd.New(lockd.Options{MaxWaiters: bound})
	var mus [nNames]sync.Mutex
	waiters := func(name string) int {
		li := tb.Snapshot([]string{name}, 0)
		if len(li) == 0 {
			return 0
		}
		return len(li[0].Waiters)
	}
	var refusals atomic.Int64 // ErrQueueFull seen: the traffic must fill queues
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(bound), uint64(w)))
			owners := []table.Owner{quiet(fmt.Sprint(w, "a")), quiet(fmt.Sprint(w, "b"))}
			type held struct {
				h table.Holder
				k int // index of its name
			}
			var mine []held // may have gone since (broken, released with the owner)
			for i := 0; i < ops && !t.Failed(); i++ {
				k := rng.IntN(nNames)
				name := fmt.Sprint("q", k)
				switch op := rng.IntN(10); {
				case op < 5 || len(mine) == 0:
					r := table.Request{Name: name, Wait: rng.IntN(4) > 0}
					if rng.IntN(3) == 0 {
						r.Mode = table.Shared
					} else {
						r.Limit = 1 + k%2
						if rng.IntN(20) == 0 {
							r.Limit++ // a mismatch now and then
						}
					}
					mus[k].Lock()
					before := waiters(name)
					h, res, err := tb.Acquire(owners[rng.IntN(len(owners))], r)
					after := waiters(name)
					mus[k].Unlock()
					full := r.Wait && before >= bound
					if errors.Is(err, table.ErrQueueFull) != (full && !errors.Is(err, table.ErrLimitMismatch)) ||
						full && res != table.Refused {
						t.Errorf("%+v with %d of %d waiters: %v, %v", r, before, bound, res, err)
					}
					if errors.Is(err, table.ErrQueueFull) {
						refusals.Add(1)
					}
					if after > bound {
						t.Errorf("%s: %d waiters, more than %d", name, after, bound)
					}
					if h != nil {
						mine = append(mine, held{h, k})
					}
				case op < 8:
					j := rng.IntN(len(mine))
					m := mine[j]
					mine[j] = mine[len(mine)-1]
					mine = mine[:len(mine)-1]
					mus[m.k].Lock()
					if op == 5 {
						tb.Cancel(m.h)
					}
					tb.Release(m.h)
					mus[m.k].Unlock()
				case op == 8:
					mus[k].Lock()
					tb.Break(name)
					mus[k].Unlock()
				default:
					for k := range mus {
						mus[k].Lock()
					}
					tb.ReleaseAll(owners[rng.IntN(len(owners))])
					for k := range mus {
						mus[k].Unlock()
					}
				}
			}
			for _, o := range owners {
				for k := range mus {
					mus[k].Lock()
				}
				tb.ReleaseAll(o)
				for k := range mus {
					mus[k].Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if refusals.Load() == 0 {
		t.Error("no request met a full queue")
	}
	checkEmpty(t, tb)
}
