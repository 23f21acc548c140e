package server

import (
	"syscall"

	"github.com/tnl-lock/tnl/lib/table"
)

// Direct answers. When the table grants the wait of a session whose
// goroutine is idle in Read, Granted writes the answer itself, on the
// goroutine that released the lock, instead of waking the session's
// goroutine to write it: that saves a wake-up and a goroutine switch per
// grant. It is done only
// for a session on plain TCP (c.raw; TLS needs its goroutine), only while
// the session's goroutine is not working (wmu.TryLock), only when nothing
// else waits to be written, and only with one non-blocking write that takes
// the whole answer; otherwise the grant goes the usual way, queued for the
// session's goroutine, which writes what is left.

// grantDirect answers a session's granted wait without blocking. wmu held.
func (c *conn) grantDirect(h table.Holder) bool {
	if c.state != stSession || c.closing || c.srv.stopping.Load() || len(c.out) != 0 || !c.waits.drop(h) {
		return false
	}
	c.replyGrant(h, c.lease.unwait(h))
	n, werr := -1, error(nil)
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), c.out)
		return true // one attempt: never wait for the socket to drain
	})
	if err == nil && werr == nil && n == len(c.out) {
		c.out = c.out[:0]
		c.lease.sent()
		return true
	}
	if n > 0 {
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	// The wait is answered (in c.out); the queued grant only wakes c's
	// goroutine, which flushes the rest and finds no wait to answer.
	return false
}
