package lockd_test

import (
	"testing"

	"github.com/tnl-lock/tnl/lib/lockd"
	"github.com/tnl-lock/tnl/lib/table"
	"github.com/tnl-lock/tnl/lib/table/tabletest"
)

// TestConformance holds the embedded table to the lock-table contract every
// backend keeps (lib/table/tabletest), the same suite the etcd backend runs.
func TestConformance(t *testing.T) {
	tabletest.Run(t, func(t *testing.T) table.Table { return lockd.New(lockd.Options{}) })
}
