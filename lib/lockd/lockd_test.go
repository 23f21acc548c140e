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
	"github.com/tnl-lock/tnl/lib/protocol"
)

const (
	ex   = protocol.Exclusive
	sh   = protocol.Shared
	wait = true
	try  = false
)

// notifyFunc adapts a function to lockd.Notifier.
type notifyFunc func(h *lockd.Holder)

func (f notifyFunc) Notify(h *lockd.Holder) { f(h) }

// step is one line of a script: an Acquire, a Release, a ReleaseAll or a
// look at one name's holders and waiters.
type step struct {
	op    string // "acq", "rel", "cancel", "break", "relall", "state"
	id    string // acq, rel: holder label; relall: owner label
	owner string // acq: owner label (default: id); it is also the ClientID
	name  string // acq, state: lock name (default "x")
	mode  protocol.Mode
	limit int
	wait  bool

	want lockd.Result // acq
	err  error        // acq
	held bool         // rel: want wasHeld; cancel: want withdrawn
	n    int          // break: want the number of holders broken

	// broken are the holder labels told by Broken during this step.
	broken string

	// grants are the holder labels notified during this step, in order.
	grants string
	// state: owner labels of the holders (oldest first) and of the waiters
	// (queue order), space separated.
	holders, waiters string
}

func acq(id string, mode protocol.Mode, limit int, w bool, want lockd.Result) step {
	return step{op: "acq", id: id, mode: mode, limit: limit, wait: w, want: want}
}

func excl(id string, w bool, want lockd.Result) step { return acq(id, ex, 1, w, want) }
func shrd(id string, w bool, want lockd.Result) step { return acq(id, sh, 0, w, want) }
func sem(id string, n int, w bool, want lockd.Result) step {
	return acq(id, ex, n, w, want)
}

func refused(s step, err error) step { s.want, s.err = lockd.Refused, err; return s }

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
	owners    map[string]*lockd.Owner
	holders   map[string]*lockd.Holder
	labels    map[*lockd.Holder]string
	notified  []string
	broken    []string
	lastToken uint64
}

// scriptNotifier is an owner's Notifier and Breaker in a script.
type scriptNotifier struct {
	r     *scriptRun
	o     *lockd.Owner
	label string
}

func (n *scriptNotifier) Notify(h *lockd.Holder) {
	r := n.r
	if h.Owner != n.o {
		r.t.Errorf("owner %s notified of a holder of %s", n.label, h.Owner.ClientID)
	}
	r.granted(h)
	r.notified = append(r.notified, r.labels[h])
}

func (n *scriptNotifier) Broken(h *lockd.Holder) {
	if h.Owner != n.o {
		n.r.t.Errorf("owner %s told of a broken holder of %s", n.label, h.Owner.ClientID)
	}
	n.r.broken = append(n.r.broken, n.r.labels[h])
}

func newScriptRun(t *testing.T, o lockd.Options) *scriptRun {
	return &scriptRun{
		t:       t,
		tb:      lockd.New(o),
		owners:  map[string]*lockd.Owner{},
		holders: map[string]*lockd.Holder{},
		labels:  map[*lockd.Holder]string{},
	}
}

func (r *scriptRun) owner(label string) *lockd.Owner {
	o := r.owners[label]
	if o == nil {
		o = &lockd.Owner{Info: lockd.Info{ClientID: label}}
		o.Notifier = &scriptNotifier{r: r, o: o, label: label}
		r.owners[label] = o
	}
	return o
}

