package lockd_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
)

// The reference model: one name is two slices, holders in grant order and
// waiters in arrival order, and every decision is a loop over them. It is
// written from the rules, not from the table's code:
//
//   - an exclusive request of size N fits while every holder is exclusive and
//     there are fewer than N of them; a shared one while every holder is shared;
//   - a new request is granted at once only when it fits and nobody waits;
//   - after a release or a withdrawal, waiters are granted from the front as
//     long as the front one fits;
//   - an exclusive request whose size differs from that of any exclusive
//     holder or waiter is refused.
type refReq struct {
	h     table.Holder // the table's holder for the same request
	name  string
	owner int
	mode  table.Mode
	limit int   // semaphore size; 1 for shared requests
	since int64 // clock when queued, then when granted
	token uint64
}

type refName struct {
	held  []*refReq
	queue []*refReq
	token uint64 // latest grant
}

func refLimit(mode table.Mode, limit int) int {
	if mode == table.Shared || limit < 1 {
		return 1
	}
	return limit
}

func (n *refName) fits(r *refReq) bool {
	for _, h := range n.held {
		if h.mode != r.mode {
			return false
		}
	}
	return r.mode == table.Shared || len(n.held) < r.limit
}

func (n *refName) sizeClash(r *refReq) bool {
	if r.mode != table.Exclusive {
		return false
	}
	for _, l := range [][]*refReq{n.held, n.queue} {
		for _, o := range l {
			if o.mode == table.Exclusive && o.limit != r.limit {
				return true
			}
		}
	}
	return false
}

// acquire decides r and applies the decision.
func (n *refName) acquire(r *refReq, wait bool, maxWaiters int) (table.Result, error) {
	switch {
	case n.sizeClash(r):
		return table.Refused, table.ErrLimitMismatch
	case len(n.queue) == 0 && n.fits(r):
		n.held = append(n.held, r)
		return table.Granted, nil
	case !wait:
		return table.NotGranted, nil
	case maxWaiters > 0 && len(n.queue) >= maxWaiters:
		return table.Refused, table.ErrQueueFull
	}
	n.queue = append(n.queue, r)
	return table.Queued, nil
}

// release removes r and returns whether it was held and whom that let in.
func (n *refName) release(r *refReq) (wasHeld bool, granted []*refReq) {
	if i := slices.Index(n.held, r); i >= 0 {
		n.held = slices.Delete(n.held, i, i+1)
		wasHeld = true
	} else if i := slices.Index(n.queue, r); i >= 0 {
		n.queue = slices.Delete(n.queue, i, i+1)
	} else {
		return false, nil
	}
	return wasHeld, n.serve()
}

// withdraw removes r if it waits, and returns whether it did and whom that
// let in.
func (n *refName) withdraw(r *refReq) (ok bool, granted []*refReq) {
	i := slices.Index(n.queue, r)
	if i < 0 {
		return false, nil
	}
	n.queue = slices.Delete(n.queue, i, i+1)
	return true, n.serve()
}

// breakAll removes every holder, and returns them and whom that let in.
func (n *refName) breakAll() (broken, granted []*refReq) {
	broken, n.held = n.held, nil
	return broken, n.serve()
}

// serve grants waiters from the front while the front one fits.
func (n *refName) serve() (granted []*refReq) {
	for len(n.queue) > 0 && n.fits(n.queue[0]) {
		granted = append(granted, n.queue[0])
		n.held = append(n.held, n.queue[0])
		n.queue = n.queue[1:]
	}
	return granted
}

func (n *refName) idle() bool { return len(n.held) == 0 && len(n.queue) == 0 }

// info is what Snapshot must say about n.
func (n *refName) info(name string, owners []table.Owner) table.LockInfo {
	li := table.LockInfo{Name: name, Mode: table.Exclusive, Limit: 1, Token: n.token}
	if len(n.held) > 0 {
		li.Mode = n.held[0].mode
	}
	for _, r := range n.held {
		if r.mode == table.Exclusive {
			li.Limit = r.limit
		}
		li.Holders = append(li.Holders, r.party(owners))
	}
	for _, r := range n.queue {
		if r.mode == table.Exclusive {
			li.Limit = r.limit
		}
		li.Waiters = append(li.Waiters, r.party(owners))
	}
	return li
}

