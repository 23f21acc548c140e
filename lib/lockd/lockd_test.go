package lockd_test

// What every table.Table promises is checked by the conformance suite
// (conformance_test.go). The tests here check only what is lockd's own: the
// queue bound, the token source, the clock, that idle names leave the shard
// maps, and the panic on a Holder of another implementation.

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

const (
	ex = table.Exclusive
	sh = table.Shared
)

// notifyFunc adapts a function to table.Notifier.
type notifyFunc func(h table.Holder)

func (f notifyFunc) Granted(h table.Holder) { f(h) }

// Lost: the tests that break locks use Notifiers of their own.
func (f notifyFunc) Lost(table.Holder, error) {}

func quiet(id string) table.Owner {
	return lockd.NewOwner(table.Info{ClientID: id}, notifyFunc(func(table.Holder) {}))
}

// checkEmpty checks that an emptied table has forgotten every name, in its
// shard maps too and not only in the counters the suite can see.
func checkEmpty(t testing.TB, tb *lockd.Table) {
	t.Helper()
	c := tb.Counters()
	if c.Held != 0 || c.Waiting != 0 || c.Names != 0 {
		t.Errorf("empty table: counters %+v", c)
	}
	if n := tb.Entries(); n != 0 {
		t.Errorf("empty table: %d names left in the map", n)
	}
}

// TestQueueFull: Options.MaxWaiters bounds the queue of each name. Only a
// request that would wait is refused with ErrQueueFull, after the limit
// check; a waiter that leaves (withdrawn, granted, released with its
// owner, broken) makes room; each refusal counts as not acquired.
func TestQueueFull(t *testing.T) {
	tb := lockd.New(lockd.Options{MaxWaiters: 2})
	acq := func(o table.Owner, name string, mode table.Mode, limit int, w bool, want table.Result, wantErr error) table.Holder {
		t.Helper()
		h, res, err := tb.Acquire(o, table.Request{Name: name, Mode: mode, Limit: limit, Wait: w})
		if res != want || !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			t.Fatalf("Acquire(%s, %s, wait %v) = %v, %v; want %v, %v", o.Info().ClientID, name, w, res, err, want, wantErr)
		}
		return h
	}
	a := acq(quiet("a"), "x", ex, 1, false, table.Granted, nil)
	b := acq(quiet("b"), "x", ex, 1, true, table.Queued, nil)
	c := acq(quiet("c"), "x", sh, 0, true, table.Queued, nil)
	acq(quiet("d"), "x", ex, 1, true, table.Refused, table.ErrQueueFull)
	acq(quiet("d"), "x", sh, 0, true, table.Refused, table.ErrQueueFull)
	acq(quiet("d"), "x", ex, 1, false, table.NotGranted, nil)                // not waiting: not refused
	acq(quiet("d"), "x", ex, 2, true, table.Refused, table.ErrLimitMismatch) // the limit first
	if c := tb.Counters(); c.NotAcquired != 4 || c.Waiting != 2 {
		t.Fatalf("Counters = %+v, want NotAcquired 4 (two of them queue full), Waiting 2", c)
	}
	// The bound is per name.
	y := acq(quiet("e"), "y", ex, 1, false, table.Granted, nil)
	acq(quiet("e2"), "y", ex, 1, true, table.Queued, nil)
	e3 := quiet("e3")
	acq(e3, "y", ex, 1, true, table.Queued, nil)
	acq(quiet("e4"), "y", ex, 1, true, table.Refused, table.ErrQueueFull)

	tb.Cancel(b) // withdrawn: room for one
	d := acq(quiet("d"), "x", ex, 1, true, table.Queued, nil)
	acq(quiet("f"), "x", ex, 1, true, table.Refused, table.ErrQueueFull)
	tb.Release(a) // c granted: room for one
	f := acq(quiet("f"), "x", ex, 1, true, table.Queued, nil)
	acq(quiet("g"), "x", ex, 1, true, table.Refused, table.ErrQueueFull)

	tb.ReleaseAll(e3) // a waiter of y goes with its owner: room for one
	acq(quiet("e5"), "y", ex, 1, true, table.Queued, nil)
	tb.Break("y") // e2 granted
	acq(quiet("e6"), "y", ex, 1, true, table.Queued, nil)
	acq(quiet("e7"), "y", ex, 1, true, table.Refused, table.ErrQueueFull)
	tb.Release(y) // broken already: harmless

	for _, h := range []table.Holder{c, d, f} {
		tb.Release(h)
	}
	for range 3 { // e2, e5, e6 in turn
		tb.Break("y")
	}
	checkEmpty(t, tb)

	// One waiter.
	tb = lockd.New(lockd.Options{MaxWaiters: 1})
	a = acq(quiet("a"), "x", ex, 1, false, table.Granted, nil)
	b = acq(quiet("b"), "x", ex, 1, true, table.Queued, nil)
	acq(quiet("c"), "x", ex, 1, true, table.Refused, table.ErrQueueFull)
	tb.Release(a)
	c = acq(quiet("c"), "x", ex, 1, true, table.Queued, nil)
	tb.Release(b)
	tb.Release(c)
	checkEmpty(t, tb)
}

