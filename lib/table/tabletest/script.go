package tabletest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tnl-lock/tnl/lib/table"
)

const (
	ex   = table.Exclusive
	sh   = table.Shared
	wait = true
	try  = false
)

// step is one line of a script: an Acquire, a Release, a Cancel, a Break,
// a ReleaseAll or a look at one name's holders and waiters.
type step struct {
	op    string // "acq", "rel", "cancel", "break", "relall", "state"
	id    string // acq, rel, cancel: holder label; relall: owner label
	owner string // acq: owner label (default: id); it is also the ClientID
	name  string // lock name (default "x")
	mode  table.Mode
	limit int
	wait  bool

	want table.Result // acq
	err  error        // acq
	held bool         // rel: want wasHeld; cancel: want withdrawn
	n    int          // break: want the number of holders broken

	// grants are the holder labels told Granted during this step, in
	// order (for relall and break: in any order).
	grants string
	// broken are the holder labels told Lost during this step, in any
	// order.
	broken string
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

func relall(owner string, grants ...string) step {
	return step{op: "relall", id: owner, grants: strings.Join(grants, " ")}
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
	t       *testing.T
	tb      table.Table
	rec     *recorder
	owners  map[string]table.Owner
	holders map[string]table.Holder
	labels  map[table.Holder]string
	tokens  map[string]uint64 // per name, the latest token granted
}

func newScriptRun(t *testing.T, tb table.Table) *scriptRun {
	return &scriptRun{
		t:       t,
		tb:      tb,
		rec:     newRecorder(),
		owners:  map[string]table.Owner{},
		holders: map[string]table.Holder{},
		labels:  map[table.Holder]string{},
		tokens:  map[string]uint64{},
	}
}

func (r *scriptRun) owner(label string) table.Owner {
	o := r.owners[label]
	if o == nil {
		o, _ = newOwner(r.t, r.tb, r.rec, table.Info{ClientID: label, Host: "host-" + label, PID: len(r.owners) + 1})
		r.owners[label] = o
	}
	return o
}

func (r *scriptRun) label(h table.Holder) string {
	if l, ok := r.labels[h]; ok {
		return l
	}
	return fmt.Sprintf("<unknown holder of %s on %q>", ownerName(h.Owner()), h.Name())
}

// granted checks the token of a fresh grant on name: larger than every one
// granted before on that name, also before the name was last forgotten.
func (r *scriptRun) granted(where string, h table.Holder, token uint64) {
	r.t.Helper()
	if h.Token() != token {
		r.t.Fatalf("%s: grant of %s: Token() = %d, but %d when it was told", where, r.label(h), h.Token(), token)
	}
	if last := r.tokens[h.Name()]; token <= last {
		r.t.Fatalf("%s: grant of %s on %q: token %d, not above the previous %d", where, r.label(h), h.Name(), token, last)
	}
	r.tokens[h.Name()] = token
}

func (r *scriptRun) run(steps []step) {
	t := r.t
	for i, s := range steps {
		if s.name == "" {
			s.name = "x"
		}
		if s.owner == "" {
			s.owner = s.id
		}
		where := fmt.Sprintf("step %d (%s %s)", i, s.op, s.id)
		if stray := r.rec.take(); len(stray) > 0 {
			t.Fatalf("%s: %s told before the step, after the previous one had returned and been told", where, r.eventLabels(stray, false, true))
		}
		switch s.op {
		case "acq":
			o := r.owner(s.owner)
			h, res, err := r.tb.Acquire(o, table.Request{Name: s.name, Mode: s.mode, Limit: s.limit, Wait: s.wait})
			where = fmt.Sprintf("step %d: acquire %s %v limit %d wait %v on %q by %s", i, s.id, modeName(s.mode), s.limit, s.wait, s.name, s.owner)
			if res != s.want || !errors.Is(err, s.err) || (err == nil) != (s.err == nil) {
				t.Fatalf("%s: got %v, %v; want %v, %v", where, resultName(res), err, resultName(s.want), s.err)
			}
			if (h == nil) != (res == table.NotGranted || res == table.Refused) {
				t.Fatalf("%s: result %v with holder %v", where, resultName(res), h)
			}
			if h != nil {
				r.holders[s.id] = h
				r.labels[h] = s.id
				if h.Name() != s.name || h.Mode() != s.mode || h.Owner() != o {
					t.Fatalf("%s: holder is %q %v of %s", where, h.Name(), modeName(h.Mode()), ownerName(h.Owner()))
				}
				if res == table.Granted {
					r.granted(where, h, h.Token())
				} else if h.Token() != 0 {
					t.Fatalf("%s: waiting with token %d", where, h.Token())
				}
				if got := r.tb.Held(h); got != (res == table.Granted) {
					t.Fatalf("%s: Held = %v after %v", where, got, resultName(res))
				}
			}
		case "rel":
			h := r.mustHolder(where, s.id)
			if got := r.tb.Release(h); got != s.held {
				t.Fatalf("%s: Release = %v, want %v", where, got, s.held)
			}
			if r.tb.Held(h) {
				t.Fatalf("%s: still held after Release", where)
			}
		case "cancel":
			h := r.mustHolder(where, s.id)
			if got := r.tb.Cancel(h); got != s.held {
				t.Fatalf("%s: Cancel = %v, want %v", where, got, s.held)
			}
		case "break":
			where = fmt.Sprintf("step %d: break %q", i, s.name)
			if got := r.tb.Break(s.name); got != s.n {
				t.Fatalf("%s: Break = %d, want %d", where, got, s.n)
			}
		case "relall":
			r.tb.ReleaseAll(r.owner(s.id))
			if n := r.owner(s.id).Count(); n != 0 {
				t.Fatalf("%s: Count = %d after ReleaseAll", where, n)
			}
		case "state":
			where = fmt.Sprintf("step %d: state of %q", i, s.name)
			li, ok := listAll(t, r.tb, s.name, 2)
			if ok != (s.holders != "" || s.waiters != "") {
				t.Fatalf("%s: List = %v, want %v", where, ok, !ok)
			}
			if got := partyIDs(li.Holders); got != s.holders {
				t.Fatalf("%s: holders %q, want %q", where, got, s.holders)
			}
			if got := partyIDs(li.Waiters); got != s.waiters {
				t.Fatalf("%s: waiters %q, want %q", where, got, s.waiters)
			}
		default:
			t.Fatalf("step %d: unknown op %q", i, s.op)
		}
		r.told(where, s)
	}
}

// told checks the notifications of step s: those of a Release at once, as
// the interface promises, the others after waiting for as many as s
// expects.
func (r *scriptRun) told(where string, s step) {
	t := r.t
	wantGrants, wantLost := strings.Fields(s.grants), strings.Fields(s.broken)
	var evs []event
	if s.op == "rel" || s.op == "acq" || s.op == "state" {
		evs = r.rec.take()
	} else {
		evs = r.rec.wait(len(wantGrants) + len(wantLost))
	}
	var grants, lost []string
	for _, e := range evs {
		if e.lost {
			lost = append(lost, r.label(e.h))
			if !errors.Is(e.why, table.ErrBroken) {
				t.Errorf("%s: %s told Lost with %v, want an error that is ErrBroken", where, r.label(e.h), e.why)
			}
			if r.tb.Held(e.h) {
				t.Errorf("%s: %s told Lost but still held", where, r.label(e.h))
			}
			continue
		}
		grants = append(grants, r.label(e.h))
		r.granted(where, e.h, e.token)
		if !r.tb.Held(e.h) && !(s.op == "relall" && e.to == r.owners[s.id]) {
			t.Errorf("%s: %s told Granted but not held", where, r.label(e.h))
		}
	}
	if s.op == "relall" {
		// The names are released in any order, each name's grants in
		// FIFO order: order the grants by name, keeping each name's.
		byName := func(a, b string) int { return strings.Compare(r.nameOf(a), r.nameOf(b)) }
		slices.SortStableFunc(grants, byName)
		slices.SortStableFunc(wantGrants, byName)
	}
	slices.Sort(lost)
	slices.Sort(wantLost)
	if !slices.Equal(grants, wantGrants) {
		if s.op == "rel" && len(grants) < len(wantGrants) {
			t.Fatalf("%s: granted %q when Release returned, want %q (the grants of a Release are told before it returns)", where, grants, wantGrants)
		}
		t.Fatalf("%s: granted %q, want %q", where, grants, wantGrants)
	}
	if !slices.Equal(lost, wantLost) {
		t.Fatalf("%s: told Lost %q, want %q", where, lost, wantLost)
	}
}

// nameOf is the name the holder labelled l asked for.
func (r *scriptRun) nameOf(l string) string {
	if h := r.holders[l]; h != nil {
		return h.Name()
	}
	return ""
}

func (r *scriptRun) mustHolder(where, id string) table.Holder {
	h := r.holders[id]
	if h == nil {
		r.t.Fatalf("%s: no holder %s in the script", where, id)
	}
	return h
}

func (r *scriptRun) eventLabels(evs []event, lost, grants bool) string {
	var s []string
	for _, e := range evs {
		switch {
		case e.lost && lost:
			s = append(s, "Lost "+r.label(e.h))
		case !e.lost && grants:
			s = append(s, "Granted "+r.label(e.h))
		}
	}
	return strings.Join(s, ", ")
}

// finish releases everything and checks that the table is empty again.
func (r *scriptRun) finish() {
	r.t.Helper()
	for label, o := range r.owners {
		r.tb.ReleaseAll(o)
		if n := o.Count(); n != 0 {
			r.t.Errorf("owner %s: Count = %d after ReleaseAll", label, n)
		}
	}
	checkEmpty(r.t, r.tb)
}

// listAll lists all of name's parties, page pages at a time, and checks
// the pages fit together.
func listAll(t *testing.T, tb table.Table, name string, page int) (table.LockInfo, bool) {
	t.Helper()
	var all, li table.LockInfo
	var cur table.Cursor
	for calls := 0; ; calls++ {
		next, ok := tb.List(name, cur, page, &li)
		if !ok {
			if calls > 0 {
				t.Fatalf("List(%q) = false in the middle of a listing nobody changed", name)
			}
			return all, false
		}
		if n := len(li.Holders) + len(li.Waiters); n > page {
			t.Fatalf("List(%q, max %d) returned %d parties", name, page, n)
		}
		if len(li.Holders) > 0 && cur.Waiters() {
			t.Fatalf("List(%q) returned holders after its cursor passed them", name)
		}
		if calls == 0 {
			all.Name, all.Mode, all.Limit, all.Token = li.Name, li.Mode, li.Limit, li.Token
		} else if li.Name != all.Name || li.Mode != all.Mode || li.Limit != all.Limit || li.Token != all.Token {
			t.Fatalf("List(%q): the name's data changed from page to page: %+v, then %+v", name, all, li)
		}
		all.Holders = append(all.Holders, li.Holders...)
		all.Waiters = append(all.Waiters, li.Waiters...)
		if next.Done() {
			return all, true
		}
		if len(li.Holders)+len(li.Waiters) == 0 {
			t.Fatalf("List(%q, max %d): no party, and the cursor is not done", name, page)
		}
		if calls > 1_000_000 {
			t.Fatalf("List(%q) never ends", name)
		}
		cur = next
	}
}

func partyIDs(ps []table.Party) string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ClientID
	}
	return strings.Join(ids, " ")
}

func modeName(m table.Mode) string {
	switch m {
	case table.Exclusive:
		return "exclusive"
	case table.Shared:
		return "shared"
	}
	return fmt.Sprintf("mode(%d)", m)
}

func resultName(r table.Result) string {
	switch r {
	case table.Granted:
		return "Granted"
	case table.Queued:
		return "Queued"
	case table.NotGranted:
		return "NotGranted"
	case table.Refused:
		return "Refused"
	}
	return fmt.Sprintf("Result(%d)", r)
}
