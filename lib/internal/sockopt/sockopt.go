// Package sockopt sets the TCP options tnl uses to notice dead peers.
//
// Keepalive probes find a peer that vanished while the connection was idle;
// TCP_USER_TIMEOUT bounds how long sent data may stay unacknowledged (and, on
// Linux, how long keepalive probes may go unanswered), so a peer that vanished
// while we were talking to it is found too. Both are needed: a legacy
// tcpnetlock holder sends nothing at all while it holds.
package sockopt

import (
	"net"
	"time"
)

// KeepAlive returns the keepalive settings that declare a silent peer dead
// within about 0.9 × deadPeer: first probe after half of it, then four probes
// a tenth apart. Kernel granularity is one second, so tiny values are raised.
func KeepAlive(deadPeer time.Duration) net.KeepAliveConfig {
	idle := max(deadPeer/2, time.Second)
	intvl := max(deadPeer/10, time.Second)
	return net.KeepAliveConfig{Enable: true, Idle: idle, Interval: intvl, Count: 4}
}

// UserTimeout is the TCP_USER_TIMEOUT used for a dead-peer timeout.
func UserTimeout(deadPeer time.Duration) time.Duration {
	return max(deadPeer*9/10, time.Second)
}

// Apply sets keepalive and TCP_USER_TIMEOUT on c, when it is a TCP
// connection. Errors are returned for logging; the connection stays usable.
func Apply(c net.Conn, deadPeer time.Duration) error {
	if w, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = w.NetConn() // TLS
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	if err := tc.SetKeepAliveConfig(KeepAlive(deadPeer)); err != nil {
		return err
	}
	return setUserTimeout(tc, UserTimeout(deadPeer))
}
