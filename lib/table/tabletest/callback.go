package tabletest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// errList collects the failures found inside Notifier calls, which may
// outlive a test that already failed on its deadline: they are reported by
// the test's goroutine, if it is still there.
type errList struct {
	mu   sync.Mutex
	errs []string
}

func (l *errList) add(format string, args ...any) {
	l.mu.Lock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *errList) report(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		t.Error(e)
	}
	l.errs = nil
}

// callBack uses tb from inside a Notifier call about h of owner o: from
// the calling goroutine, which deadlocks if the table kept a mutex of its
// own locked around the call, and from another goroutine, which also
// blocks on one that the calling goroutine may take again (a read lock).
// Both change the table, on a name of their own.
func callBack(tb table.Table, o, other table.Owner, h table.Holder, held bool, errs *errList, tag, what string) {
	if got := tb.Held(h); got != held {
		errs.add("%s: Held = %v inside the Notifier, want %v", what, got, held)
	}
	if got := tb.Find(o, h.Name()); (got == h) != held {
		errs.add("%s: Find of the told holder inside the Notifier = %v, want it %v", what, got != nil, held)
	}
	var li table.LockInfo
	tb.List(h.Name(), table.Cursor{}, 10, &li)
	tb.FirstNames(nil, 10)
	tb.Counters()
	useOtherName := func(o table.Owner, name string) {
		g, res, err := tb.Acquire(o, table.Request{Name: name})
		if res != table.Granted {
			errs.add("%s: Acquire of a free name inside the Notifier = %v, %v", what, resultName(res), err)
			return
		}
		if !tb.Release(g) {
			errs.add("%s: Release inside the Notifier = false", what)
		}
	}
	useOtherName(o, "callback-"+tag)
	done := make(chan struct{})
	go func() {
		defer close(done)
		useOtherName(other, "other-"+tag)
		tb.FirstNames(nil, 10)
		tb.List(h.Name(), table.Cursor{}, 10, &li)
	}()
	select {
	case <-done:
	case <-time.After(deadline):
		errs.add("%s: another goroutine's calls did not finish within %v while the Notifier ran: the table is locked around the Notifier call", what, deadline)
	}
}

// callbackOwner makes an owner whose Notifier calls back into tb, and
// closes the returned channel after its first call.
func callbackOwner(t *testing.T, tb table.Table, rec *recorder, id string, other table.Owner, errs *errList) (table.Owner, chan struct{}) {
	o, n := newOwner(t, tb, rec, table.Info{ClientID: id})
	called := make(chan struct{})
	var once sync.Once
	n.onGranted = func(h table.Holder) {
		if h.Token() == 0 {
			errs.add("%s: Granted with token 0", id)
		}
		callBack(tb, o, other, h, true, errs, id+"-granted", id+"'s Granted")
		once.Do(func() { close(called) })
	}
	n.onLost = func(h table.Holder, why error) {
		if !errors.Is(why, table.ErrBroken) {
			errs.add("%s: Lost with %v, want ErrBroken", id, why)
		}
		callBack(tb, o, other, h, false, errs, id+"-lost", id+"'s Lost")
		if tb.Release(h) {
			errs.add("%s: Release inside Lost = true, want false: h is gone when Lost is called", id)
		}
		once.Do(func() { close(called) })
	}
	return o, called
}

// testGrantedCallsBack makes a grant by each of Release, Cancel,
// ReleaseAll and Break to an owner whose Notifier calls back into the
// table. The operation runs on a goroutine of its own, so that a deadlock
// fails the test at the deadline.
func testGrantedCallsBack(t *testing.T, tb table.Table) {
	rec := newRecorder()
	errs := &errList{}
	other, _ := newOwner(t, tb, rec, table.Info{ClientID: "other"})
	for _, c := range []struct {
		op   string
		sync bool // the grant is told before the operation returns
	}{{"Release", true}, {"Cancel", false}, {"ReleaseAll", false}, {"Break", false}} {
		name := "x-" + c.op
		a, _ := newOwner(t, tb, rec, table.Info{ClientID: "a-" + c.op})
		ah := acquire(t, tb, a, table.Request{Name: name, Mode: sh}, table.Granted)
		var bh table.Holder
		if c.op == "Cancel" {
			b, _ := newOwner(t, tb, rec, table.Info{ClientID: "b-" + c.op})
			bh = acquire(t, tb, b, table.Request{Name: name, Wait: true}, table.Queued)
		}
		w, called := callbackOwner(t, tb, rec, "w-"+c.op, other, errs)
		mode := ex
		if c.op == "Cancel" {
			mode = sh // let in beside a when b, ahead of it, withdraws
		}
		wh := acquire(t, tb, w, table.Request{Name: name, Mode: mode, Wait: true}, table.Queued)
		done := make(chan struct{})
		go func() {
			defer close(done)
			switch c.op {
			case "Release":
				tb.Release(ah)
			case "Cancel":
				tb.Cancel(bh)
			case "ReleaseAll":
				tb.ReleaseAll(a)
			case "Break":
				tb.Break(name)
			}
		}()
		within(t, done, c.op+" granting to a Notifier that calls back into the table")
		if c.sync {
			select {
			case <-called:
			default:
				t.Fatalf("%s returned before its grant was told", c.op)
			}
		}
		within(t, called, c.op+"'s grant to a Notifier that calls back into the table")
		errs.report(t)
		if !tb.Held(wh) {
			t.Fatalf("%s: the waiter told of its grant is not held", c.op)
		}
		rec.take()
		tb.ReleaseAll(w)
		tb.ReleaseAll(a)
		if bh != nil {
			tb.ReleaseAll(bh.Owner())
		}
	}
	errs.report(t)
	checkEmpty(t, tb)
}

