package acquire

import (
	"testing"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
)

func TestDescribe(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 42, 5, 0, time.Local)
	since := now.Add(-3*time.Minute - 12*time.Second)
	li := protocol.LockInfo{
		Name: "build",
		Holders: []protocol.Party{
			{ClientID: "alice@b1", Host: "b1", PID: 4242, Since: since},
			{ClientID: "carol", Addr: "10.0.0.3:5555", Since: since},
		},
		Waiters: []protocol.Party{{ClientID: "bob"}, {ClientID: "dave"}},
	}
	if got, want := DescribeHolders(li, now), "alice@b1 (pid 4242 on b1) since 10:38:53 (3m12s ago) and 1 more, 2 waiting"; got != want {
		t.Errorf("DescribeHolders = %q, want %q", got, want)
	}
	if got, want := DescribeParty(li.Holders[1]), "carol (from 10.0.0.3:5555)"; got != want {
		t.Errorf("DescribeParty = %q, want %q", got, want)
	}
	if got, want := DescribeParty(protocol.Party{}), "a client"; got != want {
		t.Errorf("DescribeParty(zero) = %q, want %q", got, want)
	}
	if got := DescribeHolders(protocol.LockInfo{Waiters: li.Waiters}, now); got != "nobody (2 waiting)" {
		t.Errorf("no holders: %q", got)
	}
	if got := DescribeHolders(protocol.LockInfo{}, now); got != "" {
		t.Errorf("empty: %q", got)
	}
	yesterday := now.Add(-24 * time.Hour)
	if got, want := Since(yesterday, now), "2026-11-24 10:42:05 (24h0m0s ago)"; got != want {
		t.Errorf("Since(yesterday) = %q, want %q", got, want)
	}
	if got := Since(time.Time{}, now); got != "an unknown time" {
		t.Errorf("Since(zero) = %q", got)
	}
}
