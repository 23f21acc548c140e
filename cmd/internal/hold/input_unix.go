//go:build unix

package hold

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// drained reads what f has to give without blocking, and reports whether
// its end came: /dev/null, a regular file, a pipe whose writers are all
// gone. It never blocks and never changes f's mode (O_NONBLOCK would reach
// every process sharing the file, the shell's terminal included): poll(2)
// with no timeout says when a read cannot block.
func drained(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	buf := make([]byte, 32<<10)
	for {
		ready, ok := false, false
		cerr := rc.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			for {
				n, err := unix.Poll(fds, 0)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				ok = err == nil
				ready = n > 0 && fds[0].Revents != 0
				return
			}
		})
		if cerr != nil || !ok || !ready {
			return false
		}
		// POLLIN, POLLHUP, POLLERR or POLLNVAL: this read returns at once,
		// with data, the end (0, io.EOF), or an error, which counts as the
		// end as it does for the reader that takes over.
		if _, err := f.Read(buf); err != nil {
			return true
		}
	}
}
