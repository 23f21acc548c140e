package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRateLog: per message, rateBurst lines per window pass, the rest are
// counted and told in one summary line when the window ends (by its timer)
// or when the message comes again later, never twice; other messages and
// other windows are not affected. The clock and the timers are the test's.
func TestRateLog(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	var timers []func()
	var delays []time.Duration
	l := newRateLogWith(slog.NewTextHandler(&out, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}), 3, time.Second, func() time.Time { return now }, func(d time.Duration, f func()) {
		delays = append(delays, d)
		timers = append(timers, f)
	})
	lines := func() []string {
		s := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		out.Reset()
		if len(s) == 1 && s[0] == "" {
			return nil
		}
		return s
	}
	expect := func(what string, want ...string) {
		t.Helper()
		got := lines()
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}

	for i := range 10 {
		l.Warn("request refused: authentication required", "n", i)
		now = now.Add(10 * time.Millisecond)
	}
	l.Info("lock refused", "n", 0)
	expect("a burst of 10",
		`level=WARN msg="request refused: authentication required" n=0`,
		`level=WARN msg="request refused: authentication required" n=1`,
		`level=WARN msg="request refused: authentication required" n=2`,
		`level=INFO msg="lock refused" n=0`)
	if len(timers) != 1 || delays[0] != time.Second-30*time.Millisecond {
		t.Fatalf("%d summaries scheduled (in %v), want 1, at the end of the window", len(timers), delays)
	}
	now = now.Add(time.Second)
	timers[0]()
	expect("the window's end", `level=WARN msg="request refused: authentication required (7 similar lines suppressed)" suppressed=7`)
	timers[0]() // a late timer says nothing more
	expect("the timer again")

	// A new window: three more pass; the summary of the next flood comes
	// with the first line after it, if its timer has not fired yet.
	for i := range 5 {
		l.Warn("request refused: authentication required", "n", 10+i)
	}
	expect("a new window",
		`level=WARN msg="request refused: authentication required" n=10`,
		`level=WARN msg="request refused: authentication required" n=11`,
		`level=WARN msg="request refused: authentication required" n=12`)
	now = now.Add(2 * time.Second)
	l.Warn("request refused: authentication required", "n", 15)
	expect("the next line, a window later",
		`level=WARN msg="request refused: authentication required (2 similar lines suppressed)" suppressed=2`,
		`level=WARN msg="request refused: authentication required" n=15`)
	for _, f := range timers[1:] {
		f()
	}
	expect("its timer, late")

	// Shutdown tells what is still due.
	for range 4 {
		l.Info("lock refused")
	}
	lines()
	l.flushAll()
	expect("at shutdown", `level=INFO msg="lock refused (1 similar lines suppressed)" suppressed=1`)
	l.flushAll()
	expect("at shutdown, again")

	// Levels the handler does not log are not counted.
	l.Debug("request refused: authentication required")
	if st := l.m["request refused: authentication required"]; st.n != 1 {
		t.Errorf("a debug line was counted: n %d", st.n)
	}
}
