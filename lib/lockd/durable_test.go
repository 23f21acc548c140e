package lockd

import (
	"errors"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

type chanNotifier chan table.Holder

func (c chanNotifier) Granted(h table.Holder)   { c <- h }
func (c chanNotifier) Lost(table.Holder, error) {}

// TestTableNotDurable: a table over FileTokens whose disk refuses writes
// grants with the tokens up to the durable ceiling, then refuses new
// requests with ErrNotDurable and leaves the head of a queue waiting, not
// granted; when the disk takes writes again, the stuck waiter is granted by
// itself, with a token above every earlier one.
func TestTableNotDurable(t *testing.T) {
	f, d := openFake(t, 4) // durable ceiling 4
	tb := New(Options{Tokens: f})
	notes := make(chanNotifier, 10)
	owner := func(id string) table.Owner { return NewOwner(table.Info{ClientID: id}, notes) }
	acquire := func(o table.Owner, name string, mode table.Mode, wait bool, want table.Result) table.Holder {
		t.Helper()
		h, res, err := tb.Acquire(o, table.Request{Name: name, Mode: mode, Wait: wait})
		if res != want || (err != nil) != (want == table.Refused) {
			t.Fatalf("%s: acquire %s: %v, %v; want %v", o.Info().ClientID, name, res, err, want)
		}
		return h
	}
	h1 := acquire(owner("o1"), "x", table.Exclusive, false, table.Granted)
	h2 := acquire(owner("o2"), "x", table.Shared, true, table.Queued)
	h3 := acquire(owner("o3"), "x", table.Shared, true, table.Queued)

	full := errors.New("write /state/fence.tmp: no space left on device")
	d.setFail(full)
	if h := acquire(owner("o4"), "y", table.Exclusive, false, table.Granted); h.Token() != 2 {
		t.Fatalf("y: token %d, want 2", h.Token())
	}
	if h := acquire(owner("o5"), "z", table.Exclusive, false, table.Granted); h.Token() != 3 {
		t.Fatalf("z: token %d, want 3", h.Token()) // starts the write, which fails
	}
	// o2 gets the last durable token; o3, compatible, stays queued.
	tb.Release(h1)
	if g := <-notes; g != h2 || g.Token() != 4 {
		t.Fatalf("granted %s token %d, want o2 with 4", g.Owner().Info().ClientID, g.Token())
	}
	if tb.Held(h3) {
		t.Fatalf("o3 granted token %d above the durable ceiling", h3.Token())
	}
	if li := tb.Snapshot([]string{"x"}, 0); len(li) != 1 || len(li[0].Waiters) != 1 || li[0].Waiters[0].ClientID != "o3" {
		t.Fatalf("snapshot of x: %+v, want o3 waiting", li)
	}
	before := tb.Counters()
	for _, name := range []string{"w", "x", "v"} {
		mode := table.Exclusive
		if name == "x" {
			mode = table.Shared // would be compatible, but queued behind o3
		}
		wait := name != "v"
		res := table.Refused
		if name == "x" {
			res = table.Queued
		}
		h, got, err := tb.Acquire(owner("o6"), table.Request{Name: name, Mode: mode, Wait: wait})
		if got != res {
			t.Fatalf("acquire %s while not durable: %v, %v; want %v", name, got, err, res)
		}
		if res == table.Refused {
			if !errors.Is(err, ErrNotDurable) || !errors.Is(err, full) || h != nil {
				t.Fatalf("acquire %s: error %v, want ErrNotDurable wrapping the cause", name, err)
			}
			if err.Error() != "fencing state not durable: write /state/fence.tmp: no space left on device" {
				t.Fatalf("acquire %s: error %q", name, err)
			}
		} else {
			tb.Release(h)
		}
	}
	if got := tb.Counters(); got.NotAcquired != before.NotAcquired+2 || got.Held != 3 || got.Waiting != 1 || got.Names != 3 {
		t.Fatalf("counters %+v (before %+v)", got, before)
	}
	if tb.Entries() != 3 {
		t.Fatalf("%d names in the table, want 3: a refused request leaves no entry", tb.Entries())
	}
	// In the words of the refusals it causes, which the server answers.
	if err := tb.Degraded(); err == nil || err.Error() != "fencing state not durable: "+full.Error() ||
		!errors.Is(err, full) || !errors.Is(err, ErrNotDurable) || !errors.Is(err, table.ErrUnavailable) {
		t.Fatalf("Degraded() = %v, want ErrNotDurable (table.ErrUnavailable) wrapping %v", err, full)
	}
	select {
	case g := <-notes:
		t.Fatalf("%s granted token %d while not durable", g.Owner().Info().ClientID, g.Token())
	default:
	}

	d.setFail(nil) // the writer's next retry succeeds
	select {
	case g := <-notes:
		if g != h3 || g.Token() != 5 || !tb.Held(h3) {
			t.Fatalf("after recovery: %s granted token %d, want o3 with 5", g.Owner().Info().ClientID, g.Token())
		}
	case <-time.After(10 * time.Second): // a failure detector, not a wait
		t.Fatal("the stuck waiter was not granted after the disk recovered")
	}
	if err := tb.Degraded(); err != nil {
		t.Fatalf("Degraded() = %v after recovery", err)
	}
	if h := acquire(owner("o7"), "w", table.Exclusive, false, table.Granted); h.Token() != 6 {
		t.Fatalf("after recovery: token %d, want 6", h.Token())
	}
}