func (r *refReq) party(owners []table.Owner) table.Party {
	return table.Party{Info: *owners[r.owner].Info(), Mode: r.mode, Limit: r.limit, Since: time.Unix(0, r.since), Token: r.token}
}

// matches reports whether li is what Snapshot must say about n; it is
// info+DeepEqual without the allocations, for the per-step comparison.
func (n *refName) matches(li *table.LockInfo, name string, owners []table.Owner) bool {
	mode, limit := table.Exclusive, 1
	if len(n.held) > 0 {
		mode = n.held[0].mode
	}
	same := func(ps []table.Party, rs []*refReq) bool {
		if len(ps) != len(rs) {
			return false
		}
		for i, r := range rs {
			if r.mode == table.Exclusive {
				limit = r.limit
			}
			if ps[i] != r.party(owners) {
				return false
			}
		}
		return true
	}
	return li.Name == name && same(li.Holders, n.held) && same(li.Waiters, n.queue) &&
		li.Mode == mode && li.Limit == limit && li.Token == n.token
}

// checkRules checks the safety rules on the model itself, so that a model
// and a table that agree cannot both be wrong in the same way unnoticed.
func (n *refName) checkRules() error {
	var excl, shared int
	for _, h := range n.held {
		if h.mode == table.Exclusive {
			excl++
			if excl > h.limit {
				return fmt.Errorf("%d exclusive holders with limit %d", excl, h.limit)
			}
		} else {
			shared++
		}
	}
	if excl > 0 && shared > 0 {
		return fmt.Errorf("%d exclusive and %d shared holders", excl, shared)
	}
	if len(n.queue) > 0 && n.fits(n.queue[0]) {
		return fmt.Errorf("the head of the queue fits but waits")
	}
	return nil
}

// The sequential differential test.

type modelOp struct {
	kind  string // acquire, release, cancel, break, double, relall, find
	owner int
	name  string
	mode  table.Mode
	limit int
	wait  bool
	req   *refReq
}

func (op modelOp) String() string {
	switch op.kind {
	case "acquire":
		return fmt.Sprintf("acquire o%d %s %v limit %d wait %v", op.owner, op.name, op.mode, op.limit, op.wait)
	case "relall", "find":
		return fmt.Sprintf("%s o%d %s", op.kind, op.owner, op.name)
	case "break":
		return "break " + op.name
	}
	h := op.req.h
	return fmt.Sprintf("%s %s's %v on %s (token %d)", op.kind, h.Owner().Info().ClientID, h.Mode(), op.name, h.Token())
}

type modelRun struct {
	t          *testing.T
	seed       uint64
	rng        *rand.Rand
	tb         *lockd.Table
	maxWaiters int
	clock      int64

	names  []string
	prefer map[string]int // each name's usual semaphore size
	ref    map[string]*refName
	owners []table.Owner
	count  []int // live requests per owner
	live   []*refReq
	dead   []table.Holder // released, for double releases

	notified []table.Holder // told by Granted during the current step
	broken   []table.Holder // told by Lost during the current step
	acquired uint64
	notAcq   uint64
	last     [16]modelOp // the latest ops, shown on failure
	step     int
}

func newModelRun(t *testing.T, seed uint64) *modelRun {
	rng := rand.New(rand.NewPCG(seed, 0x746e6c))
	m := &modelRun{
		t:      t,
		seed:   seed,
		rng:    rng,
		prefer: map[string]int{},
		ref:    map[string]*refName{},
	}
	m.maxWaiters = []int{0, 0, 1, 2, 4}[rng.IntN(5)]
	m.tb = lockd.New(lockd.Options{MaxWaiters: m.maxWaiters, Now: func() int64 { return m.clock }})
	for i := range 1 + rng.IntN(4) {
		name := fmt.Sprintf("n%d", i)
		m.names = append(m.names, name)
		m.prefer[name] = 1 + rng.IntN(3)
	}
	for i := range 2 + rng.IntN(7) {
		o := lockd.NewOwner(table.Info{ClientID: fmt.Sprintf("o%d", i), PID: i}, nil)
		lockd.SetNotifier(o, &modelNotifier{m, o})
		m.owners = append(m.owners, o)
	}
	m.count = make([]int, len(m.owners))
	return m
}

type modelNotifier struct {
	m *modelRun
	o table.Owner
}

func (n *modelNotifier) Granted(h table.Holder) {
	if h.Owner() != n.o {
		n.m.fail("Granted of %s for a holder of %s", n.o.Info().ClientID, h.Owner().Info().ClientID)
	}
	n.m.notified = append(n.m.notified, h)
}

