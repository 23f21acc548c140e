package sockopt_test

import (
	"net"
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/internal/sockopt"
)

// TestRule: keepalive first probes after half the dead-peer timeout, then
// four probes a tenth apart; the user timeout is nine tenths. The kernel
// counts keepalive in whole seconds and refuses 0, so nothing is below one
// second.
func TestRule(t *testing.T) {
	for _, tc := range []struct {
		deadPeer, idle, intvl, user time.Duration
	}{
		{30 * time.Second, 15 * time.Second, 3 * time.Second, 27 * time.Second},
		{20 * time.Second, 10 * time.Second, 2 * time.Second, 18 * time.Second},
		{5 * time.Second, 2500 * time.Millisecond, time.Second, 4500 * time.Millisecond},
		{time.Second, time.Second, time.Second, time.Second},
		{100 * time.Millisecond, time.Second, time.Second, time.Second},
	} {
		want := net.KeepAliveConfig{Enable: true, Idle: tc.idle, Interval: tc.intvl, Count: 4}
		if got := sockopt.KeepAlive(tc.deadPeer); got != want {
			t.Errorf("KeepAlive(%v) = %+v, want %+v", tc.deadPeer, got, want)
		}
		if got := sockopt.UserTimeout(tc.deadPeer); got != tc.user {
			t.Errorf("UserTimeout(%v) = %v, want %v", tc.deadPeer, got, tc.user)
		}
	}
}
