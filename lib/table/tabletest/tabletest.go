// Package tabletest is the conformance suite of table.Table: the tests
// every lock table passes, whatever keeps its locks, so that the server
// cannot tell one implementation from another.
//
// A backend runs it from one of its own tests, with a constructor that
// returns a fresh, empty, healthy table for each subtest:
//
//	func TestConformance(t *testing.T) {
//		tabletest.Run(t, func(t *testing.T) table.Table {
//			return lockd.New(lockd.Options{})
//		})
//	}
//
// The constructor may use t (t.TempDir, t.Cleanup) to set up and tear down
// what the table needs. Run checks what the table package documents:
// exclusive, shared and semaphore grants, FIFO queueing without barging,
// limit agreement, Release, Cancel, ReleaseAll, Find, Held and Break,
// fencing tokens, Owner.Count and Info, listing with FirstNames and List,
// the counters, Notifiers that call back into the table, leases (grant at
// once and from the queue, no owner once granted, Renew, ReleaseLease and
// LookupLease by key, expiry that grants the next waiter, the maximum
// hold, shared and semaphore leases, Break, their listing and counters),
// a concurrent
// stress under an invariant checker and a randomized comparison with a
// reference model written in the suite.
//
// It deliberately does not check what the interface leaves to each
// implementation or to its configuration: the queue bound (ErrQueueFull),
// refusals for want of a token or a backend (ErrUnavailable; only that a
// fresh table is not Degraded), durability across restarts (of leases
// too), and the clock behind Party.Since (only that it is set). A backend
// tests those itself.
//
// The lease tests run on the wall clock, with TTLs of 50ms where an expiry
// must happen (they wait for it on a Notifier, never by sleeping) and of an
// hour where a lease must stay held. They read the interface strictly:
// Expires is exactly Since plus the TTL, or Since plus MaxHold when that is
// earlier; nobody is told Lost of a lease taken by Break.
//
// The suite waits only as a failure detector: when something that must
// happen does not, a test fails after a deadline instead of hanging. The
// grants a Release makes must have been told when it returns, as the
// interface promises; those of Cancel, ReleaseAll and Break, about which it
// promises nothing, are waited for, so a table may tell them afterwards on
// another goroutine. What a call does to the holders and owner it is given
// (Held, Count) must show when it returns.
//
// Where the interface leaves room, the suite reads it so: a Holder is
// equal (==) to itself however it is handed over (Acquire, Find, a
// Notifier call); the grants of one call are told in queue order, each
// with a token above the one told before it on the name, so two grants
// made at once never share a token; ReleaseAll may or may not grant an
// owner's own waiter on its way to releasing it.
//
// With -short the model and the concurrent test do a fraction of their
// work, for backends whose calls are slow.
package tabletest

import (
	"testing"

	"github.com/tnl-lock/tnl/lib/table"
)

// Run runs the conformance suite on the tables newTable makes, one fresh
// table per subtest.
func Run(t *testing.T, newTable func(t *testing.T) table.Table) {
	for _, tc := range tests() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fresh != nil {
				tc.fresh(t, newTable)
				return
			}
			tb := newTable(t)
			if tb == nil {
				t.Fatal("newTable returned nil")
			}
			tc.f(t, tb)
		})
	}
}

type suiteTest struct {
	name string
	f    func(t *testing.T, tb table.Table)
	// fresh, when set, runs instead of f and makes its own tables.
	fresh func(t *testing.T, newTable func(t *testing.T) table.Table)
}

// tests lists the subtests in the order Run runs them: the scripted
// semantics first, the long and concurrent ones last, so that a broken
// table shows its simplest failure first.
func tests() []suiteTest {
	var all []suiteTest
	for _, s := range scripts() {
		all = append(all, suiteTest{name: s.name, f: func(t *testing.T, tb table.Table) {
			r := newScriptRun(t, tb)
			r.run(s.steps)
			r.finish()
		}})
	}
	return append(all,
		suiteTest{name: "healthy", f: testHealthy},
		suiteTest{name: "owner info and count", f: testOwner},
		suiteTest{name: "release-all counts", f: testReleaseAllCounts},
		suiteTest{name: "release-all of one owner's holder and waiter on a name", f: testReleaseAllSameName},
		suiteTest{name: "find", f: testFind},
		suiteTest{name: "held", f: testHeld},
		suiteTest{name: "counters", f: testCounters},
		suiteTest{name: "tokens", f: testTokens},
		suiteTest{name: "break tells every holder", f: testBreakLost},
		suiteTest{name: "first names", f: testFirstNames},
		suiteTest{name: "list", f: testList},
		suiteTest{name: "list paging", f: testListPaging},
		suiteTest{name: "list cursor of a party that left", f: testListStale},
		suiteTest{name: "notifier calls back on grant", f: testGrantedCallsBack},
		suiteTest{name: "notifier calls back on loss", f: testLostCallsBack},
		suiteTest{name: "break from another goroutine", f: testBreakConcurrent},
		suiteTest{name: "one owner from many goroutines", f: testOwnerConcurrent},
		suiteTest{name: "lease grant", f: testLeaseGrant},
		suiteTest{name: "lease invalid", f: testLeaseInvalid},
		suiteTest{name: "lease wrong key", f: testLeaseWrongKey},
		suiteTest{name: "lease expiry", f: testLeaseExpiry},
		suiteTest{name: "lease renew", f: testLeaseRenew},
		suiteTest{name: "lease max hold", f: testLeaseMaxHold},
		suiteTest{name: "lease modes", f: testLeaseModes},
		suiteTest{name: "lease tokens", f: testLeaseTokens},
		suiteTest{name: "lease list", f: testLeaseList},
		suiteTest{name: "model", fresh: testModel},
		suiteTest{name: "concurrent", f: testConcurrent},
	)
}
