package lockd_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

const (
	ex   = table.Exclusive
	sh   = table.Shared
	wait = true
	try  = false
)

// notifyFunc adapts a function to table.Notifier.
type notifyFunc func(h table.Holder)

func (f notifyFunc) Granted(h table.Holder) { f(h) }

// Lost: the tests that break locks use Notifiers of their own.
func (f notifyFunc) Lost(table.Holder, error) {}

// step is one line of a script: an Acquire, a Release, a ReleaseAll or a
// look at one name's holders and waiters.
type step struct {
	op    string // "acq", "rel", "cancel", "break", "relall", "state"
	id    string // acq, rel: holder label; relall: owner label
	owner string // acq: owner label (default: id); it is also the ClientID
	name  string // acq, state: lock name (default "x")
	mode  table.Mode
	limit int
	wait  bool

	want table.Result // acq
	err  error        // acq
	held bool         // rel: want wasHeld; cancel: want withdrawn
	n    int          // break: want the number of holders broken

	// broken are the holder labels told by Lost during this step.
	broken string

	// grants are the holder labels notified during this step, in order.
	grants string
	// state: owner labels of the holders (oldest first) and of the waiters
	// (queue order), space separated.
	holders, waiters string
}

func acq(id string, mode table.Mode, limit int, w bool, want table.Result) step {
	return step{op: "acq", id: id, mode: mode, limit: limit, wait: w, want: want}
}

func excl(id string, w bool, want table.Result) step { return acq(id, ex, 1, w, want) }
func shrd(id string, w bool, want table.Result) step { return acq(id, sh, 0, w, want) }
func sem(id string, n int, w bool, want table.Result) step {
	return acq(id, ex, n, w, want)
}

func refused(s step, err error) step { s.want, s.err = table.Refused, err; return s }

func rel(id string, wasHeld bool, grants ...string) step {
	return step{op: "rel", id: id, held: wasHeld, grants: strings.Join(grants, " ")}
}

func cancel(id string, withdrawn bool, grants ...string) step {
	return step{op: "cancel", id: id, held: withdrawn, grants: strings.Join(grants, " ")}
}

func brk(n int, broken string, grants ...string) step {
	return step{op: "break", n: n, broken: broken, grants: strings.Join(grants, " ")}
}

func state(holders, waiters string) step {
	return step{op: "state", holders: holders, waiters: waiters}
}

func (s step) on(name string) step { s.name = name; return s }
func (s step) by(owner string) step {
	s.owner = owner
	return s
}

// scriptRun runs steps against one table and remembers every grant.
type scriptRun struct {
	t         *testing.T
	tb        *lockd.Table
	owners    map[string]table.Owner
	holders   map[string]table.Holder
	labels    map[table.Holder]string
	notified  []string
	broken    []string
	lastToken uint64
}

// scriptNotifier is an owner's Notifier in a script.
type scriptNotifier struct {
	r     *scriptRun
	o     table.Owner
	label string
}

func (n *scriptNotifier) Granted(h table.Holder) {
	r := n.r
	if h.Owner() != n.o {
		r.t.Errorf("owner %s notified of a holder of %s", n.label, h.Owner().Info().ClientID)
	}
	r.granted(h)
	r.notified = append(r.notified, r.labels[h])
}

func (n *scriptNotifier) Lost(h table.Holder, why error) {
	if h.Owner() != n.o {
		n.r.t.Errorf("owner %s told of a broken holder of %s", n.label, h.Owner().Info().ClientID)
	}
	if why != table.ErrBroken {
		n.r.t.Errorf("owner %s told of a loss by %v, want table.ErrBroken", n.label, why)
	}
	n.r.broken = append(n.r.broken, n.r.labels[h])
}

func newScriptRun(t *testing.T, o lockd.Options) *scriptRun {
	return &scriptRun{
		t:       t,
		tb:      lockd.New(o),
		owners:  map[string]table.Owner{},
		holders: map[string]table.Holder{},
		labels:  map[table.Holder]string{},
	}
}

func (r *scriptRun) owner(label string) table.Owner {
	o := r.owners[label]
	if o == nil {
		o = lockd.NewOwner(table.Info{ClientID: label}, nil)
		lockd.SetNotifier(o, &scriptNotifier{r: r, o: o, label: label})
		r.owners[label] = o
	}
	return o
}

