package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRestartHoldOff: a server restarted over the state of an earlier run
// (kill -9 or not) grants nothing for its dead-peer timeout, so that the
// earlier run's holders, which may not have heard of its death, have
// stopped their commands: a try-once request is not granted, a waiter is
// granted when the hold-off ends. A first start, and a start without
// --state-dir, grant at once.
func TestRestartHoldOff(t *testing.T) {
	const deadPeer = time.Second
	dir := filepath.Join(t.TempDir(), "state")
	args := []string{"--listen", "127.0.0.1:0", "--state-dir", dir, "--dead-peer-timeout", deadPeer.String()}

	p := startServer(t, nil, args...)
	h := dial(t, p.addr)
	h.roundtrip("lock,name:a\n", "ok\n")
	if strings.Contains(p.log(), "restarted") {
		t.Errorf("a first start logs a restart:\n%s", p.log())
	}
	p.signal(t, syscall.SIGKILL)
	p.wait(t)

	start := time.Now()
	p = startServer(t, nil, args...)
	dial(t, p.addr).roundtrip("lock,name:a\n", "not-granted\n")
	w := dial(t, p.addr)
	w.roundtrip("lock,name:a,wait:inf\n.keepalive\n", "alive\n")
	_ = w.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	got, err := w.r.ReadString('\n')
	waited := time.Since(start)
	if err != nil || !strings.HasPrefix(got, "ok,token:") {
		t.Fatalf("waiter after the restart: %q (%v), want ok,token:N", got, err)
	}
	if waited < deadPeer {
		t.Errorf("granted %v after the restart began, before the hold-off of %v ended", waited, deadPeer)
	}
	// The log is read by another goroutine: give it a moment.
	logged := func() bool {
		return strings.Contains(p.log(), "restarted over earlier state") && strings.Contains(p.log(), "granting locks")
	}
	for deadline := time.Now().Add(ioTimeout); !logged() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !logged() {
		t.Errorf("the log does not tell about the hold-off:\n%s", p.log())
	}
	t.Logf("granted %v after the restart began (hold-off %v)", waited.Round(time.Millisecond), deadPeer)
	// After the hold-off, as usual.
	dial(t, p.addr).roundtrip("lock,name:b\n", "ok\n")
}

// TestRestartGraceExplicit: an explicit --restart-grace applies at every
// start, also without --state-dir or over a fresh one (the operator knows
// that an earlier run may have holders), and the log says so; without it,
// such a start grants at once.
func TestRestartGraceExplicit(t *testing.T) {
	const grace = 500 * time.Millisecond
	for _, tc := range []struct {
		name  string
		args  []string
		grace bool
	}{
		{"no --state-dir", []string{"--restart-grace", grace.String()}, true},
		{"fresh --state-dir", []string{"--restart-grace", grace.String(), "--state-dir", filepath.Join(t.TempDir(), "state")}, true},
		{"no --restart-grace, no --state-dir", nil, false},
		{"--restart-grace 0", []string{"--restart-grace", "0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p := startServer(t, nil, append([]string{"--listen", "127.0.0.1:0"}, tc.args...)...)
			if !tc.grace {
				dial(t, p.addr).roundtrip("lock,name:a\n", "ok\n")
				if strings.Contains(p.log(), "granting no lock") {
					t.Errorf("a grace was logged:\n%s", p.log())
				}
				return
			}
			dial(t, p.addr).roundtrip("lock,name:a\n", "not-granted\n")
			w := dial(t, p.addr)
			w.roundtrip("lock,name:a,wait:inf\n.keepalive\n", "alive\n")
			_ = w.nc.SetReadDeadline(time.Now().Add(ioTimeout))
			got, err := w.r.ReadString('\n')
			if err != nil || !strings.HasPrefix(got, "ok,token:") {
				t.Fatalf("waiter: %q (%v), want ok,token:N", got, err)
			}
			if waited := time.Since(start); waited < grace {
				t.Errorf("granted %v after the start, before the grace of %v ended", waited, grace)
			}
			logged := func() bool {
				return strings.Contains(p.log(), "granting no lock for the restart grace (--restart-grace given)") &&
					strings.Contains(p.log(), "for="+grace.String()) && strings.Contains(p.log(), "granting locks")
			}
			for deadline := time.Now().Add(ioTimeout); !logged() && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			if !logged() {
				t.Errorf("the log does not tell about the grace:\n%s", p.log())
			}
		})
	}
}
