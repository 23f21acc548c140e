package test

// The seams between lib/'s packages (STYLE.md's layout): the server works
// over the lock-table interface, lib/table, so that another backend can take
// the embedded table's place; the embedded table has no words of the wire.

import (
	"go/build"
	"slices"
	"testing"
)

func TestLayers(t *testing.T) {
	const mod = "github.com/tnl-lock/tnl/"
	for _, tc := range []struct {
		dir, forbidden, why string
	}{
		{"../lib/server", mod + "lib/lockd", "the server works over table.Table, whatever the backend"},
		{"../lib/lockd", mod + "lib/protocol", "the lock table knows nothing of the wire"},
		{"../lib/table", mod + "lib/protocol", "the interface is in the table's terms"},
	} {
		// Imports of the files the go command compiles here, tests left
		// out: a test may well build a server over lockd.
		for _, goos := range []string{"linux", "darwin"} {
			ctx := build.Default
			ctx.GOOS = goos
			bp, err := ctx.ImportDir(tc.dir, 0)
			if err != nil {
				t.Fatalf("%s: %v", tc.dir, err)
			}
			if slices.Contains(bp.Imports, tc.forbidden) {
				t.Errorf("%s (GOOS=%s) imports %s: %s", tc.dir, goos, tc.forbidden, tc.why)
			}
			if tc.dir != "../lib/table" && !slices.Contains(bp.Imports, mod+"lib/table") {
				t.Errorf("%s (GOOS=%s) does not import lib/table: the check looks at the wrong files", tc.dir, goos)
			}
		}
	}
}
