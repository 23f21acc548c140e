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
	end := now.Add(time.Hour + 58*time.Minute + 59*time.Second)
	lease := protocol.LockInfo{Name: "deploy", Holders: []protocol.Party{
		{ClientID: "cron", Host: "etl-1", PID: 977, Since: since, Expires: &end, Lease: "ab12cd34"}}}
	if got, want := DescribeHolders(lease, now), "cron (lease ab12cd34 on etl-1) since 10:38:53 (3m12s ago), ends in 1h58m"; got != want {
		t.Errorf("DescribeHolders(lease) = %q, want %q", got, want)
	}
	if got := Since(time.Time{}, now); got != "an unknown time" {
		t.Errorf("Since(zero) = %q", got)
	}
}

func TestUntil(t *testing.T) {
	now := time.Date(2020, 1, 2, 3, 4, 10, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for _, tc := range []struct {
		t    *time.Time
		want string
	}{
		{nil, "-"},
		{at(-time.Second), "now"},
		{at(999 * time.Millisecond), "now"},
		{at(time.Second), "in 1s"},
		{at(59999 * time.Millisecond), "in 59s"},
		{at(4*time.Minute + 25*time.Second), "in 4m25s"},
		{at(time.Hour + 59*time.Minute + 59*time.Second), "in 1h59m"},
		{at(49 * time.Hour), "in 49h0m"},
	} {
		if got := Until(tc.t, now); got != tc.want {
			t.Errorf("Until(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}
