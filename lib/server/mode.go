package server

import (
	"github.com/tnl-lock/tnl/lib/protocol"
	"github.com/tnl-lock/tnl/lib/table"
)

// The one place where the wire's modes meet the table's. The two types have
// the same values (table.Mode says so, and TestModes checks it), so the
// conversions cost nothing on the hot path; they are functions so that the
// day the values part, only this file changes.

// tableMode is m in the table's terms.
func tableMode(m protocol.Mode) table.Mode { return table.Mode(m) }

// wireMode is m in the protocol's terms.
func wireMode(m table.Mode) protocol.Mode { return protocol.Mode(m) }