func (n *modelNotifier) Lost(h table.Holder, _ error) {
	if h.Owner() != n.o {
		n.m.fail("Lost of %s for a holder of %s", n.o.Info().ClientID, h.Owner().Info().ClientID)
	}
	n.m.broken = append(n.m.broken, h)
}

func (m *modelRun) fail(format string, args ...any) {
	m.t.Helper()
	var b strings.Builder
	for i := max(0, m.step-len(m.last)+1); i <= m.step; i++ {
		fmt.Fprintf(&b, "\n  step %d: %v", i, m.last[i%len(m.last)])
	}
	m.t.Fatalf("seed %d, step %d: %s\nlatest operations:%s", m.seed, m.step, fmt.Sprintf(format, args...), b.String())
}

func (m *modelRun) name(n string) *refName {
	r := m.ref[n]
	if r == nil {
		r = &refName{}
		m.ref[n] = r
	}
	return r
}

func (m *modelRun) forgetIfIdle(n string) {
	if m.ref[n].idle() {
		delete(m.ref, n)
	}
}

// grant records that r was granted by the table as holder h.
func (m *modelRun) grant(name string, r *refReq) {
	n := m.ref[name]
	if r.h.Token() <= n.token {
		m.fail("grant on %s: token %d not above %d", name, r.h.Token(), n.token)
	}
	r.token, r.since, n.token = r.h.Token(), m.clock, r.h.Token()
	m.acquired++
}

func (m *modelRun) dropLive(r *refReq) {
	i := slices.Index(m.live, r)
	m.live[i] = m.live[len(m.live)-1]
	m.live = m.live[:len(m.live)-1]
	m.count[r.owner]--
	if len(m.dead) < 8 {
		m.dead = append(m.dead, r.h)
	} else {
		m.dead[m.rng.IntN(len(m.dead))] = r.h
	}
}

func (m *modelRun) pick() modelOp {
	rng := m.rng
	p := rng.IntN(100)
	if len(m.live) > 40 {
		p = 60 // keep the queues short enough for many steps per second
	}
	switch {
	case p < 50 || len(m.live) == 0:
		op := modelOp{kind: "acquire", owner: rng.IntN(len(m.owners)), name: m.names[rng.IntN(len(m.names))]}
		op.wait = rng.IntN(4) != 0
		if rng.IntN(2) == 0 {
			op.mode = table.Shared
			op.limit = rng.IntN(3) // ignored for shared requests
		} else if op.limit = m.prefer[op.name]; rng.IntN(10) == 0 {
			op.limit = rng.IntN(4) // 0..3: sometimes a clash
		}
		return op
	case p < 80:
		r := m.live[rng.IntN(len(m.live))]
		return modelOp{kind: "release", req: r, name: r.name}
	case p < 86:
		r := m.live[rng.IntN(len(m.live))]
		return modelOp{kind: "cancel", req: r, name: r.name}
	case p < 88:
		return modelOp{kind: "break", owner: -1, name: m.names[rng.IntN(len(m.names))]}
	case p < 92 && len(m.dead) > 0:
		h := m.dead[rng.IntN(len(m.dead))]
		return modelOp{kind: "double", req: &refReq{h: h, owner: -1}, name: h.Name()}
	case p < 95:
		return modelOp{kind: "relall", owner: rng.IntN(len(m.owners))}
	default:
		return modelOp{kind: "find", owner: rng.IntN(len(m.owners)), name: m.names[rng.IntN(len(m.names))]}
	}
}