// granted checks the token of a fresh grant: larger than every earlier one.
func (r *scriptRun) granted(h table.Holder) {
	r.t.Helper()
	if h.Token() <= r.lastToken {
		r.t.Errorf("grant of %s: token %d not above the previous %d", r.labels[h], h.Token(), r.lastToken)
	}
	r.lastToken = h.Token()
}

func (r *scriptRun) run(steps []step) {
	t := r.t
	t.Helper()
	for i, s := range steps {
		if s.name == "" {
			s.name = "x"
		}
		if s.owner == "" {
			s.owner = s.id
		}
		r.notified, r.broken = r.notified[:0], r.broken[:0]
		switch s.op {
		case "acq":
			h, res, err := r.tb.Acquire(r.owner(s.owner), table.Request{Name: s.name, Mode: s.mode, Limit: s.limit, Wait: s.wait})
			if res != s.want || !errors.Is(err, s.err) || (err == nil) != (s.err == nil) {
				t.Fatalf("step %d: acquire %s: got %v, %v; want %v, %v", i, s.id, res, err, s.want, s.err)
			}
			if (h == nil) != (res == table.NotGranted || res == table.Refused) {
				t.Fatalf("step %d: acquire %s: result %v with holder %p", i, s.id, res, h)
			}
			if h != nil {
				r.holders[s.id] = h
				r.labels[h] = s.id
				if h.Name() != s.name || h.Mode() != s.mode || h.Owner() != r.owners[s.owner] {
					t.Fatalf("step %d: holder %s is %q %v of %s", i, s.id, h.Name(), h.Mode(), h.Owner().Info().ClientID)
				}
				if res == table.Granted {
					r.granted(h)
				} else if h.Token() != 0 {
					t.Fatalf("step %d: waiting %s has token %d", i, s.id, h.Token())
				}
				if got := r.tb.Held(h); got != (res == table.Granted) {
					t.Fatalf("step %d: Held(%s) = %v after %v", i, s.id, got, res)
				}
			}
		case "rel":
			h := r.holders[s.id]
			if h == nil {
				t.Fatalf("step %d: no holder %s", i, s.id)
			}
			if got := r.tb.Release(h); got != s.held {
				t.Fatalf("step %d: Release(%s) = %v, want %v", i, s.id, got, s.held)
			}
			if r.tb.Held(h) {
				t.Fatalf("step %d: %s still held after Release", i, s.id)
			}
		case "cancel":
			h := r.holders[s.id]
			if got := r.tb.Cancel(h); got != s.held {
				t.Fatalf("step %d: Cancel(%s) = %v, want %v", i, s.id, got, s.held)
			}
		case "break":
			if got := r.tb.Break(s.name); got != s.n {
				t.Fatalf("step %d: Break(%q) = %d, want %d", i, s.name, got, s.n)
			}
		case "relall":
			r.tb.ReleaseAll(r.owner(s.id))
		case "state":
			var li table.LockInfo
			if infos := r.tb.Snapshot([]string{s.name}, 0); len(infos) == 1 {
				li = infos[0]
			} else if len(infos) > 1 {
				t.Fatalf("step %d: Snapshot(%q) returned %d names", i, s.name, len(infos))
			}
			if got := partyIDs(li.Holders); got != s.holders {
				t.Fatalf("step %d: holders of %s: %q, want %q", i, s.name, got, s.holders)
			}
			if got := partyIDs(li.Waiters); got != s.waiters {
				t.Fatalf("step %d: waiters of %s: %q, want %q", i, s.name, got, s.waiters)
			}
		default:
			t.Fatalf("step %d: unknown op %q", i, s.op)
		}
		if got := strings.Join(r.notified, " "); got != s.grants {
			t.Fatalf("step %d (%s %s): granted %q, want %q", i, s.op, s.id, got, s.grants)
		}
		if got := strings.Join(r.broken, " "); got != s.broken {
			t.Fatalf("step %d (%s %s): broken %q, want %q", i, s.op, s.id, got, s.broken)
		}
	}
}

// finish releases everything and checks that the table is empty again.
func (r *scriptRun) finish() {
	r.t.Helper()
	for _, o := range r.owners {
		r.tb.ReleaseAll(o)
		if o.Count() != 0 {
			r.t.Errorf("owner %s: Count %d after ReleaseAll", o.Info().ClientID, o.Count())
		}
	}
	checkEmpty(r.t, r.tb)
}

