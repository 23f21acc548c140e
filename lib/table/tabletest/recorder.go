package tabletest

import (
	"sync"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/table"
)

// deadline bounds every wait of the suite. It is a failure detector, not a
// synchronisation: a passing table never makes the suite wait for it.
const deadline = 10 * time.Second

// event is one call of a Notifier.
type event struct {
	lost  bool // Lost; else Granted
	h     table.Holder
	token uint64 // h.Token() during the call
	why   error  // Lost's reason
	to    table.Owner
}

// recorder keeps the events of all the owners of one test, in the order
// they were told. It is safe for concurrent use.
type recorder struct {
	mu     sync.Mutex
	events []event
	signal chan struct{} // a token when events grew
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) add(e event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// take returns the events told so far and forgets them.
func (r *recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

// wait waits until at least n events were told, or the deadline, and then
// takes them all.
func (r *recorder) wait(n int) []event {
	return r.waitUntil(func(evs []event) bool { return len(evs) >= n })
}

// waitUntil waits until done is true of the events told so far, or the
// deadline, and then takes them all.
func (r *recorder) waitUntil(done func([]event) bool) []event {
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ok := done(r.events)
		r.mu.Unlock()
		if ok {
			return r.take()
		}
		select {
		case <-r.signal:
		case <-timer.C:
			return r.take()
		}
	}
}

// notifier is the Notifier of one owner: it records what it is told, and
// checks that it is told only of its own owner's holders.
type notifier struct {
	t   *testing.T
	rec *recorder
	o   table.Owner // set right after NewOwner, before any Acquire
	// onGranted and onLost, when set, run inside the calls, after the
	// event is recorded.
	onGranted func(h table.Holder)
	onLost    func(h table.Holder, why error)
}

func (n *notifier) Granted(h table.Holder) {
	if h.Owner() != n.o {
		n.t.Errorf("Granted of %s told to the Notifier of %s", ownerName(h.Owner()), ownerName(n.o))
	}
	n.rec.add(event{h: h, token: h.Token(), to: n.o})
	if n.onGranted != nil {
		n.onGranted(h)
	}
}

func (n *notifier) Lost(h table.Holder, why error) {
	if h.Owner() != n.o {
		n.t.Errorf("Lost of %s told to the Notifier of %s", ownerName(h.Owner()), ownerName(n.o))
	}
	n.rec.add(event{lost: true, h: h, token: h.Token(), why: why, to: n.o})
	if n.onLost != nil {
		n.onLost(h, why)
	}
}

// newOwner makes an owner whose Notifier records into rec.
func newOwner(t *testing.T, tb table.Table, rec *recorder, info table.Info) (table.Owner, *notifier) {
	n := &notifier{t: t, rec: rec}
	n.o = tb.NewOwner(info, n)
	if n.o == nil {
		t.Fatalf("NewOwner(%+v) returned nil", info)
	}
	return n.o, n
}

func ownerName(o table.Owner) string {
	if o == nil {
		return "<nil owner>"
	}
	if i := o.Info(); i != nil {
		return i.ClientID
	}
	return "<owner without Info>"
}

// within waits for done to be closed, or fails t after the deadline,
// saying what did not finish.
func within(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	withinFor(t, done, deadline, what)
}

func withinFor(t *testing.T, done <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
}

// checkEmpty checks that tb holds nothing: no holders, waiters or names in
// the counters, and nothing to list.
func checkEmpty(t *testing.T, tb table.Table) {
	t.Helper()
	c := tb.Counters()
	if c.Held != 0 || c.Waiting != 0 || c.Names != 0 {
		t.Errorf("empty table: Counters = %+v, want Held, Waiting and Names 0", c)
	}
	if names, more := tb.FirstNames(nil, 10); len(names) != 0 || more {
		t.Errorf("empty table: FirstNames = %q, %v; want none", names, more)
	}
}