// TestLimitBelowOne: the interface gives a meaning to limits 0 and 1 only;
// lockd takes any limit below 2 for a plain lock.
func TestLimitBelowOne(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	a, res, _ := tb.Acquire(quiet("a"), table.Request{Name: "x", Limit: -5})
	if res != table.Granted {
		t.Fatalf("limit -5: %v, want Granted", res)
	}
	if _, res, err := tb.Acquire(quiet("b"), table.Request{Name: "x", Limit: 1}); res != table.NotGranted || err != nil {
		t.Fatalf("limit 1 beside a holder of limit -5: %v, %v; want NotGranted", res, err)
	}
	if li := tb.Snapshot([]string{"x"}, 0); len(li) != 1 || li[0].Limit != 1 || li[0].Holders[0].Limit != 1 {
		t.Fatalf("listed as %+v, want limit 1", li)
	}
	tb.Release(a)
	checkEmpty(t, tb)
}

// TestIdleNamesForgotten: a name nobody holds or waits for leaves the shard
// maps, whatever its last request was (not granted, refused, withdrawn),
// so that a stream of one-off names cannot grow the table.
func TestIdleNamesForgotten(t *testing.T) {
	tb := lockd.New(lockd.Options{MaxWaiters: 1})
	o, p := quiet("o"), quiet("p")
	names := func() int64 { return tb.Counters().Names }

	h, _, _ := tb.Acquire(o, table.Request{Name: "a"})
	if names() != 1 {
		t.Fatalf("Names = %d with one held lock", names())
	}
	w, _, _ := tb.Acquire(p, table.Request{Name: "a", Wait: true})
	tb.Acquire(p, table.Request{Name: "a"})                       // not granted
	tb.Acquire(p, table.Request{Name: "a", Wait: true})           // queue full
	tb.Acquire(p, table.Request{Name: "a", Mode: ex, Limit: 2})   // mismatch
	tb.Acquire(p, table.Request{Name: "b", Mode: sh})             // granted
	tb.Acquire(p, table.Request{Name: "b", Mode: ex, Wait: true}) // queued
	tb.Acquire(p, table.Request{Name: "n", Mode: ex, Limit: 2})   // granted
	tb.Acquire(o, table.Request{Name: "z"})                       // granted
	tb.Acquire(o, table.Request{Name: "m"})                       // granted
	if names() != 5 || tb.Entries() != 5 {
		t.Fatalf("Names = %d, entries %d, want 5", names(), tb.Entries())
	}
	tb.Break("z")
	tb.Break("m")
	tb.Release(h) // grants w
	tb.Release(w)
	if names() != 2 || tb.Entries() != 2 {
		t.Fatalf("Names = %d, entries %d after releasing a and breaking z, m; want 2", names(), tb.Entries())
	}
	tb.ReleaseAll(p)
	checkEmpty(t, tb)
	// A name that was only ever waited for and withdrawn is gone as well.
	h, _, _ = tb.Acquire(o, table.Request{Name: "c"})
	w, _, _ = tb.Acquire(p, table.Request{Name: "c", Wait: true})
	tb.Release(w)
	tb.Release(h)
	checkEmpty(t, tb)
	// And a name whose only request was not granted never stays.
	tb.Acquire(o, table.Request{Name: "d", Limit: 3})
	tb.Acquire(p, table.Request{Name: "d", Limit: 2}) // mismatch
	tb.ReleaseAll(o)
	checkEmpty(t, tb)
}

// seqTokens is a TokenSource that counts in steps of ten.
type seqTokens struct{ n uint64 }

func (s *seqTokens) Next() (uint64, error) { s.n += 10; return s.n, nil }