func checkEmpty(t testing.TB, tb *lockd.Table) {
	t.Helper()
	c := tb.Counters()
	if c.Held != 0 || c.Waiting != 0 || c.Names != 0 {
		t.Errorf("empty table: counters %+v", c)
	}
	if n := tb.Entries(); n != 0 {
		t.Errorf("empty table: %d names left in the map", n)
	}
	if s := tb.Snapshot(nil, 0); len(s) != 0 {
		t.Errorf("empty table: Snapshot %+v", s)
	}
}

func partyIDs(ps []table.Party) string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ClientID
	}
	return strings.Join(ids, " ")
}

func TestScripts(t *testing.T) {
	tests := []struct {
		name  string
		opts  lockd.Options
		steps []step
	}{
		{"exclusive", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("b", try, table.NotGranted),
			excl("b", wait, table.Queued),
			excl("c", wait, table.Queued),
			state("a", "b c"),
			rel("a", true, "b"),
			state("b", "c"),
			rel("b", true, "c"),
			rel("c", true),
			state("", ""),
		}},
		{"exclusive: a second request of the holder's own owner is not re-entrant", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("a2", try, table.NotGranted).by("a"),
			excl("a2", wait, table.Queued).by("a"),
			rel("a", true, "a2"),
		}},
		{"exclusive: names are independent", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("b", try, table.Granted).on("y"),
			shrd("c", try, table.Granted).on("z"),
			excl("d", try, table.NotGranted).on("y"),
		}},
		{"shared", lockd.Options{}, []step{
			shrd("a", try, table.Granted),
			shrd("b", try, table.Granted),
			shrd("c", wait, table.Granted),
			excl("d", wait, table.Queued),
			state("a b c", "d"),
			rel("a", true),
			rel("c", true),
			rel("b", true, "d"),
			state("d", ""),
		}},
		{"semaphore", lockd.Options{}, []step{
			sem("a", 3, try, table.Granted),
			sem("b", 3, try, table.Granted),
			sem("c", 3, wait, table.Granted),
			sem("d", 3, try, table.NotGranted),
			sem("d", 3, wait, table.Queued),
			sem("e", 3, wait, table.Queued),
			state("a b c", "d e"),
			rel("b", true, "d"),
			state("a c d", "e"),
			rel("d", true, "e"),
			rel("a", true),
			sem("f", 3, try, table.Granted),
			sem("g", 3, try, table.NotGranted),
		}},
		{"semaphore: limit 0 and 1 both mean a plain lock", lockd.Options{}, []step{
			sem("a", 0, try, table.Granted),
			sem("b", 1, try, table.NotGranted),
			sem("b", 1, wait, table.Queued),
			sem("c", -5, wait, table.Queued),
			rel("a", true, "b"),
		}},
		{"modes never mix", lockd.Options{}, []step{
			shrd("a", try, table.Granted),
			excl("b", try, table.NotGranted),
			sem("b", 3, try, table.NotGranted),
			rel("a", true),
			excl("c", try, table.Granted),
			shrd("d", try, table.NotGranted),
			rel("c", true),
			sem("e", 3, try, table.Granted),
			shrd("f", try, table.NotGranted), // 1 of 3 taken, still no mixing
			sem("g", 3, try, table.Granted),
		}},
		{"limit mismatch with a holder", lockd.Options{}, []step{
			sem("a", 3, try, table.Granted),
			refused(sem("b", 2, try, 0), table.ErrLimitMismatch),
			refused(sem("b", 2, wait, 0), table.ErrLimitMismatch),
			refused(excl("c", wait, 0), table.ErrLimitMismatch),
			acq("d", sh, 7, try, table.NotGranted), // a shared request has no limit
			sem("e", 3, try, table.Granted),
			state("a e", ""),
		}},
		{"limit mismatch between waiters", lockd.Options{}, []step{
			shrd("a", try, table.Granted),
			sem("b", 2, wait, table.Queued),
			refused(sem("c", 3, wait, 0), table.ErrLimitMismatch),
			refused(sem("c", 3, try, 0), table.ErrLimitMismatch),
			sem("c", 2, wait, table.Queued),
			rel("b", false),
			refused(sem("d", 3, wait, 0), table.ErrLimitMismatch),
			rel("c", false),
			// no exclusive request left: a new size may be agreed
			sem("d", 3, wait, table.Queued),
			rel("a", true, "d"),
		}},
		{"limit forgotten when the last exclusive holder leaves", lockd.Options{}, []step{
			sem("a", 3, try, table.Granted),
			rel("a", true),
			sem("b", 2, try, table.Granted),
			sem("c", 2, try, table.Granted),
			sem("d", 2, try, table.NotGranted),
		}},
		{"limit forgotten while shared holders keep the name", lockd.Options{}, []step{
			sem("a", 3, try, table.Granted),
			shrd("b", wait, table.Queued),
			rel("a", true, "b"),
			sem("c", 2, wait, table.Queued),
			sem("d", 2, wait, table.Queued),
			rel("b", true, "c", "d"),
		}},
		{"queue full", lockd.Options{MaxWaiters: 2}, []step{
			excl("a", try, table.Granted),
			excl("b", wait, table.Queued),
			shrd("c", wait, table.Queued),
			refused(excl("d", wait, 0), table.ErrQueueFull),
			refused(shrd("d", wait, 0), table.ErrQueueFull),
			excl("d", try, table.NotGranted), // not waiting: not refused
			refused(sem("d", 2, wait, 0), table.ErrLimitMismatch),
			excl("e", try, table.Granted).on("y"), // the bound is per name
			excl("e2", wait, table.Queued).on("y"),
			excl("e3", wait, table.Queued).on("y"),
			rel("b", false),
			excl("d", wait, table.Queued),
			rel("a", true, "c"),
			state("c", "d"),
			excl("f", wait, table.Queued),
			refused(excl("g", wait, 0), table.ErrQueueFull),
		}},
		{"queue full: one waiter", lockd.Options{MaxWaiters: 1}, []step{
			excl("a", try, table.Granted),
			excl("b", wait, table.Queued),
			refused(excl("c", wait, 0), table.ErrQueueFull),
			rel("a", true, "b"),
			excl("c", wait, table.Queued),
		}},
		{"not granted without wait while others queue", lockd.Options{}, []step{
			shrd("a", try, table.Granted),
			excl("b", wait, table.Queued),
			shrd("c", try, table.NotGranted), // compatible with a, but b came first
			state("a", "b"),
		}},
		{"a shared request behind a waiting exclusive one waits", lockd.Options{}, []step{
			shrd("a", try, table.Granted),
			excl("b", wait, table.Queued),
			shrd("c", wait, table.Queued),
			state("a", "b c"),
			rel("a", true, "b"),
			rel("b", true, "c"),
		}},
		{"grants stop at the first incompatible waiter", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			shrd("b", wait, table.Queued),
			shrd("c", wait, table.Queued),
			excl("d", wait, table.Queued),
			shrd("e", wait, table.Queued),
			rel("a", true, "b", "c"),
			state("b c", "d e"),
			rel("c", true),
			rel("b", true, "d"),
			rel("d", true, "e"),
		}},
		{"semaphore waiters are granted in order up to N", lockd.Options{}, []step{
			shrd("a", try, table.Granted),
			sem("b", 2, wait, table.Queued),
			sem("c", 2, wait, table.Queued),
			sem("d", 2, wait, table.Queued),
			shrd("e", wait, table.Queued),
			rel("a", true, "b", "c"),
			rel("c", true, "d"),
			rel("b", true),
			rel("d", true, "e"),
		}},
		{"a big semaphore request never starves", lockd.Options{}, []step{
			sem("a", 2, try, table.Granted),
			shrd("b", wait, table.Queued),
			sem("c", 2, wait, table.Queued), // fits beside a, but b came first
			rel("b", false, "c"),
		}},
		{"cancel of the waiting head lets the next compatible ones through", lockd.Options{}, []step{
			shrd("a", try, table.Granted),
			excl("b", wait, table.Queued),
			shrd("c", wait, table.Queued),
			shrd("d", wait, table.Queued),
			excl("e", wait, table.Queued),
			shrd("f", wait, table.Queued),
			rel("b", false, "c", "d"),
			state("a c d", "e f"),
		}},
		{"cancel of a head that the next one could not pass either", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("b", wait, table.Queued),
			excl("c", wait, table.Queued),
			rel("b", false),
			state("a", "c"),
			rel("a", true, "c"),
		}},
		{"cancel in the middle of the queue", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("b", wait, table.Queued),
			shrd("c", wait, table.Queued),
			excl("d", wait, table.Queued),
			rel("c", false),
			rel("d", false),
			state("a", "b"),
			excl("e", wait, table.Queued),
			rel("a", true, "b"),
			rel("b", true, "e"),
		}},
		{"cancel of the tail, then more waiters", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("b", wait, table.Queued),
			excl("c", wait, table.Queued),
			rel("c", false),
			excl("d", wait, table.Queued),
			state("a", "b d"),
			rel("a", true, "b"),
			rel("b", true, "d"),
		}},
		{"release return values and double release", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("b", wait, table.Queued),
			rel("b", false), // withdrawn
			rel("b", false), // again: harmless
			state("a", ""),
			rel("a", true),
			rel("a", false),
			excl("c", try, table.Granted),
			rel("a", false), // must not release c
			rel("b", false),
			state("c", ""),
			excl("d", wait, table.Queued),
			rel("c", true, "d"),
			rel("c", false),
			state("d", ""),
		}},
		{"release of a waiter granted in the meantime reports held", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("b", wait, table.Queued),
			rel("a", true, "b"),
			rel("b", true),
		}},
		{"stale holder of a forgotten name", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			rel("a", true), // the name is forgotten here
			excl("b", try, table.Granted),
			rel("a", false),
			excl("c", try, table.NotGranted),
			state("b", ""),
		}},
		{"cancel", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("b", wait, table.Queued),
			shrd("c", wait, table.Queued),
			cancel("b", true), // c is still behind a
			cancel("b", false),
			rel("b", false),
			cancel("a", false), // held: Cancel leaves it alone
			state("a", "c"),
			rel("a", true, "c"),
			cancel("c", false), // granted meanwhile: still held
			state("c", ""),
		}},
		{"Cancel of the waiting head lets the next compatible ones through", lockd.Options{}, []step{
			shrd("a", try, table.Granted),
			excl("b", wait, table.Queued),
			shrd("c", wait, table.Queued),
			excl("d", wait, table.Queued),
			cancel("b", true, "c"),
			state("a c", "d"),
		}},
		{"break", lockd.Options{}, []step{
			excl("a", try, table.Granted),
			excl("b", wait, table.Queued),
			shrd("c", wait, table.Queued),
			excl("d", wait, table.Queued),
			brk(1, "a", "b"),
			state("b", "c d"),
			rel("a", false), // broken: already gone
			brk(1, "b", "c"),
			state("c", "d"),
			rel("c", true, "d"),
			state("d", ""),
			excl("e", try, table.NotGranted),
			rel("d", true),
			brk(0, ""),
		}},
		{"break shared holders", lockd.Options{}, []step{
			shrd("a", try, table.Granted),
			shrd("b", try, table.Granted),
			shrd("c", try, table.Granted),
			sem("d", 2, wait, table.Queued),
			sem("e", 2, wait, table.Queued),
			sem("f", 2, wait, table.Queued),
			brk(3, "a b c", "d", "e"),
			state("d e", "f"),
			rel("e", true, "f"),
			state("d f", ""),
			refused(sem("g", 3, try, 0), table.ErrLimitMismatch),
		}},
		{"break of a name nobody holds", lockd.Options{}, []step{
			brk(0, "").on("nope"),
			state("", "").on("nope"),
		}},
		{"break forgets the name", lockd.Options{}, []step{
			sem("a", 3, try, table.Granted),
			brk(1, "a"),
			state("", ""),
			sem("b", 2, try, table.Granted), // the old size is gone too
		}},
		{"release-all", lockd.Options{}, []step{
			excl("a1", try, table.Granted).by("o").on("a"),
			shrd("b1", try, table.Granted).by("o").on("b"),
			excl("c1", try, table.Granted).by("p").on("c"),
			excl("c2", wait, table.Queued).by("o").on("c"),
			excl("a2", wait, table.Queued).by("q").on("a"),
			excl("b2", wait, table.Queued).by("q").on("b"),
			excl("c3", wait, table.Queued).by("q").on("c"),
			{op: "relall", id: "o", grants: "b2 a2"}, // newest first
			state("p", "q").on("c"),
			state("q", "").on("a"),
			state("q", "").on("b"),
			{op: "relall", id: "o"},
			rel("c1", true, "c3"),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newScriptRun(t, tc.opts)
			r.run(tc.steps)
			r.finish()
		})
	}
}

