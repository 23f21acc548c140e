package tabletest_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tnl-lock/tnl/lib/table"
	"github.com/tnl-lock/tnl/lib/table/tabletest"
)

// bugEnv selects the bug of the reference table that TestBrokenChild runs
// the suite on.
const bugEnv = "TABLETEST_BUG"

// TestBrokenChild runs the suite on a reference table with the bug that
// bugEnv names. It is run by TestBroken, in a child process, because Run
// takes a *testing.T and its failures are the test's outcome: they can only
// be observed from outside.
func TestBrokenChild(t *testing.T) {
	bug := os.Getenv(bugEnv)
	if bug == "" {
		t.Skip("run by TestBroken")
	}
	tabletest.Run(t, func(t *testing.T) table.Table { return newRef(bug) })
}

// TestBroken checks that the suite fails on tables that break a rule, each
// in the subtest and with the words that name the rule. It runs this test
// binary again, with TestBrokenChild only, on each broken table.
func TestBroken(t *testing.T) {
	if os.Getenv(bugEnv) != "" {
		t.Skip("in the child")
	}
	for _, c := range []struct {
		bug  string
		run  string // the subtest to run, when not all
		test string // the first subtest that fails
		line string // in its failure
	}{
		// Serves the queue from its tail.
		{"fifo", "", "exclusive", `step 5 (rel a): granted ["c"], want ["b"]`},
		{"fifo", "model", "model/seed=0", "(FIFO)"},
		// Grants a shared request beside shared holders past a waiting
		// exclusive one.
		{"barge", "", "not_granted_without_wait_while_others_queue",
			`step 2: acquire c shared limit 0 wait false on "x" by c: got Granted, <nil>; want NotGranted, <nil>`},
		{"barge", "model", "model/seed=0", "got Granted, <nil>; want Queued, <nil>"},
		// Counts tokens per name, from 1 again when the name is forgotten.
		{"token", "", "modes_never_mix",
			`step 4: acquire c exclusive limit 1 wait false on "x" by c: grant of c on "x": token 1, not above the previous 1`},
		{"token", "concurrent", "concurrent", "granted twice"},
		// Lets one more holder into a semaphore than its size.
		{"overfill", "", "exclusive", `step 1: acquire b exclusive limit 1 wait false on "x" by b: got Granted, <nil>; want NotGranted, <nil>`},
		{"overfill", "concurrent", "concurrent", "an exclusive holder (limit 1) beside 1 exclusive and 0 shared ones"},
		// Break does not tell the holders.
		{"break", "", "break", `step 4: break "x": told Lost [], want ["a"]`},
		// Grants a request whatever its semaphore size.
		{"limit", "", "limit_mismatch_with_a_holder",
			`step 1: acquire b exclusive limit 2 wait false on "x" by b: got Granted, <nil>; want Refused, limit mismatch`},
		// Calls Notifiers with its mutex locked.
		{"notify-locked", "", "notifier_calls_back_on_grant",
			"Release granting to a Notifier that calls back into the table did not finish within 10s"},
		// Tells the grants of a Release at the next Acquire.
		{"late-grant", "", "exclusive",
			`step 5 (rel a): granted [] when Release returned, want ["b"] (the grants of a Release are told before it returns)`},
		// List goes on from the start of the list when the party its
		// cursor stands on has left.
		{"list-stale", "", "list_cursor_of_a_party_that_left", "List from a cursor on a holder released since = true"},
		// Cancel releases a held lock.
		{"cancel-held", "", "cancel", "step 6 (cancel a): Cancel = true, want false"},
		// ReleaseAll releases the leases its owner took.
		{"release-all-leases", "", "lease_grant",
			"after ReleaseAll of their owner: leases held false, false (want true), its plain lock held false (want false)"},
		// Takes an expired lease away but grants nobody.
		{"expiry-no-grant", "lease expiry", "lease_expiry", `the lease's expiry: told [], want ["Granted a on \"x\""]`},
		// Renews past the maximum hold.
		{"renew-past-max-hold", "", "lease_max_hold", "Renew(3h0m0s) past the max hold = "},
		// Ends a renewed lease at the end it had before.
		{"renew-timer", "", "lease_renew",
			"the renewed lease, after a lease granted after it with twice its TTL expired: {Name: Mode:0 Token:0"},
		// Cancel leaves the waiter in the counters.
		{"count", "", "cancel", "empty table: Counters = {Acquired:2 NotAcquired:0 Held:0 Waiting:1 Names:0 Leases:0 Expired:0}, want Held, Waiting and Names 0"},
	} {
		t.Run(c.bug+"/"+c.run, func(t *testing.T) {
			t.Parallel()
			run := "^TestBrokenChild$"
			if c.run != "" {
				run += "/^" + c.run + "$"
			}
			// -test.failfast: the first failure is the one asserted,
			// and the rest, some of which wait out their deadlines,
			// would only take time.
			cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.count=1", "-test.failfast", "-test.timeout=5m")
			cmd.Env = append(os.Environ(), bugEnv+"="+c.bug)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("the suite on a table with bug %q: %v, want exit status 1\n%s", c.bug, err, out)
			}
			fail := "--- FAIL: TestBrokenChild/" + c.test + " "
			if !strings.Contains(string(out), fail) {
				t.Errorf("the suite on a table with bug %q: no line %q in its output", c.bug, fail)
			}
			if !strings.Contains(string(out), c.line) {
				t.Errorf("the suite on a table with bug %q: no %q in its output", c.bug, c.line)
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}