// TestTokens: every grant, on any name, draws the next token of
// Options.Tokens, in the order of the grants; MemTokens, the default,
// counts from 1.
func TestTokens(t *testing.T) {
	src := &seqTokens{n: 1000}
	tb := lockd.New(lockd.Options{Tokens: src})
	var got []uint64
	o := lockd.NewOwner(table.Info{}, nil)
	lockd.SetNotifier(o, notifyFunc(func(h table.Holder) { got = append(got, h.Token()) }))
	acq := func(name string, mode table.Mode, w bool, want table.Result) table.Holder {
		t.Helper()
		h, res, err := tb.Acquire(o, table.Request{Name: name, Mode: mode, Wait: w})
		if res != want || err != nil {
			t.Fatalf("acquire %s: %v, %v; want %v", name, res, err, want)
		}
		if res == table.Granted {
			got = append(got, h.Token())
		}
		return h
	}
	a := acq("x", ex, false, table.Granted) // 1010
	b := acq("x", sh, true, table.Queued)
	c := acq("x", sh, true, table.Queued)
	acq("y", ex, false, table.Granted)      // 1020
	tb.Release(a)                           // b 1030, c 1040
	d := acq("x", sh, false, table.Granted) // 1050
	tb.Release(b)
	tb.Release(c)
	tb.Release(d)
	acq("x", ex, false, table.Granted) // 1060: the name was forgotten, the count was not
	want := []uint64{1010, 1020, 1030, 1040, 1050, 1060}
	if !slices.Equal(got, want) {
		t.Fatalf("tokens %v, want %v", got, want)
	}
	if li := tb.Snapshot([]string{"x"}, 0); len(li) != 1 || li[0].Token != 1060 {
		t.Fatalf("Snapshot token: %+v", li)
	}

	var m lockd.MemTokens
	for i := uint64(1); i <= 3; i++ {
		if v, err := m.Next(); v != i || err != nil {
			t.Fatalf("MemTokens.Next = %d, want %d", v, i)
		}
	}
}

// TestSince: Party.Since is read from Options.Now: a holder's is the time
// of its grant, a waiter's the time of its request until it is granted.
func TestSince(t *testing.T) {
	var clock int64
	tb := lockd.New(lockd.Options{Now: func() int64 { return clock }})
	at := func(ns int64) time.Time { return time.Unix(0, ns) }
	acq := func(o table.Owner, r table.Request, now int64) table.Holder {
		clock = now
		r.Name, r.Wait = "x", true
		h, _, _ := tb.Acquire(o, r)
		return h
	}
	since := func(ps []table.Party) []time.Time {
		var s []time.Time
		for _, p := range ps {
			s = append(s, p.Since)
		}
		return s
	}
	check := func(what string, holders, waiters []time.Time) {
		t.Helper()
		li := tb.Snapshot([]string{"x"}, 0)
		if len(li) != 1 || !reflect.DeepEqual(since(li[0].Holders), holders) || !reflect.DeepEqual(since(li[0].Waiters), waiters) {
			t.Fatalf("%s: %+v\nwant holders since %v, waiters since %v", what, li, holders, waiters)
		}
	}
	s1 := acq(quiet("s1"), table.Request{Mode: sh}, 1000)
	s2 := acq(quiet("s2"), table.Request{Mode: sh}, 2000)
	w1 := acq(quiet("w1"), table.Request{}, 4000)
	w2 := acq(quiet("w2"), table.Request{Mode: sh}, 5000)
	check("before any grant", []time.Time{at(1000), at(2000)}, []time.Time{at(4000), at(5000)})
	clock = 20000
	tb.Release(s1)
	tb.Release(s2) // w1 granted at 20000
	check("after w1's grant", []time.Time{at(20000)}, []time.Time{at(5000)})
	tb.Release(w1)
	tb.Release(w2)
	checkEmpty(t, tb)
}

// foreignHolder is a table.Holder that no lockd Table made.
type foreignHolder struct{ table.Holder }

// TestForeignHolder: a Holder of another implementation is a programming
// error, and the panic says so rather than corrupting the table.
func TestForeignHolder(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	for name, f := range map[string]func(){
		"Release": func() { tb.Release(&foreignHolder{}) },
		"Cancel":  func() { tb.Cancel(&foreignHolder{}) },
		"Held":    func() { tb.Held(&foreignHolder{}) },
	} {
		func() {
			defer func() {
				if r := recover(); r != "lockd: a table.Holder that this Table did not make" {
					t.Errorf("%s: recovered %v", name, r)
				}
			}()
			f()
		}()
	}
}
