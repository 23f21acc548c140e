package supervise

import (
	"testing"
	"time"
)

// within waits up to d for ch to deliver (or close) and returns what came;
// otherwise it fails the test, naming what did not come. It is for waits
// whose only way to fail would be to hang until go test's own timeout.
func within[T any](t testing.TB, d time.Duration, ch <-chan T, what string) T {
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
