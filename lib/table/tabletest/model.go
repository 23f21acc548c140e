package tabletest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tnl-lock/tnl/lib/table"
)

// The reference model: one name is two slices, holders in grant order and
// waiters in arrival order, and every decision is a loop over them. It is
// written from the rules of package table, not from any table's code:
//
//   - an exclusive request of size N fits while every holder is exclusive and
//     there are fewer than N of them; a shared one while every holder is shared;
//   - a new request is granted at once only when it fits and nobody waits;
//   - after a release, a withdrawal or a break, waiters are granted from the
//     front as long as the front one fits;
//   - an exclusive request whose size differs from that of any exclusive
//     holder or waiter is refused.
type modelReq struct {
	h     table.Holder // the table's holder for the same request
	name  string
	owner int
	mode  table.Mode
	limit int // semaphore size; 1 for shared requests
	token uint64
}

type modelName struct {
	held  []*modelReq
	queue []*modelReq
}

func modelLimit(mode table.Mode, limit int) int {
	if mode == table.Shared || limit < 1 {
		return 1
	}
	return limit
}

func (n *modelName) fits(r *modelReq) bool {
	for _, h := range n.held {
		if h.mode != r.mode {
			return false
		}
	}
	return r.mode == table.Shared || len(n.held) < r.limit
}

func (n *modelName) sizeClash(r *modelReq) bool {
	if r.mode != table.Exclusive {
		return false
	}
	for _, o := range slices.Concat(n.held, n.queue) {
		if o.mode == table.Exclusive && o.limit != r.limit {
			return true
		}
	}
	return false
}

// acquire decides r and applies the decision.
func (n *modelName) acquire(r *modelReq, wait bool) (table.Result, error) {
	switch {
	case n.sizeClash(r):
		return table.Refused, table.ErrLimitMismatch
	case len(n.queue) == 0 && n.fits(r):
		n.held = append(n.held, r)
		return table.Granted, nil
	case !wait:
		return table.NotGranted, nil
	}
	n.queue = append(n.queue, r)
	return table.Queued, nil
}

// release removes r and returns whether it was held and whom that let in.
func (n *modelName) release(r *modelReq) (wasHeld bool, granted []*modelReq) {
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
func (n *modelName) withdraw(r *modelReq) (ok bool, granted []*modelReq) {
	i := slices.Index(n.queue, r)
	if i < 0 {
		return false, nil
	}
	n.queue = slices.Delete(n.queue, i, i+1)
	return true, n.serve()
}

// breakAll removes every holder, and returns them and whom that let in.
func (n *modelName) breakAll() (broken, granted []*modelReq) {
	broken, n.held = n.held, nil
	return broken, n.serve()
}

// serve grants waiters from the front while the front one fits.
func (n *modelName) serve() (granted []*modelReq) {
	for len(n.queue) > 0 && n.fits(n.queue[0]) {
		granted = append(granted, n.queue[0])
		n.held = append(n.held, n.queue[0])
		n.queue = n.queue[1:]
	}
	return granted
}

func (n *modelName) idle() bool { return len(n.held) == 0 && len(n.queue) == 0 }

// checkRules checks the safety rules on the model itself, so that a model
// and a table that agree cannot both be wrong in the same way unnoticed.
func (n *modelName) checkRules() error {
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
	kind  string // acquire, release, cancel, timeout, break, double, relall, find
	owner int
	name  string
	mode  table.Mode
	limit int
	wait  bool
	req   *modelReq
	h     table.Holder // double: a holder that is gone
}

func (op modelOp) String() string {
	switch op.kind {
	case "acquire":
		return fmt.Sprintf("acquire o%d %q %s limit %d wait %v", op.owner, op.name, modeName(op.mode), op.limit, op.wait)
	case "relall":
		return fmt.Sprintf("release-all o%d", op.owner)
	case "find":
		return fmt.Sprintf("find o%d %q", op.owner, op.name)
	case "break":
		return fmt.Sprintf("break %q", op.name)
	case "double":
		return fmt.Sprintf("release, cancel and held of a gone holder of %s on %q", ownerName(op.h.Owner()), op.h.Name())
	}
	r := op.req
	return fmt.Sprintf("%s o%d's %s limit %d on %q (token %d)", op.kind, r.owner, modeName(r.mode), r.limit, r.name, r.token)
}

type modelRun struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	tb   table.Table
	rec  *recorder

	names   []string       // sorted
	prefer  map[string]int // each name's usual semaphore size
	ref     map[string]*modelName
	owners  []table.Owner
	infos   []table.Info
	count   []int // live requests per owner
	live    []*modelReq
	dead    []table.Holder    // gone, for double releases
	lastTok map[string]uint64 // per name, never forgotten
	byH     map[table.Holder]*modelReq

	acquired uint64
	notAcq   uint64
	last     [16]modelOp // the latest ops, shown on failure
	step     int
}

