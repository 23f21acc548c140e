package deadline

import (
	"testing"
	"time"
)

// fakeTB records a Fatalf instead of ending the test, so that the failing
// path of Within can be checked.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = format
	if len(args) == 2 {
		f.msg = args[0].(string) + ": not within " + args[1].(time.Duration).String()
	}
	panic(f)
}

func TestWithinDelivers(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	if got := Within(t, time.Second, ch, "seven"); got != 7 {
		t.Fatalf("got %d, want 7", got)
	}
}

func TestWithinFailsAtItsDeadline(t *testing.T) {
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("recovered %v, want the fake's Fatalf", r)
			}
		}()
		Within(f, 10*time.Millisecond, make(chan int), "nothing")
	}()
	if f.msg != "nothing: not within 10ms" {
		t.Fatalf("message %q", f.msg)
	}
}