func TestReleaseAllCounts(t *testing.T) {
	r := newScriptRun(t, lockd.Options{})
	r.run([]step{
		excl("a", try, table.Granted).by("o").on("a"),
		shrd("b", try, table.Granted).by("o").on("b"),
		excl("c", try, table.Granted).by("p").on("c"),
		excl("d", wait, table.Queued).by("o").on("c"),
	})
	o := r.owners["o"]
	if o.Count() != 3 {
		t.Fatalf("Count = %d, want 3", o.Count())
	}
	r.tb.ReleaseAll(o)
	if o.Count() != 0 {
		t.Fatalf("Count = %d after ReleaseAll", o.Count())
	}
	if c := r.tb.Counters(); c.Held != 1 || c.Waiting != 0 || c.Names != 1 {
		t.Fatalf("counters after ReleaseAll: %+v", c)
	}
	for _, id := range []string{"a", "b", "d"} {
		if r.tb.Held(r.holders[id]) || r.tb.Release(r.holders[id]) {
			t.Errorf("%s still held after ReleaseAll", id)
		}
	}
	r.tb.ReleaseAll(o) // nothing left: harmless
	if !r.tb.Held(r.holders["c"]) {
		t.Fatal("ReleaseAll of o released p's lock")
	}
	r.finish()
}