func newModelRun(t *testing.T, tb table.Table, seed uint64) *modelRun {
	rng := rand.New(rand.NewPCG(seed, 0x746e6c))
	m := &modelRun{
		t:       t,
		seed:    seed,
		rng:     rng,
		tb:      tb,
		rec:     newRecorder(),
		prefer:  map[string]int{},
		ref:     map[string]*modelName{},
		lastTok: map[string]uint64{},
		byH:     map[table.Holder]*modelReq{},
	}
	for i := range 1 + rng.IntN(4) {
		name := fmt.Sprintf("n%d", i)
		m.names = append(m.names, name)
		m.prefer[name] = 1 + rng.IntN(3)
	}
	for i := range 2 + rng.IntN(7) {
		info := table.Info{ClientID: fmt.Sprintf("o%d", i), Host: fmt.Sprintf("h%d", i%3), PID: 1000 + i, Addr: fmt.Sprintf("10.0.0.%d:%d", i, 4000+i)}
		o, _ := newOwner(t, tb, m.rec, info)
		m.owners = append(m.owners, o)
		m.infos = append(m.infos, info)
	}
	m.count = make([]int, len(m.owners))
	return m
}

func (m *modelRun) fail(format string, args ...any) {
	m.t.Helper()
	var b strings.Builder
	for i := max(0, m.step-len(m.last)+1); i <= m.step; i++ {
		fmt.Fprintf(&b, "\n  step %d: %v", i, m.last[i%len(m.last)])
	}
	m.t.Fatalf("seed %d, step %d: %s\nlatest operations:%s", m.seed, m.step, fmt.Sprintf(format, args...), b.String())
}

func (m *modelRun) name(n string) *modelName {
	r := m.ref[n]
	if r == nil {
		r = &modelName{}
		m.ref[n] = r
	}
	return r
}

func (m *modelRun) forgetIfIdle(n string) {
	if r := m.ref[n]; r != nil && r.idle() {
		delete(m.ref, n)
	}
}

// grant records that r was granted with token tok.
func (m *modelRun) grant(r *modelReq, tok uint64) {
	m.t.Helper()
	if tok <= m.lastTok[r.name] {
		m.fail("grant of o%d's %s on %q: token %d, not above the %d granted before", r.owner, modeName(r.mode), r.name, tok, m.lastTok[r.name])
	}
	if got := r.h.Token(); got != tok {
		m.fail("grant of o%d's %s on %q: told with token %d, Token() = %d", r.owner, modeName(r.mode), r.name, tok, got)
	}
	r.token, m.lastTok[r.name] = tok, tok
	m.acquired++
}

func (m *modelRun) dropLive(r *modelReq) {
	i := slices.Index(m.live, r)
	m.live[i] = m.live[len(m.live)-1]
	m.live = m.live[:len(m.live)-1]
	m.count[r.owner]--
	delete(m.byH, r.h)
	if len(m.dead) < 8 {
		m.dead = append(m.dead, r.h)
	} else {
		m.dead[m.rng.IntN(len(m.dead))] = r.h
	}
}

// mine is o's live request on name, or nil: the model keeps at most one
// per owner and name, so that Find has one answer and ReleaseAll's grants
// do not depend on the order it releases in.
func (m *modelRun) mine(o int, name string) *modelReq {
	for _, r := range m.live {
		if r.owner == o && r.name == name {
			return r
		}
	}
	return nil
}