// granted checks the token of a fresh grant: larger than every earlier one.
func (r *scriptRun) granted(h *lockd.Holder) {
	r.t.Helper()
	if h.Token <= r.lastToken {
		r.t.Errorf("grant of %s: token %d not above the previous %d", r.labels[h], h.Token, r.lastToken)
	}
	r.lastToken = h.Token
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
			h, res, err := r.tb.Acquire(r.owner(s.owner), lockd.Request{Name: s.name, Mode: s.mode, Limit: s.limit, Wait: s.wait})
			if res != s.want || !errors.Is(err, s.err) || (err == nil) != (s.err == nil) {
				t.Fatalf("step %d: acquire %s: got %v, %v; want %v, %v", i, s.id, res, err, s.want, s.err)
			}
			if (h == nil) != (res == lockd.NotGranted || res == lockd.Refused) {
				t.Fatalf("step %d: acquire %s: result %v with holder %p", i, s.id, res, h)
			}
			if h != nil {
				r.holders[s.id] = h
				r.labels[h] = s.id
				if h.Name() != s.name || h.Mode != s.mode || h.Owner != r.owners[s.owner] {
					t.Fatalf("step %d: holder %s is %q %v of %s", i, s.id, h.Name(), h.Mode, h.Owner.ClientID)
				}
				if res == lockd.Granted {
					r.granted(h)
				} else if h.Token != 0 {
					t.Fatalf("step %d: waiting %s has token %d", i, s.id, h.Token)
				}
				if got := r.tb.Held(h); got != (res == lockd.Granted) {
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
			var li lockd.LockInfo
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
			r.t.Errorf("owner %s: Count %d after ReleaseAll", o.ClientID, o.Count())
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

func partyIDs(ps []lockd.Party) string {
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
			excl("a", try, lockd.Granted),
			excl("b", try, lockd.NotGranted),
			excl("b", wait, lockd.Queued),
			excl("c", wait, lockd.Queued),
			state("a", "b c"),
			rel("a", true, "b"),
			state("b", "c"),
			rel("b", true, "c"),
			rel("c", true),
			state("", ""),
		}},
		{"exclusive: a second request of the holder's own owner is not re-entrant", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			excl("a2", try, lockd.NotGranted).by("a"),
			excl("a2", wait, lockd.Queued).by("a"),
			rel("a", true, "a2"),
		}},
		{"exclusive: names are independent", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			excl("b", try, lockd.Granted).on("y"),
			shrd("c", try, lockd.Granted).on("z"),
			excl("d", try, lockd.NotGranted).on("y"),
		}},
		{"shared", lockd.Options{}, []step{
			shrd("a", try, lockd.Granted),
			shrd("b", try, lockd.Granted),
			shrd("c", wait, lockd.Granted),
			excl("d", wait, lockd.Queued),
			state("a b c", "d"),
			rel("a", true),
			rel("c", true),
			rel("b", true, "d"),
			state("d", ""),
		}},
		{"semaphore", lockd.Options{}, []step{
			sem("a", 3, try, lockd.Granted),
			sem("b", 3, try, lockd.Granted),
			sem("c", 3, wait, lockd.Granted),
			sem("d", 3, try, lockd.NotGranted),
			sem("d", 3, wait, lockd.Queued),
			sem("e", 3, wait, lockd.Queued),
			state("a b c", "d e"),
			rel("b", true, "d"),
			state("a c d", "e"),
			rel("d", true, "e"),
			rel("a", true),
			sem("f", 3, try, lockd.Granted),
			sem("g", 3, try, lockd.NotGranted),
		}},
		{"semaphore: limit 0 and 1 both mean a plain lock", lockd.Options{}, []step{
			sem("a", 0, try, lockd.Granted),
			sem("b", 1, try, lockd.NotGranted),
			sem("b", 1, wait, lockd.Queued),
			sem("c", -5, wait, lockd.Queued),
			rel("a", true, "b"),
		}},
		{"modes never mix", lockd.Options{}, []step{
			shrd("a", try, lockd.Granted),
			excl("b", try, lockd.NotGranted),
			sem("b", 3, try, lockd.NotGranted),
			rel("a", true),
			excl("c", try, lockd.Granted),
			shrd("d", try, lockd.NotGranted),
			rel("c", true),
			sem("e", 3, try, lockd.Granted),
			shrd("f", try, lockd.NotGranted), // 1 of 3 taken, still no mixing
			sem("g", 3, try, lockd.Granted),
		}},
		{"limit mismatch with a holder", lockd.Options{}, []step{
			sem("a", 3, try, lockd.Granted),
			refused(sem("b", 2, try, 0), lockd.ErrLimitMismatch),
			refused(sem("b", 2, wait, 0), lockd.ErrLimitMismatch),
			refused(excl("c", wait, 0), lockd.ErrLimitMismatch),
			acq("d", sh, 7, try, lockd.NotGranted), // a shared request has no limit
			sem("e", 3, try, lockd.Granted),
			state("a e", ""),
		}},
		{"limit mismatch between waiters", lockd.Options{}, []step{
			shrd("a", try, lockd.Granted),
			sem("b", 2, wait, lockd.Queued),
			refused(sem("c", 3, wait, 0), lockd.ErrLimitMismatch),
			refused(sem("c", 3, try, 0), lockd.ErrLimitMismatch),
			sem("c", 2, wait, lockd.Queued),
			rel("b", false),
			refused(sem("d", 3, wait, 0), lockd.ErrLimitMismatch),
			rel("c", false),
			// no exclusive request left: a new size may be agreed
			sem("d", 3, wait, lockd.Queued),
			rel("a", true, "d"),
		}},
		{"limit forgotten when the last exclusive holder leaves", lockd.Options{}, []step{
			sem("a", 3, try, lockd.Granted),
			rel("a", true),
			sem("b", 2, try, lockd.Granted),
			sem("c", 2, try, lockd.Granted),
			sem("d", 2, try, lockd.NotGranted),
		}},
		{"limit forgotten while shared holders keep the name", lockd.Options{}, []step{
			sem("a", 3, try, lockd.Granted),
			shrd("b", wait, lockd.Queued),
			rel("a", true, "b"),
			sem("c", 2, wait, lockd.Queued),
			sem("d", 2, wait, lockd.Queued),
			rel("b", true, "c", "d"),
		}},
		{"queue full", lockd.Options{MaxWaiters: 2}, []step{
			excl("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			shrd("c", wait, lockd.Queued),
			refused(excl("d", wait, 0), lockd.ErrQueueFull),
			refused(shrd("d", wait, 0), lockd.ErrQueueFull),
			excl("d", try, lockd.NotGranted), // not waiting: not refused
			refused(sem("d", 2, wait, 0), lockd.ErrLimitMismatch),
			excl("e", try, lockd.Granted).on("y"), // the bound is per name
			excl("e2", wait, lockd.Queued).on("y"),
			excl("e3", wait, lockd.Queued).on("y"),
			rel("b", false),
			excl("d", wait, lockd.Queued),
			rel("a", true, "c"),
			state("c", "d"),
			excl("f", wait, lockd.Queued),
			refused(excl("g", wait, 0), lockd.ErrQueueFull),
		}},
		{"queue full: one waiter", lockd.Options{MaxWaiters: 1}, []step{
			excl("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			refused(excl("c", wait, 0), lockd.ErrQueueFull),
			rel("a", true, "b"),
			excl("c", wait, lockd.Queued),
		}},
		{"not granted without wait while others queue", lockd.Options{}, []step{
			shrd("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			shrd("c", try, lockd.NotGranted), // compatible with a, but b came first
			state("a", "b"),
		}},
		{"a shared request behind a waiting exclusive one waits", lockd.Options{}, []step{
			shrd("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			shrd("c", wait, lockd.Queued),
			state("a", "b c"),
			rel("a", true, "b"),
			rel("b", true, "c"),
		}},
		{"grants stop at the first incompatible waiter", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			shrd("b", wait, lockd.Queued),
			shrd("c", wait, lockd.Queued),
			excl("d", wait, lockd.Queued),
			shrd("e", wait, lockd.Queued),
			rel("a", true, "b", "c"),
			state("b c", "d e"),
			rel("c", true),
			rel("b", true, "d"),
			rel("d", true, "e"),
		}},
		{"semaphore waiters are granted in order up to N", lockd.Options{}, []step{
			shrd("a", try, lockd.Granted),
			sem("b", 2, wait, lockd.Queued),
			sem("c", 2, wait, lockd.Queued),
			sem("d", 2, wait, lockd.Queued),
			shrd("e", wait, lockd.Queued),
			rel("a", true, "b", "c"),
			rel("c", true, "d"),
			rel("b", true),
			rel("d", true, "e"),
		}},
		{"a big semaphore request never starves", lockd.Options{}, []step{
			sem("a", 2, try, lockd.Granted),
			shrd("b", wait, lockd.Queued),
			sem("c", 2, wait, lockd.Queued), // fits beside a, but b came first
			rel("b", false, "c"),
		}},
		{"cancel of the waiting head lets the next compatible ones through", lockd.Options{}, []step{
			shrd("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			shrd("c", wait, lockd.Queued),
			shrd("d", wait, lockd.Queued),
			excl("e", wait, lockd.Queued),
			shrd("f", wait, lockd.Queued),
			rel("b", false, "c", "d"),
			state("a c d", "e f"),
		}},
		{"cancel of a head that the next one could not pass either", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			excl("c", wait, lockd.Queued),
			rel("b", false),
			state("a", "c"),
			rel("a", true, "c"),
		}},
		{"cancel in the middle of the queue", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			shrd("c", wait, lockd.Queued),
			excl("d", wait, lockd.Queued),
			rel("c", false),
			rel("d", false),
			state("a", "b"),
			excl("e", wait, lockd.Queued),
			rel("a", true, "b"),
			rel("b", true, "e"),
		}},
		{"cancel of the tail, then more waiters", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			excl("c", wait, lockd.Queued),
			rel("c", false),
			excl("d", wait, lockd.Queued),
			state("a", "b d"),
			rel("a", true, "b"),
			rel("b", true, "d"),
		}},
		{"release return values and double release", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			rel("b", false), // withdrawn
			rel("b", false), // again: harmless
			state("a", ""),
			rel("a", true),
			rel("a", false),
			excl("c", try, lockd.Granted),
			rel("a", false), // must not release c
			rel("b", false),
			state("c", ""),
			excl("d", wait, lockd.Queued),
			rel("c", true, "d"),
			rel("c", false),
			state("d", ""),
		}},
		{"release of a waiter granted in the meantime reports held", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			rel("a", true, "b"),
			rel("b", true),
		}},
		{"stale holder of a forgotten name", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			rel("a", true), // the name is forgotten here
			excl("b", try, lockd.Granted),
			rel("a", false),
			excl("c", try, lockd.NotGranted),
			state("b", ""),
		}},
		{"cancel", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			shrd("c", wait, lockd.Queued),
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
			shrd("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			shrd("c", wait, lockd.Queued),
			excl("d", wait, lockd.Queued),
			cancel("b", true, "c"),
			state("a c", "d"),
		}},
		{"break", lockd.Options{}, []step{
			excl("a", try, lockd.Granted),
			excl("b", wait, lockd.Queued),
			shrd("c", wait, lockd.Queued),
			excl("d", wait, lockd.Queued),
			brk(1, "a", "b"),
			state("b", "c d"),
			rel("a", false), // broken: already gone
			brk(1, "b", "c"),
			state("c", "d"),
			rel("c", true, "d"),
			state("d", ""),
			excl("e", try, lockd.NotGranted),
			rel("d", true),
			brk(0, ""),
		}},
		{"break shared holders", lockd.Options{}, []step{
			shrd("a", try, lockd.Granted),
			shrd("b", try, lockd.Granted),
			shrd("c", try, lockd.Granted),
			sem("d", 2, wait, lockd.Queued),
			sem("e", 2, wait, lockd.Queued),
			sem("f", 2, wait, lockd.Queued),
			brk(3, "a b c", "d", "e"),
			state("d e", "f"),
			rel("e", true, "f"),
			state("d f", ""),
			refused(sem("g", 3, try, 0), lockd.ErrLimitMismatch),
		}},
		{"break of a name nobody holds", lockd.Options{}, []step{
			brk(0, "").on("nope"),
			state("", "").on("nope"),
		}},
		{"break forgets the name", lockd.Options{}, []step{
			sem("a", 3, try, lockd.Granted),
			brk(1, "a"),
			state("", ""),
			sem("b", 2, try, lockd.Granted), // the old size is gone too
		}},
		{"release-all", lockd.Options{}, []step{
			excl("a1", try, lockd.Granted).by("o").on("a"),
			shrd("b1", try, lockd.Granted).by("o").on("b"),
			excl("c1", try, lockd.Granted).by("p").on("c"),
			excl("c2", wait, lockd.Queued).by("o").on("c"),
			excl("a2", wait, lockd.Queued).by("q").on("a"),
			excl("b2", wait, lockd.Queued).by("q").on("b"),
			excl("c3", wait, lockd.Queued).by("q").on("c"),
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
		excl("a", try, lockd.Granted).by("o").on("a"),
		shrd("b", try, lockd.Granted).by("o").on("b"),
		excl("c", try, lockd.Granted).by("p").on("c"),
		excl("d", wait, lockd.Queued).by("o").on("c"),
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
		excl("x", try, lockd.Granted).by("o").on("x"),
		excl("y1", try, lockd.Granted).by("p").on("y"),
		excl("y", wait, lockd.Queued).by("o").on("y"),
		shrd("z", try, lockd.Granted).by("p").on("z"),
	})
	o, p := r.owners["o"], r.owners["p"]
	for _, c := range []struct {
		o    *lockd.Owner
		name string
		want *lockd.Holder
	}{
		{o, "x", r.holders["x"]},
		{o, "y", r.holders["y"]}, // waiting
		{p, "y", r.holders["y1"]},
		{o, "z", nil},
		{p, "x", nil},
		{o, "nope", nil},
	} {
		if got := r.tb.Find(c.o, c.name); got != c.want {
			t.Errorf("Find(%s, %q) = %p, want %p", c.o.ClientID, c.name, got, c.want)
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
	o := &lockd.Owner{Notifier: notifyFunc(func(*lockd.Holder) {})}
	p := &lockd.Owner{Notifier: notifyFunc(func(*lockd.Holder) {})}
	names := func() int64 { return tb.Counters().Names }

	h, _, _ := tb.Acquire(o, lockd.Request{Name: "a"})
	if names() != 1 {
		t.Fatalf("Names = %d with one held lock", names())
	}
	w, _, _ := tb.Acquire(p, lockd.Request{Name: "a", Wait: true})
	tb.Acquire(p, lockd.Request{Name: "a"})                       // not granted
	tb.Acquire(p, lockd.Request{Name: "a", Wait: true})           // queue full
	tb.Acquire(p, lockd.Request{Name: "a", Mode: ex, Limit: 2})   // mismatch
	tb.Acquire(p, lockd.Request{Name: "b", Mode: sh})             // granted
	tb.Acquire(p, lockd.Request{Name: "b", Mode: ex, Wait: true}) // queued
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
	h, _, _ = tb.Acquire(o, lockd.Request{Name: "c"})
	w, _, _ = tb.Acquire(p, lockd.Request{Name: "c", Wait: true})
	tb.Release(w)
	tb.Release(h)
	checkEmpty(t, tb)
}

func TestCounters(t *testing.T) {
	r := newScriptRun(t, lockd.Options{MaxWaiters: 1})
	r.run([]step{
		excl("a", try, lockd.Granted),                        // acquired 1
		excl("b", try, lockd.NotGranted),                     // not 1
		excl("b", wait, lockd.Queued),                        // waiting 1
		refused(excl("c", wait, 0), lockd.ErrQueueFull),      // not 2
		refused(sem("c", 2, try, 0), lockd.ErrLimitMismatch), // not 3
		rel("a", true, "b"),                                  // acquired 2
		shrd("d", try, lockd.Granted).on("y"),                // acquired 3
		shrd("e", try, lockd.Granted).on("y"),                // acquired 4
		excl("f", wait, lockd.Queued).on("y"),                // waiting 1
	})
	r.tb.CountTimeout()
	want := lockd.Counters{Acquired: 4, NotAcquired: 4, Held: 3, Waiting: 1, Names: 2}
	if got := r.tb.Counters(); got != want {
		t.Fatalf("Counters = %+v, want %+v", got, want)
	}
	r.run([]step{
		rel("d", true),
		rel("e", true, "f"), // acquired 5
		rel("f", true),
		rel("b", true),
	})
	want = lockd.Counters{Acquired: 5, NotAcquired: 4}
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
	o := &lockd.Owner{}
	o.Notifier = notifyFunc(func(h *lockd.Holder) { got = append(got, h.Token) })
	acq := func(name string, mode protocol.Mode, w bool, want lockd.Result) *lockd.Holder {
		t.Helper()
		h, res, err := tb.Acquire(o, lockd.Request{Name: name, Mode: mode, Wait: w})
		if res != want || err != nil {
			t.Fatalf("acquire %s: %v, %v; want %v", name, res, err, want)
		}
		if res == lockd.Granted {
			got = append(got, h.Token)
		}
		return h
	}
	a := acq("x", ex, false, lockd.Granted) // 1010
	b := acq("x", sh, true, lockd.Queued)
	c := acq("x", sh, true, lockd.Queued)
	acq("y", ex, false, lockd.Granted)      // 1020
	tb.Release(a)                           // b 1030, c 1040
	d := acq("x", sh, false, lockd.Granted) // 1050
	tb.Release(b)
	tb.Release(c)
	tb.Release(d)
	acq("x", ex, false, lockd.Granted) // 1060: the name was forgotten, the count was not
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
	owner := func(id string, pid int) *lockd.Owner {
		return &lockd.Owner{
			Info:     lockd.Info{ClientID: id, Host: "host-" + id, PID: pid, Addr: "10.0.0.1:" + id},
			Notifier: notifyFunc(func(*lockd.Holder) {}),
		}
	}
	at := func(ns int64) time.Time { return time.Unix(0, ns) }
	type req struct {
		o     *lockd.Owner
		name  string
		mode  protocol.Mode
		limit int
		at    int64
	}
	hs := map[*lockd.Owner]*lockd.Holder{}
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
		h, _, err := tb.Acquire(r.o, lockd.Request{Name: r.name, Mode: r.mode, Limit: r.limit, Wait: true})
		if err != nil {
			t.Fatal(err)
		}
		hs[r.o] = h
	}
	clock = 10000
	tb.Release(hs[q1]) // q2 granted at 10000; no exclusive request left on q

	p := func(o *lockd.Owner, mode protocol.Mode, limit int, since int64) lockd.Party {
		h := hs[o]
		return lockd.Party{Info: o.Info, Mode: mode, Limit: limit, Since: at(since), Token: h.Token}
	}
	s := lockd.LockInfo{
		Name: "s", Mode: sh, Limit: 1, Token: hs[s3].Token,
		Holders: []lockd.Party{p(s1, sh, 1, 1000), p(s2, sh, 1, 2000), p(s3, sh, 1, 3000)},
		Waiters: []lockd.Party{p(w1, ex, 1, 4000), p(w2, sh, 1, 5000), p(w3, ex, 1, 6000)},
	}
	m := lockd.LockInfo{
		Name: "m", Mode: ex, Limit: 3, Token: hs[m2].Token,
		Holders: []lockd.Party{p(m1, ex, 3, 7000), p(m2, ex, 3, 7500)},
	}
	q := lockd.LockInfo{
		Name: "q", Mode: sh, Limit: 1, Token: hs[q2].Token,
		Holders: []lockd.Party{p(q2, sh, 1, 10000)},
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
		want  []lockd.LockInfo
	}{
		{nil, 0, []lockd.LockInfo{m, q, s}},
		{[]string{"s", "nope", "m"}, 0, []lockd.LockInfo{m, s}},
		{[]string{"nope"}, 0, nil},
		{[]string{"s"}, 2, []lockd.LockInfo{bounded}},
		{[]string{"s"}, 3, []lockd.LockInfo{s}},
		{[]string{"s"}, 100, []lockd.LockInfo{s}},
	} {
		got := tb.Snapshot(c.names, c.max)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Snapshot(%q, %d):\n got %+v\nwant %+v", c.names, c.max, got, c.want)
		}
	}

	// The waiters' Since becomes the time of the grant.
	clock = 20000
	for _, o := range []*lockd.Owner{s1, s2, s3} {
		tb.Release(hs[o])
	}
	got := tb.Snapshot([]string{"s"}, 0)
	want := []lockd.LockInfo{{
		Name: "s", Mode: ex, Limit: 1, Token: hs[w1].Token,
		Holders: []lockd.Party{p(w1, ex, 1, 20000)},
		Waiters: []lockd.Party{{Info: w2.Info, Mode: sh, Limit: 1, Since: at(5000)}, {Info: w3.Info, Mode: ex, Limit: 1, Since: at(6000)}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Snapshot after grant:\n got %+v\nwant %+v", got, want)
	}
}

// TestNotifyCallsBack checks that Notify runs without a lockd mutex held, on
// the releasing goroutine, before Release returns: it calls back into the
// table from another goroutine, which would block on a held shard mutex.
func TestNotifyCallsBack(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	var notified int
	o := &lockd.Owner{Notifier: notifyFunc(func(*lockd.Holder) {})}
	p := &lockd.Owner{}
	p.Notifier = notifyFunc(func(h *lockd.Holder) {
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
			t.Error("Notify is called with a lockd mutex held")
		}
	})
	h, _, _ := tb.Acquire(o, lockd.Request{Name: "x"})
	w, _, _ := tb.Acquire(p, lockd.Request{Name: "x", Wait: true})
	tb.Release(h)
	if notified != 1 {
		t.Fatalf("Notify called %d times before Release returned, want 1", notified)
	}
	tb.Release(w)
	checkEmpty(t, tb)
}