func TestFind(t *testing.T) {
	r := newScriptRun(t, lockd.Options{})
	r.run([]step{
		excl("x", try, table.Granted).by("o").on("x"),
		excl("y1", try, table.Granted).by("p").on("y"),
		excl("y", wait, table.Queued).by("o").on("y"),
		shrd("z", try, table.Granted).by("p").on("z"),
	})
	o, p := r.owners["o"], r.owners["p"]
	for _, c := range []struct {
		o    table.Owner
		name string
		want table.Holder
	}{
		{o, "x", r.holders["x"]},
		{o, "y", r.holders["y"]}, // waiting
		{p, "y", r.holders["y1"]},
		{o, "z", nil},
		{p, "x", nil},
		{o, "nope", nil},
	} {
		if got := r.tb.Find(c.o, c.name); got != c.want {
			t.Errorf("Find(%s, %q) = %p, want %p", c.o.Info().ClientID, c.name, got, c.want)
		}
	}
	r.tb.Release(r.holders["x"])
	if got := r.tb.Find(o, "x"); got != nil {
		t.Errorf("Find after Release = %p, want nil", got)
	}
	r.tb.Release(r.holders["y"])
	if got := r.tb.Find(o, "y"); got != nil {
		t.Errorf("Find after withdrawing = %p, want nil", got)
	}
	r.finish()
}

