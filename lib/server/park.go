package server

import (
	"time"
)

// Parking, the part every system shares: when a legacy holder has had
// nothing to read for parkDelay, turn hands its connection to the parker,
// which keeps it without a goroutine (park_linux.go, epoll). Where there is
// no parker (other systems, or epoll refused), idle holders keep their
// goroutine, and parkFailed says so once.

// parkDelay is how long a legacy holder stays on its goroutine after its
// last input before it is parked. Why not at once: most legacy cycles
// (lock, work, release) are short, and parking costs an epoll_ctl, a wake-up
// on the parker's thread and a fresh goroutine per cycle, about a third of
// the server's CPU per cycle. Why not longer: every holder younger than the
// delay keeps its stack, which is what parking saves.
const parkDelay = 25 * time.Millisecond

func (c *conn) parkable() bool {
	return c.state == stHeld && c.r == c.w && c.srv.parker != nil && !c.noPark
}

// parkFailed notes that c could not be parked; the first time, it says so.
func (s *Server) parkFailed(c *conn) {
	if s.stopping.Load() || !s.parkWarned.CompareAndSwap(false, true) {
		return
	}
	why := "epoll refused it (fs.epoll.max_user_watches, memory)"
	if c.fd < 0 {
		why = "not a plain TCP socket (TLS)"
	}
	s.log.Warn("an idle lock holder keeps its goroutine: "+why+"; said once", "remote", c.info.Addr)
}