// testLostCallsBack breaks a lock whose holder's Notifier calls back into
// the table, from a goroutine of its own so that a deadlock fails the test
// at the deadline.
func testLostCallsBack(t *testing.T, tb table.Table) {
	rec := newRecorder()
	errs := &errList{}
	other, _ := newOwner(t, tb, rec, table.Info{ClientID: "other"})
	h, lost := callbackOwner(t, tb, rec, "h", other, errs)
	hh := acquire(t, tb, h, table.Request{Name: "x"}, table.Granted)
	w, granted := callbackOwner(t, tb, rec, "w", other, errs)
	wh := acquire(t, tb, w, table.Request{Name: "x", Wait: true}, table.Queued)
	done := make(chan struct{})
	var n int
	go func() {
		defer close(done)
		n = tb.Break("x")
	}()
	within(t, done, "Break of a holder whose Notifier calls back into the table")
	within(t, lost, "Lost of a holder whose Notifier calls back into the table")
	within(t, granted, "Granted of a waiter whose Notifier calls back into the table")
	errs.report(t)
	if n != 1 {
		t.Fatalf("Break = %d, want 1", n)
	}
	if tb.Held(hh) || !tb.Held(wh) {
		t.Fatalf("after Break: the broken holder held %v, the waiter %v; want false, true", tb.Held(hh), tb.Held(wh))
	}
	tb.Release(wh)
	checkEmpty(t, tb)
}

// testBreakConcurrent breaks an owner's lock from an operator's goroutine
// while the owner's own goroutine keeps acquiring and releasing other
// names, as a session does; the race detector checks that the table
// synchronises the two. The owner hears of the break through Lost.
func testBreakConcurrent(t *testing.T, tb table.Table) {
	lostCh := make(chan table.Holder, 1)
	rec := newRecorder()
	o, n := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	n.onLost = func(h table.Holder, why error) { lostCh <- h }
	const rounds = 100
	held := make(chan table.Holder)
	done := make(chan struct{})
	errs := &errList{}
	go func() { // the operator
		defer close(done)
		for range rounds {
			select {
			case <-held:
			case <-time.After(deadline):
				return
			}
			if n := tb.Break("x"); n != 1 {
				errs.add("Break = %d, want 1", n)
				return
			}
		}
	}()
	for i := range rounds {
		h := acquire(t, tb, o, table.Request{Name: "x"}, table.Granted)
		held <- h
		for j := range 10 {
			g := acquire(t, tb, o, table.Request{Name: fmt.Sprint("y", j)}, table.Granted)
			tb.Release(g)
		}
		var got table.Holder
		select {
		case got = <-lostCh:
		case <-time.After(deadline):
			errs.report(t)
			t.Fatalf("round %d: the owner was not told of the break within %v", i, deadline)
		}
		if got != h {
			t.Fatalf("round %d: Lost of another holder", i)
		}
		if tb.Held(h) || tb.Release(h) {
			t.Fatalf("round %d: broken holder still held", i)
		}
		if c := o.Count(); c != 0 {
			t.Fatalf("round %d: Count = %d after releasing everything", i, c)
		}
		rec.take()
	}
	within(t, done, "the operator's goroutine")
	errs.report(t)
	checkEmpty(t, tb)
}

// testOwnerConcurrent uses one owner from many goroutines at once, as a
// session's requests and its wait timers do: each goroutine on names of its
// own, holding one and waiting behind it for the same name, so the
// owner's list of holders changes under all of them.
func testOwnerConcurrent(t *testing.T, tb table.Table) {
	rec := newRecorder()
	o, _ := newOwner(t, tb, rec, table.Info{ClientID: "o"})
	const goroutines, rounds = 8, 200
	errs := &errList{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				name := fmt.Sprintf("g%d-%d", g, i%4)
				h, res, err := tb.Acquire(o, table.Request{Name: name})
				if res != table.Granted {
					errs.add("%s: Acquire = %v, %v; want Granted", name, resultName(res), err)
					return
				}
				w, res, err := tb.Acquire(o, table.Request{Name: name, Wait: true})
				if res != table.Queued {
					errs.add("%s: Acquire behind the owner's own holder = %v, %v; want Queued", name, resultName(res), err)
					return
				}
				if !tb.Release(h) || !tb.Held(w) || !tb.Release(w) {
					errs.add("%s: Release, Held, Release of the holder and the waiter it let in: not all true", name)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	withinFor(t, done, 6*deadline, "the goroutines sharing one owner")
	errs.report(t)
	if n := o.Count(); n != 0 {
		t.Fatalf("Count = %d after every goroutine released everything", n)
	}
	if evs := rec.take(); len(evs) != goroutines*rounds {
		t.Fatalf("told %d events, want %d grants", len(evs), goroutines*rounds)
	}
	if c := tb.Counters(); c.Acquired != 2*goroutines*rounds {
		t.Fatalf("Counters = %+v, want Acquired %d", c, 2*goroutines*rounds)
	}
	checkEmpty(t, tb)
}
