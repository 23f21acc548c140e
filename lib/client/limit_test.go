package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tnl-lock/tnl/lib/client"
	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/server"
)

// TestLockChecksLimit: Lock refuses by protocol.CheckLimit, before sending
// anything, in words that say the limit; a Limit of 0 is 1.
func TestLockChecksLimit(t *testing.T) {
	c := dial(t, startServer(t, server.Config{}), "a")
	ctx := context.Background()
	for _, tc := range []struct {
		o    client.LockOptions
		want error
		msg  string
	}{
		{client.LockOptions{Limit: -1}, protocol.ErrLimitRange, "invalid limit -1: want a number from 1 to 1000000"},
		{client.LockOptions{Limit: protocol.MaxLimit + 1}, protocol.ErrLimitRange, "invalid limit 1000001: want a number from 1 to 1000000"},
		{client.LockOptions{Shared: true, Limit: 2}, protocol.ErrSharedLimit, "a shared lock has no limit"},
	} {
		if _, err := c.Lock(ctx, "x", tc.o); !errors.Is(err, tc.want) || err.Error() != tc.msg {
			t.Errorf("Lock(%+v) = %v; want %q", tc.o, err, tc.msg)
		}
	}
	for i, o := range []client.LockOptions{{}, {Shared: true}, {Limit: 1}, {Limit: protocol.MaxLimit}} {
		l, err := c.Lock(ctx, "ok"+string(rune('a'+i)), o)
		if err != nil {
			t.Fatalf("Lock(%+v): %v", o, err)
		}
		l.Release()
	}
}
