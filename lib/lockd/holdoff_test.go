package lockd_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

// TestHoldOff: a table made with HoldOff grants nothing, not even to the
// first request of a name, until EndHoldOff; then it grants the queues in
// arrival order, and behaves as usual.
func TestHoldOff(t *testing.T) {
	var mu sync.Mutex
	var grants []string
	owner := func(id string) table.Owner {
		return lockd.NewOwner(table.Info{ClientID: id}, notifyFunc(func(h table.Holder) {
			mu.Lock()
			grants = append(grants, h.Owner().Info().ClientID)
			mu.Unlock()
		}))
	}
	tab := lockd.New(lockd.Options{HoldOff: true})
	if !tab.HoldingOff() {
		t.Fatal("HoldingOff() = false for a table made with HoldOff")
	}
	a, b, c, d, e := owner("a"), owner("b"), owner("c"), owner("d"), owner("e")
	if _, res, _ := tab.Acquire(a, table.Request{Name: "x"}); res != table.NotGranted {
		t.Fatalf("try-once during the hold-off: %v, want NotGranted", res)
	}
	hb, res, _ := tab.Acquire(b, table.Request{Name: "x", Wait: true})
	if res != table.Queued {
		t.Fatalf("wait during the hold-off: %v, want Queued", res)
	}
	if _, res, _ := tab.Acquire(c, table.Request{Name: "x", Wait: true}); res != table.Queued {
		t.Fatalf("second waiter: %v, want Queued", res)
	}
	// A waiter that leaves during the hold-off grants nobody.
	hd, _, _ := tab.Acquire(d, table.Request{Name: "y", Wait: true})
	if _, res, _ := tab.Acquire(e, table.Request{Name: "y", Mode: table.Shared, Wait: true}); res != table.Queued {
		t.Fatalf("waiter on y: %v, want Queued", res)
	}
	if tab.Cancel(hd); len(grants) != 0 {
		t.Fatalf("granted during the hold-off: %v", grants)
	}
	if n := tab.Counters().Held; n != 0 {
		t.Fatalf("%d held during the hold-off", n)
	}

	tab.EndHoldOff()
	tab.EndHoldOff() // harmless
	mu.Lock()
	got := append([]string(nil), grants...)
	mu.Unlock()
	if len(got) != 2 || !slices.Contains(got, "b") || !slices.Contains(got, "e") || slices.Contains(got, "c") {
		t.Fatalf("granted at the end of the hold-off: %v, want b (head of x) and e (y)", got)
	}
	if tab.HoldingOff() {
		t.Fatal("HoldingOff() after EndHoldOff")
	}
	// From now on, as usual: c gets x when b releases; a new name at once.
	tab.Release(hb)
	mu.Lock()
	got = append([]string(nil), grants...)
	mu.Unlock()
	if got[len(got)-1] != "c" {
		t.Fatalf("after b released: grants %v, want c last", got)
	}
	if _, res, _ := tab.Acquire(a, table.Request{Name: "z"}); res != table.Granted {
		t.Fatalf("after the hold-off: %v, want Granted", res)
	}
}

// TestHoldOffRace: requests racing with EndHoldOff are all granted: none is
// left queued behind a hold-off that has ended.
func TestHoldOffRace(t *testing.T) {
	for range 50 {
		var wg sync.WaitGroup
		granted := make(chan string, 64)
		tab := lockd.New(lockd.Options{HoldOff: true})
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := lockd.NewOwner(table.Info{}, notifyFunc(func(h table.Holder) { granted <- h.Name() }))
				name := string(rune('a' + i))
				if _, res, _ := tab.Acquire(o, table.Request{Name: name, Wait: true}); res == table.Granted {
					granted <- name
				}
			}()
		}
		tab.EndHoldOff()
		wg.Wait()
		if n := len(granted); n != 32 {
			t.Fatalf("%d of 32 names granted after EndHoldOff", n)
		}
	}
}
