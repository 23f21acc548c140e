//go:build !linux

package sockopt

import (
	"net"
	"time"
)

// setUserTimeout: TCP_USER_TIMEOUT is Linux-only; elsewhere keepalive alone
// bounds how long a vanished peer keeps its locks.
func setUserTimeout(*net.TCPConn, time.Duration) error { return nil }
