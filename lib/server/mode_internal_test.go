package server

import (
	"testing"

	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/table"
)

// TestModes: the wire's modes and the table's agree, both ways, so that a
// shared request is never taken for an exclusive one.
func TestModes(t *testing.T) {
	for _, tc := range []struct {
		wire  protocol.Mode
		table table.Mode
		name  string
	}{
		{protocol.Exclusive, table.Exclusive, "exclusive"},
		{protocol.Shared, table.Shared, "shared"},
	} {
		if got := tableMode(tc.wire); got != tc.table {
			t.Errorf("tableMode(%v) = %d, want %d", tc.wire, got, tc.table)
		}
		if got := wireMode(tc.table); got != tc.wire || got.String() != tc.name {
			t.Errorf("wireMode(%d) = %v, want %s", tc.table, got, tc.name)
		}
	}
}

// TestReasons: the table's refusals go on the wire in their own words
// (err,WHY), so those words are the protocol's reasons, which clients match
// with errors.Is.
func TestReasons(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{table.ErrLimitMismatch, protocol.ReasonLimitMismatch},
		{table.ErrQueueFull, protocol.ReasonQueueFull},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("table says %q, the protocol's reason is %q", got, tc.want)
		}
	}
}
