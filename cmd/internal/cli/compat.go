package cli

import (
	"github.com/tnl-lock/tnl/cmd/internal/acquire"
	"github.com/tnl-lock/tnl/cmd/internal/security"
)

// What tnl-stats still takes from here: these live in package security
// and package acquire now, and go once tnl-stats takes them from there.
var (
	ReadSecret = security.ReadSecret
	DialError  = security.DialError
	Since      = acquire.Since
)
