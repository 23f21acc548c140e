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

// TestConformanceDurable runs the suite on the table tnl-server makes with
// a state directory: fencing tokens and leases in files.
func TestConformanceDurable(t *testing.T) {
	tabletest.Run(t, func(t *testing.T) table.Table {
		dir := t.TempDir()
		ft, err := lockd.OpenFileTokens(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		fl, err := lockd.OpenFileLeases(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fl.Close(); ft.Close() })
		return lockd.New(lockd.Options{Tokens: ft, Leases: fl})
	})
}