func (m *modelRun) pick() modelOp {
	rng := m.rng
	p := rng.IntN(100)
	if len(m.live) > 30 {
		p = 60 // keep the queues short enough for many steps per second
	}
	switch {
	case p < 50 || len(m.live) == 0:
		op := modelOp{kind: "acquire", owner: rng.IntN(len(m.owners)), name: m.names[rng.IntN(len(m.names))]}
		if m.mine(op.owner, op.name) != nil {
			op.kind = "find"
			return op
		}
		op.wait = rng.IntN(4) != 0
		if rng.IntN(2) == 0 {
			op.mode = table.Shared
			op.limit = rng.IntN(3) // means nothing for a shared request
		} else if op.limit = m.prefer[op.name]; rng.IntN(10) == 0 {
			op.limit = rng.IntN(4) // 0..3: sometimes a clash
		}
		return op
	case p < 78:
		r := m.live[rng.IntN(len(m.live))]
		return modelOp{kind: "release", req: r, name: r.name}
	case p < 83:
		r := m.live[rng.IntN(len(m.live))]
		return modelOp{kind: "cancel", req: r, name: r.name}
	case p < 86:
		r := m.live[rng.IntN(len(m.live))]
		return modelOp{kind: "timeout", req: r, name: r.name}
	case p < 89:
		return modelOp{kind: "break", owner: -1, name: m.names[rng.IntN(len(m.names))]}
	case p < 92 && len(m.dead) > 0:
		h := m.dead[rng.IntN(len(m.dead))]
		return modelOp{kind: "double", h: h, owner: -1, name: h.Name()}
	case p < 95:
		return modelOp{kind: "relall", owner: rng.IntN(len(m.owners))}
	default:
		return modelOp{kind: "find", owner: rng.IntN(len(m.owners)), name: m.names[rng.IntN(len(m.names))]}
	}
}

// do runs op on both and compares the outcomes; it returns the names touched.
func (m *modelRun) do(op modelOp) []string {
	if stray := m.rec.take(); len(stray) > 0 {
		m.fail("before %v: %d notifications told after the previous step had returned and been told, e.g. to %s", op, len(stray), ownerName(stray[0].to))
	}
	var want, broken []*modelReq // grants the model expects, in order; losses
	switch op.kind {
	case "acquire":
		r := &modelReq{name: op.name, owner: op.owner, mode: op.mode, limit: modelLimit(op.mode, op.limit)}
		wantRes, wantErr := m.name(op.name).acquire(r, op.wait)
		h, res, err := m.tb.Acquire(m.owners[op.owner], table.Request{Name: op.name, Mode: op.mode, Limit: op.limit, Wait: op.wait})
		if res != wantRes || !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			m.fail("%v: got %v, %v; want %v, %v", op, resultName(res), err, resultName(wantRes), wantErr)
		}
		if (h != nil) != (res == table.Granted || res == table.Queued) {
			m.fail("%v: %v with holder %v", op, resultName(res), h)
		}
		switch res {
		case table.Granted, table.Queued:
			if h.Name() != op.name || h.Mode() != op.mode || h.Owner() != m.owners[op.owner] {
				m.fail("%v: holder of %q %s by %s", op, h.Name(), modeName(h.Mode()), ownerName(h.Owner()))
			}
			r.h = h
			m.byH[h] = r
			m.live = append(m.live, r)
			m.count[op.owner]++
			if res == table.Granted {
				m.grant(r, h.Token())
			} else if h.Token() != 0 {
				m.fail("%v: waiting with token %d", op, h.Token())
			}
			if m.tb.Held(h) != (res == table.Granted) {
				m.fail("%v: Held = %v", op, !(res == table.Granted))
			}
		default:
			m.notAcq++
		}
		m.forgetIfIdle(op.name)
		m.told(op, m.rec.take(), nil, nil)
		return []string{op.name}
	case "release":
		wasHeld, g := m.ref[op.name].release(op.req)
		m.dropLive(op.req)
		if got := m.tb.Release(op.req.h); got != wasHeld {
			m.fail("%v: Release = %v, want %v", op, got, wasHeld)
		}
		if m.tb.Held(op.req.h) {
			m.fail("%v: held after Release", op)
		}
		m.told(op, m.rec.take(), g, nil) // told before Release returns
		m.forgetIfIdle(op.name)
		return []string{op.name}
	case "cancel", "timeout":
		ok, g := m.ref[op.name].withdraw(op.req)
		if ok {
			m.dropLive(op.req)
		}
		if got := m.tb.Cancel(op.req.h); got != ok {
			m.fail("%v: Cancel = %v, want %v", op, got, ok)
		}
		if got := m.tb.Held(op.req.h); got == ok {
			m.fail("%v: Held = %v after Cancel = %v", op, got, ok)
		}
		if ok && op.kind == "timeout" {
			m.tb.CountTimeout()
			m.notAcq++
		}
		m.told(op, m.rec.wait(len(g)), g, nil)
		m.forgetIfIdle(op.name)
		return []string{op.name}
	case "break":
		if n := m.ref[op.name]; n != nil {
			broken, want = n.breakAll()
		}
		for _, r := range broken {
			m.dropLive(r)
		}
		if got := m.tb.Break(op.name); got != len(broken) {
			m.fail("%v: Break = %d, want %d", op, got, len(broken))
		}
		m.told(op, m.rec.wait(len(broken)+len(want)), want, broken)
		for _, r := range broken {
			if m.tb.Held(r.h) {
				m.fail("%v: a broken holder of o%d is still held", op, r.owner)
			}
		}
		m.forgetIfIdle(op.name)
		return []string{op.name}
	case "double":
		if m.tb.Release(op.h) || m.tb.Cancel(op.h) || m.tb.Held(op.h) {
			m.fail("%v: Release, Cancel or Held reported it", op)
		}
		m.told(op, m.rec.take(), nil, nil)
		return nil
	case "relall":
		// Each name's grants come in FIFO order, the names in any order.
		var touched []string
		for _, r := range slices.Clone(m.live) {
			if r.owner != op.owner {
				continue
			}
			_, g := m.ref[r.name].release(r)
			want = append(want, g...)
			m.dropLive(r)
			touched = append(touched, r.name)
		}
		m.tb.ReleaseAll(m.owners[op.owner])
		if n := m.owners[op.owner].Count(); n != 0 {
			m.fail("%v: Count = %d after ReleaseAll", op, n)
		}
		slices.SortStableFunc(want, func(a, b *modelReq) int { return strings.Compare(a.name, b.name) })
		evs := m.rec.wait(len(want))
		slices.SortStableFunc(evs, func(a, b event) int { return strings.Compare(a.h.Name(), b.h.Name()) })
		m.told(op, evs, want, nil)
		for _, name := range touched {
			m.forgetIfIdle(name)
		}
		return touched
	case "find":
		h := m.tb.Find(m.owners[op.owner], op.name)
		r := m.mine(op.owner, op.name)
		if (h == nil) != (r == nil) || (h != nil && h != r.h) {
			m.fail("%v: got a holder %v, want %v", op, h != nil, r != nil)
		}
		return nil
	}
	m.fail("unknown op %q", op.kind)
	return nil
}