// TestBreakFromAnotherGoroutine breaks an owner's lock from an operator's
// goroutine while the owner's own goroutine keeps acquiring and releasing
// other names, as a session does: the owner's list of holders is changed by
// both, and the race detector checks that this is synchronised. The owner
// hears of the break as lib/server does, through Breaker and a channel.
func TestBreakFromAnotherGoroutine(t *testing.T) {
	tb := lockd.New(lockd.Options{})
	broken := make(chan *lockd.Holder, 1)
	o := &lockd.Owner{Notifier: &breakRecorder{broken}}
	const rounds = 200
	held := make(chan *lockd.Holder)
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
		h, res, _ := tb.Acquire(o, lockd.Request{Name: "x"})
		if res != lockd.Granted {
			t.Fatalf("round %d: x not granted: %v", i, res)
		}
		held <- h
		for j := range 20 {
			g, _, _ := tb.Acquire(o, lockd.Request{Name: fmt.Sprint("y", j)})
			tb.Release(g)
		}
		var got *lockd.Holder
		select {
		case got = <-broken:
		case <-time.After(5 * time.Second):
			// Without a deadline a Break that does not tell the owner
			// would hang here until go test's own timeout.
			t.Fatalf("round %d: the owner was not told of the break within 5s", i)
		}
		if got != h {
			t.Fatalf("round %d: Broken(%p), want %p", i, got, h)
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

type breakRecorder struct{ ch chan *lockd.Holder }

func (r *breakRecorder) Notify(*lockd.Holder)   {}
func (r *breakRecorder) Broken(h *lockd.Holder) { r.ch <- h }