// do runs op on both and compares the outcomes; it returns the names touched.
func (m *modelRun) do(op modelOp) []string {
	m.notified, m.broken = m.notified[:0], m.broken[:0]
	var want []*refReq // grants the model expects, in order
	var touched []string
	switch op.kind {
	case "acquire":
		r := &refReq{name: op.name, owner: op.owner, mode: op.mode, limit: refLimit(op.mode, op.limit), since: m.clock}
		n := m.name(op.name)
		wantRes, wantErr := n.acquire(r, op.wait, m.maxWaiters)
		h, res, err := m.tb.Acquire(m.owners[op.owner], table.Request{Name: op.name, Mode: op.mode, Limit: op.limit, Wait: op.wait})
		if res != wantRes || err != wantErr {
			m.fail("%v: got %v, %v; want %v, %v", op, res, err, wantRes, wantErr)
		}
		if (h != nil) != (res == table.Granted || res == table.Queued) {
			m.fail("%v: %v with holder %p", op, res, h)
		}
		switch res {
		case table.Granted, table.Queued:
			r.h = h
			m.live = append(m.live, r)
			m.count[op.owner]++
			if res == table.Granted {
				m.grant(op.name, r)
			} else if h.Token() != 0 {
				m.fail("%v: waiting with token %d", op, h.Token())
			}
		default:
			m.notAcq++
		}
		m.forgetIfIdle(op.name)
		touched = append(touched, op.name)
	case "release", "double":
		var wasHeld bool
		if n := m.ref[op.name]; n != nil && op.kind == "release" {
			wasHeld, want = n.release(op.req)
			m.dropLive(op.req)
		}
		if got := m.tb.Release(op.req.h); got != wasHeld {
			m.fail("%v: Release = %v, want %v", op, got, wasHeld)
		}
		touched = append(touched, op.name)
	case "cancel":
		ok, g := m.ref[op.name].withdraw(op.req)
		if ok {
			m.dropLive(op.req)
		}
		if got := m.tb.Cancel(op.req.h); got != ok {
			m.fail("%v: Cancel = %v, want %v", op, got, ok)
		}
		want = g
		touched = append(touched, op.name)
	case "break":
		var broken []*refReq
		if n := m.ref[op.name]; n != nil {
			broken, want = n.breakAll()
		}
		for _, r := range broken {
			m.dropLive(r)
		}
		if got := m.tb.Break(op.name); got != len(broken) {
			m.fail("%v: Break = %d, want %d", op, got, len(broken))
		}
		if len(m.broken) != len(broken) {
			m.fail("%v: told %d holders, want %d", op, len(m.broken), len(broken))
		}
		for i, r := range broken {
			if m.broken[i] != r.h {
				m.fail("%v: told %v, want %v", op, m.holderNames(m.broken), m.reqNames(broken))
			}
		}
		touched = append(touched, op.name)
	case "relall":
		// The model releases in any order it likes: each release only
		// grants waiters of other owners or of this one (withdrawn next),
		// and the grants of different names are independent. So compare
		// the set of grants, and per name their order.
		o := m.owners[op.owner]
		for _, r := range slices.Clone(m.live) {
			if r.owner != op.owner {
				continue
			}
			name := r.name
			_, g := m.ref[name].release(r)
			want = append(want, g...)
			m.dropLive(r)
			touched = append(touched, name)
		}
		m.tb.ReleaseAll(o)
		// Grants to requests of o itself happen or not depending on the
		// order; they are released right away in either case, but the
		// table counts them.
		want = slices.DeleteFunc(want, func(r *refReq) bool { return r.owner == op.owner })
		n := len(m.notified)
		m.notified = slices.DeleteFunc(m.notified, func(h table.Holder) bool { return h.Owner() == o })
		m.acquired += uint64(n - len(m.notified))
		if !sameGrantsPerName(m.notified, want) {
			m.fail("%v: granted %v, want %v", op, m.holderNames(m.notified), m.reqNames(want))
		}
		slices.SortFunc(want, func(a, b *refReq) int { return slices.Index(m.notified, a.h) - slices.Index(m.notified, b.h) })
		for _, r := range want {
			m.grant(r.name, r)
		}
		slices.Sort(touched)
		touched = slices.Compact(touched)
		for _, name := range touched {
			m.forgetIfIdle(name)
		}
		return touched
	case "find":
		h := m.tb.Find(m.owners[op.owner], op.name)
		var mine []table.Holder
		if n := m.ref[op.name]; n != nil {
			for _, r := range slices.Concat(n.held, n.queue) {
				if r.owner == op.owner {
					mine = append(mine, r.h)
				}
			}
		}
		if (h == nil) != (len(mine) == 0) || (h != nil && !slices.Contains(mine, h)) {
			m.fail("%v: got %p, want one of %v", op, h, mine)
		}
		return nil
	}
	if len(m.notified) != len(want) {
		m.fail("%v: granted %v, want %v", op, m.holderNames(m.notified), m.reqNames(want))
	}
	for i, r := range want {
		if m.notified[i] != r.h {
			m.fail("%v: granted %v, want %v", op, m.holderNames(m.notified), m.reqNames(want))
		}
		m.grant(op.name, r)
	}
	if _, ok := m.ref[op.name]; ok {
		m.forgetIfIdle(op.name)
	}
	return touched
}