// told compares what the Notifiers were told during op with the grants
// and losses the model expects.
func (m *modelRun) told(op modelOp, evs []event, grants, lost []*modelReq) {
	m.t.Helper()
	var gotG, gotL []event
	for _, e := range evs {
		if e.lost {
			gotL = append(gotL, e)
		} else {
			gotG = append(gotG, e)
		}
	}
	if len(gotG) != len(grants) || len(gotL) != len(lost) {
		m.fail("%v: told %d grants and %d losses, want %d and %d (grants %s, want %s)", op,
			len(gotG), len(gotL), len(grants), len(lost), m.eventNames(gotG), m.reqNames(grants))
	}
	for i, r := range grants {
		if gotG[i].h != r.h {
			m.fail("%v: granted %s, want %s (FIFO)", op, m.eventNames(gotG), m.reqNames(grants))
		}
		m.grant(r, gotG[i].token)
		if !m.tb.Held(r.h) {
			m.fail("%v: o%d told Granted, but not held", op, r.owner)
		}
	}
	for _, e := range gotL {
		if !slices.ContainsFunc(lost, func(r *modelReq) bool { return r.h == e.h }) {
			m.fail("%v: told Lost to %s, want %s", op, m.eventNames(gotL), m.reqNames(lost))
		}
		if !errors.Is(e.why, table.ErrBroken) {
			m.fail("%v: Lost with %v, want an error that is ErrBroken", op, e.why)
		}
	}
	for _, r := range lost {
		if !slices.ContainsFunc(gotL, func(e event) bool { return e.h == r.h }) {
			m.fail("%v: told Lost to %s, want %s", op, m.eventNames(gotL), m.reqNames(lost))
		}
	}
}

