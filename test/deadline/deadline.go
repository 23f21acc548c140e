// Package deadline gives tests a bounded wait: a test whose only way to
// fail would be to hang until go test's own timeout (ten minutes) fails in
// seconds instead, naming what did not come.
//
// It is for tests only; nothing in the commands or lib/ imports it.
package deadline

import (
	"testing"
	"time"
)

// Within waits up to d for ch to deliver (or close) and returns what came;
// otherwise it fails the test with "WHAT: not within D".
func Within[T any](t testing.TB, d time.Duration, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("%s: not within %v", what, d)
		panic("unreachable")
	}
}