func TestIdleNamesForgotten(t *testing.T) {
	tb := lockd.New(lockd.Options{MaxWaiters: 1})
	o := lockd.NewOwner(table.Info{}, notifyFunc(func(table.Holder) {}))
	p := lockd.NewOwner(table.Info{}, notifyFunc(func(table.Holder) {}))
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
	if names() != 2 || tb.Entries() != 2 {
		t.Fatalf("Names = %d, entries %d, want 2", names(), tb.Entries())
	}
	tb.Release(h) // grants w
	tb.Release(w)
	if names() != 1 || tb.Entries() != 1 {
		t.Fatalf("Names = %d, entries %d after releasing a, want 1", names(), tb.Entries())
	}
	tb.ReleaseAll(p)
	checkEmpty(t, tb)
	// A name that was only ever waited for and withdrawn is gone as well.
	h, _, _ = tb.Acquire(o, table.Request{Name: "c"})
	w, _, _ = tb.Acquire(p, table.Request{Name: "c", Wait: true})
	tb.Release(w)
	tb.Release(h)
	checkEmpty(t, tb)
}

func TestCounters(t *testing.T) {
	r := newScriptRun(t, lockd.Options{MaxWaiters: 1})
	r.run([]step{
		excl("a", try, table.Granted),                        // acquired 1
		excl("b", try, table.NotGranted),                     // not 1
		excl("b", wait, table.Queued),                        // waiting 1
		refused(excl("c", wait, 0), table.ErrQueueFull),      // not 2
		refused(sem("c", 2, try, 0), table.ErrLimitMismatch), // not 3
		rel("a", true, "b"),                                  // acquired 2
		shrd("d", try, table.Granted).on("y"),                // acquired 3
		shrd("e", try, table.Granted).on("y"),                // acquired 4
		excl("f", wait, table.Queued).on("y"),                // waiting 1
	})
	r.tb.CountTimeout()
	want := table.Counters{Acquired: 4, NotAcquired: 4, Held: 3, Waiting: 1, Names: 2}
	if got := r.tb.Counters(); got != want {
		t.Fatalf("Counters = %+v, want %+v", got, want)
	}
	r.run([]step{
		rel("d", true),
		rel("e", true, "f"), // acquired 5
		rel("f", true),
		rel("b", true),
	})
	want = table.Counters{Acquired: 5, NotAcquired: 4}
	if got := r.tb.Counters(); got != want {
		t.Fatalf("Counters = %+v, want %+v", got, want)
	}
	r.finish()
}