func (m *modelRun) eventNames(evs []event) string {
	var s []string
	for _, e := range evs {
		r := m.byH[e.h]
		if r == nil {
			s = append(s, fmt.Sprintf("%s:%s:gone", e.h.Name(), ownerName(e.to)))
			continue
		}
		s = append(s, fmt.Sprintf("%s:o%d:%s", r.name, r.owner, modeName(r.mode)))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func (m *modelRun) reqNames(rs []*modelReq) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%s:o%d:%s", r.name, r.owner, modeName(r.mode)))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// compare checks the listing of the given names against the model.
func (m *modelRun) compare(names []string) {
	for _, name := range names {
		n := m.ref[name]
		if n != nil {
			if err := n.checkRules(); err != nil {
				m.fail("model of %q: %v", name, err)
			}
		}
		li, ok := listAll(m.t, m.tb, name, 1+m.rng.IntN(4))
		if ok != (n != nil) {
			m.fail("List(%q) = %v, want %v", name, ok, n != nil)
		}
		if n == nil {
			continue
		}
		mode, limit := table.Exclusive, 1
		if len(n.held) > 0 {
			mode = n.held[0].mode
		}
		same := func(ps []table.Party, rs []*modelReq) bool {
			if len(ps) != len(rs) {
				return false
			}
			for i, r := range rs {
				if r.mode == table.Exclusive {
					limit = r.limit
				}
				p := ps[i]
				if p.Info != m.infos[r.owner] || p.Mode != r.mode || p.Limit != r.limit || p.Token != r.token || p.Since.IsZero() {
					return false
				}
			}
			return true
		}
		if !same(li.Holders, n.held) || !same(li.Waiters, n.queue) || li.Name != name || li.Mode != mode || li.Limit != limit || li.Token != m.lastTok[name] {
			m.fail("List(%q):\n got %+v\nwant %s", name, li, m.describe(name, n))
		}
	}
}

func (m *modelRun) describe(name string, n *modelName) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name %q token %d holders", name, m.lastTok[name])
	for _, r := range n.held {
		fmt.Fprintf(&b, " o%d:%s:%d:%d", r.owner, modeName(r.mode), r.limit, r.token)
	}
	b.WriteString(" waiters")
	for _, r := range n.queue {
		fmt.Fprintf(&b, " o%d:%s:%d", r.owner, modeName(r.mode), r.limit)
	}
	return b.String()
}

// counts checks the counters, the owners' counts and FirstNames: cheap
// enough for every step, and a grant or loss that nobody was told about
// shows here at once.
func (m *modelRun) counts() {
	var held, waiting int64
	for _, n := range m.ref {
		held += int64(len(n.held))
		waiting += int64(len(n.queue))
	}
	want := table.Counters{Acquired: m.acquired, NotAcquired: m.notAcq, Held: held, Waiting: waiting, Names: int64(len(m.ref))}
	if c := m.tb.Counters(); c != want {
		m.fail("Counters = %+v, want %+v", c, want)
	}
	for i, o := range m.owners {
		if o.Count() != m.count[i] {
			m.fail("o%d: Count = %d, want %d", i, o.Count(), m.count[i])
		}
	}
	var names []string
	for _, name := range m.names {
		if m.ref[name] != nil {
			names = append(names, name)
		}
	}
	max := 1 + m.rng.IntN(len(m.names)+1)
	got, more := m.tb.FirstNames(nil, max)
	if w := names[:min(max, len(names))]; !slices.Equal(got, w) || more != (len(names) > max) {
		m.fail("FirstNames(nil, %d) = %q, %v; want %q, %v", max, got, more, w, len(names) > max)
	}
}

func (m *modelRun) run(steps int) {
	for m.step = 0; m.step < steps; m.step++ {
		op := m.pick()
		m.last[m.step%len(m.last)] = op
		touched := m.do(op)
		m.counts()
		if m.step%64 == 0 {
			m.compare(m.names)
		} else {
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
	m.counts()
	m.compare(m.names)
	if len(m.ref) != 0 || len(m.live) != 0 {
		m.fail("model not empty: %d names, %d live", len(m.ref), len(m.live))
	}
	checkEmpty(m.t, m.tb)
}

// testModel drives tables and the reference model with the same seeded
// random operations and compares them after every one: results, grants
// and losses (in order), tokens, counters, owners' counts, the names
// listed, and the holders and waiters of the names touched.
func testModel(t *testing.T, newTable func(t *testing.T) table.Table) {
	seeds, steps := 16, 5000
	if testing.Short() {
		seeds, steps = 4, 1000
	}
	for seed := range uint64(seeds) {
		ok := t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			newModelRun(t, newTable(t), seed).run(steps)
		})
		if !ok {
			break // one seed's story is enough; the others would wait their deadlines too
		}
	}
}