// sameGrantsPerName reports whether got and want hold the same holders and,
// per name, in the same order.
func sameGrantsPerName(got []table.Holder, want []*refReq) bool {
	if len(got) != len(want) {
		return false
	}
	per := map[string][]table.Holder{}
	for _, h := range got {
		per[h.Name()] = append(per[h.Name()], h)
	}
	for _, r := range want {
		l := per[r.h.Name()]
		if len(l) == 0 || l[0] != r.h {
			return false
		}
		per[r.h.Name()] = l[1:]
	}
	return true
}

func (m *modelRun) holderNames(hs []table.Holder) []string {
	var s []string
	for _, h := range hs {
		s = append(s, fmt.Sprintf("%s:%s:%v", h.Name(), h.Owner().Info().ClientID, h.Mode()))
	}
	return s
}

func (m *modelRun) reqNames(rs []*refReq) []string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%s:o%d:%v", r.h.Name(), r.owner, r.mode))
	}
	return s
}

// compare checks the holders and waiters of the given names (all when nil)
// against the model.
func (m *modelRun) compare(names []string) {
	got := m.tb.Snapshot(names, 0)
	if names == nil {
		names = m.names // sorted
	}
	ok, i := true, 0
	for _, name := range names {
		n := m.ref[name]
		if n == nil {
			continue
		}
		if err := n.checkRules(); err != nil {
			m.fail("model of %s: %v", name, err)
		}
		if i >= len(got) || !n.matches(&got[i], name, m.owners) {
			ok = false
		}
		i++
	}
	if !ok || i != len(got) {
		var want []table.LockInfo
		for _, name := range names {
			if n := m.ref[name]; n != nil {
				want = append(want, n.info(name, m.owners))
			}
		}
		m.fail("Snapshot(%v):\n got %+v\nwant %+v", names, got, want)
	}
}

// counts checks the counters and the count of owner o (all owners when o
// is -1): cheap enough for every step, and a grant or loss that nobody was
// told about shows here at once.
func (m *modelRun) counts(o int) {
	var held, waiting int64
	for _, n := range m.ref {
		held += int64(len(n.held))
		waiting += int64(len(n.queue))
	}
	wantC := table.Counters{Acquired: m.acquired, NotAcquired: m.notAcq, Held: held, Waiting: waiting, Names: int64(len(m.ref))}
	if c := m.tb.Counters(); c != wantC {
		m.fail("Counters = %+v, want %+v", c, wantC)
	}
	for i, ow := range m.owners {
		if (o == -1 || o == i) && ow.Count() != m.count[i] {
			m.fail("o%d: Count = %d, want %d", i, ow.Count(), m.count[i])
		}
	}
}

func (m *modelRun) run(steps int) {
	for m.step = 0; m.step < steps; m.step++ {
		m.clock = int64(m.step + 1)
		op := m.pick()
		m.last[m.step%len(m.last)] = op
		touched := m.do(op)
		if op.req != nil {
			m.counts(op.req.owner)
		} else {
			m.counts(op.owner)
		}
		// Results, grants, tokens and counts are compared after every
		// step; whole holder and waiter lists every few steps, because a
		// Snapshot per step would triple the time under -race.
		switch {
		case m.step%1024 == 0:
			m.counts(-1)
			m.compare(nil)
		case touched != nil && (m.step%8 == 0 || op.kind == "relall"):
			m.compare(touched)
		}
	}
	// Release everything; the table must be empty again.
	for i := range m.owners {
		m.step++
		op := modelOp{kind: "relall", owner: i}
		m.last[m.step%len(m.last)] = op
		m.do(op)
	}
	m.counts(-1)
	m.compare(nil)
	if len(m.ref) != 0 || len(m.live) != 0 {
		m.fail("model not empty: %d names, %d live", len(m.ref), len(m.live))
	}
	checkEmpty(m.t, m.tb)
}

// TestModel drives the table and the reference model with the same random
// operations and compares them after every one: results, grants (also those
// delivered through Granted, in order), tokens, holders and waiters of the
// names touched, counters.
func TestModel(t *testing.T) {
	const seeds, steps = 40, 25_000 // 1,000,000 operations
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			newModelRun(t, seed).run(steps)
		})
	}
}
