package lockd_test

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

type nopNotifier struct{}

func (nopNotifier) Granted(table.Holder)     {}
func (nopNotifier) Lost(table.Holder, error) {}

// BenchmarkAcquireRelease: one acquire and one release of an uncontended
// lock per op, each goroutine on a name of its own (the name is created and
// forgotten every time, as for a lock that nobody else uses).
func BenchmarkAcquireRelease(b *testing.B) {
	tb := lockd.New(lockd.Options{})
	var id atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		o := lockd.NewOwner(table.Info{}, nopNotifier{})
		name := "bench-" + strconv.FormatInt(id.Add(1), 10)
		for pb.Next() {
			h, res, _ := tb.Acquire(o, table.Request{Name: name})
			if res != table.Granted {
				b.Errorf("%s: %v", name, res)
				return
			}
			tb.Release(h)
		}
	})
}

// BenchmarkHeldMemory reports the heap that a held lock costs, with
// 1,000,000 locks held by one owner (a session) on names of their own. The
// figure includes the name string, which the table keeps.
func BenchmarkHeldMemory(b *testing.B) {
	const n = 1_000_000
	var perLock float64
	for b.Loop() {
		tb := lockd.New(lockd.Options{})
		o := lockd.NewOwner(table.Info{ClientID: "bench", Host: "localhost", PID: 1}, nopNotifier{})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			if _, res, _ := tb.Acquire(o, table.Request{Name: "lock-" + strconv.Itoa(i)}); res != table.Granted {
				b.Fatalf("lock %d: %v", i, res)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perLock = float64(after.HeapAlloc-before.HeapAlloc) / n
		if got := tb.Counters().Held; got != n {
			b.Fatalf("held %d, want %d", got, n)
		}
		tb.ReleaseAll(o)
		runtime.KeepAlive(tb)
	}
	b.ReportMetric(perLock, "B/lock")
}