// seqTokens is a TokenSource that counts in steps of ten.
type seqTokens struct{ n uint64 }

func (s *seqTokens) Next() (uint64, error) { s.n += 10; return s.n, nil }

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

	// MemTokens, the default, counts up from 1.
	var m lockd.MemTokens
	for i := uint64(1); i <= 3; i++ {
		if v, err := m.Next(); v != i || err != nil {
			t.Fatalf("MemTokens.Next = %d, want %d", v, i)
		}
	}
}

func TestSnapshot(t *testing.T) {
	var clock int64
	tb := lockd.New(lockd.Options{Now: func() int64 { return clock }})
	owner := func(id string, pid int) table.Owner {
		return lockd.NewOwner(table.Info{ClientID: id, Host: "host-" + id, PID: pid, Addr: "10.0.0.1:" + id},
			notifyFunc(func(table.Holder) {}))
	}
	at := func(ns int64) time.Time { return time.Unix(0, ns) }
	type req struct {
		o     table.Owner
		name  string
		mode  table.Mode
		limit int
		at    int64
	}
	hs := map[table.Owner]table.Holder{}
	s1, s2, s3 := owner("s1", 1), owner("s2", 2), owner("s3", 3)
	w1, w2, w3 := owner("w1", 4), owner("w2", 5), owner("w3", 6)
	m1, m2, q1, q2 := owner("m1", 7), owner("m2", 8), owner("q1", 9), owner("q2", 10)
	for _, r := range []req{
		{s1, "s", sh, 0, 1000},
		{s2, "s", sh, 0, 2000},
		{s3, "s", sh, 0, 3000},
		{w1, "s", ex, 1, 4000},
		{w2, "s", sh, 0, 5000},
		{w3, "s", ex, 1, 6000},
		{m1, "m", ex, 3, 7000},
		{m2, "m", ex, 3, 7500},
		{q1, "q", ex, 3, 8000},
		{q2, "q", sh, 0, 9000},
	} {
		clock = r.at
		h, _, err := tb.Acquire(r.o, table.Request{Name: r.name, Mode: r.mode, Limit: r.limit, Wait: true})
		if err != nil {
			t.Fatal(err)
		}
		hs[r.o] = h
	}
	clock = 10000
	tb.Release(hs[q1]) // q2 granted at 10000; no exclusive request left on q

	p := func(o table.Owner, mode table.Mode, limit int, since int64) table.Party {
		h := hs[o]
		return table.Party{Info: *o.Info(), Mode: mode, Limit: limit, Since: at(since), Token: h.Token()}
	}
	s := table.LockInfo{
		Name: "s", Mode: sh, Limit: 1, Token: hs[s3].Token(),
		Holders: []table.Party{p(s1, sh, 1, 1000), p(s2, sh, 1, 2000), p(s3, sh, 1, 3000)},
		Waiters: []table.Party{p(w1, ex, 1, 4000), p(w2, sh, 1, 5000), p(w3, ex, 1, 6000)},
	}
	m := table.LockInfo{
		Name: "m", Mode: ex, Limit: 3, Token: hs[m2].Token(),
		Holders: []table.Party{p(m1, ex, 3, 7000), p(m2, ex, 3, 7500)},
	}
	q := table.LockInfo{
		Name: "q", Mode: sh, Limit: 1, Token: hs[q2].Token(),
		Holders: []table.Party{p(q2, sh, 1, 10000)},
	}
	for _, w := range s.Waiters {
		if w.Token != 0 {
			t.Fatalf("waiter with token %d", w.Token)
		}
	}
	bounded := s
	bounded.Holders = s.Holders[:2] // the oldest two
	bounded.Waiters = s.Waiters[:2] // the next two to be served

	for _, c := range []struct {
		names []string
		max   int
		want  []table.LockInfo
	}{
		{nil, 0, []table.LockInfo{m, q, s}},
		{[]string{"s", "nope", "m"}, 0, []table.LockInfo{m, s}},
		{[]string{"nope"}, 0, nil},
		{[]string{"s"}, 2, []table.LockInfo{bounded}},
		{[]string{"s"}, 3, []table.LockInfo{s}},
		{[]string{"s"}, 100, []table.LockInfo{s}},
	} {
		got := tb.Snapshot(c.names, c.max)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Snapshot(%q, %d):\n got %+v\nwant %+v", c.names, c.max, got, c.want)
		}
	}

	// The waiters' Since becomes the time of the grant.
	clock = 20000
	for _, o := range []table.Owner{s1, s2, s3} {
		tb.Release(hs[o])
	}
	got := tb.Snapshot([]string{"s"}, 0)
	want := []table.LockInfo{{
		Name: "s", Mode: ex, Limit: 1, Token: hs[w1].Token(),
		Holders: []table.Party{p(w1, ex, 1, 20000)},
		Waiters: []table.Party{{Info: *w2.Info(), Mode: sh, Limit: 1, Since: at(5000)}, {Info: *w3.Info(), Mode: ex, Limit: 1, Since: at(6000)}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Snapshot after grant:\n got %+v\nwant %+v", got, want)
	}
}

// TestNotifyCallsBack checks that Granted runs without a lockd mutex held, on
// the releasing goroutine, before Release returns: it calls back into the
// table from another goroutine, which would block on a held shard mutex.
func TestNotifyCallsBack(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	var notified int
	o := lockd.NewOwner(table.Info{}, notifyFunc(func(table.Holder) {}))
	p := lockd.NewOwner(table.Info{}, nil)
	lockd.SetNotifier(p, notifyFunc(func(h table.Holder) {
		notified++
		done := make(chan bool)
		go func() {
			// Every name, so every shard mutex.
			tb.Snapshot(nil, 0)
			done <- tb.Held(h)
		}()
		select {
		case held := <-done:
			if !held {
				t.Error("notified holder is not held")
			}
		case <-time.After(10 * time.Second):
			t.Error("Granted is called with a lockd mutex held")
		}
	}))
	h, _, _ := tb.Acquire(o, table.Request{Name: "x"})
	w, _, _ := tb.Acquire(p, table.Request{Name: "x", Wait: true})
	tb.Release(h)
	if notified != 1 {
		t.Fatalf("Granted called %d times before Release returned, want 1", notified)
	}
	tb.Release(w)
	checkEmpty(t, tb)
}

// TestBreakFromAnotherGoroutine breaks an owner's lock from an operator's
// goroutine while the owner's own goroutine keeps acquiring and releasing
// other names, as a session does: the owner's list of holders is changed by
// both, and the race detector checks that this is synchronised. The owner
// hears of the break as lib/server does, through Lost and a channel.
func TestBreakFromAnotherGoroutine(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	broken := make(chan table.Holder, 1)
	o := lockd.NewOwner(table.Info{}, &breakRecorder{broken})
	const rounds = 200
	held := make(chan table.Holder)
	done := make(chan struct{})
	go func() { // the operator
		defer close(done)
		for range rounds {
			<-held
			if n := tb.Break("x"); n != 1 {
				t.Errorf("Break = %d, want 1", n)
				return
			}
		}
	}()
	for i := range rounds {
		h, res, _ := tb.Acquire(o, table.Request{Name: "x"})
		if res != table.Granted {
			t.Fatalf("round %d: x not granted: %v", i, res)
		}
		held <- h
		for j := range 20 {
			g, _, _ := tb.Acquire(o, table.Request{Name: fmt.Sprint("y", j)})
			tb.Release(g)
		}
		var got table.Holder
		select {
		case got = <-broken:
		case <-time.After(5 * time.Second):
			// Without a deadline a Break that does not tell the owner
			// would hang here until go test's own timeout.
			t.Fatalf("round %d: the owner was not told of the break within 5s", i)
		}
		if got != h {
			t.Fatalf("round %d: Lost(%p), want %p", i, got, h)
		}
		if tb.Held(h) {
			t.Fatalf("round %d: broken holder still held", i)
		}
		if tb.Release(h) {
			t.Fatalf("round %d: Release of a broken holder reported held", i)
		}
		if o.Count() != 0 {
			t.Fatalf("round %d: Count %d after releasing everything", i, o.Count())
		}
	}
	<-done
	checkEmpty(t, tb)
}

type breakRecorder struct{ ch chan table.Holder }

func (r *breakRecorder) Granted(table.Holder)         {}
func (r *breakRecorder) Lost(h table.Holder, _ error) { r.ch <- h }

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
