package server

import (
	"errors"
	"log/slog"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// parker keeps idle legacy holders without a goroutine each.
//
// Why: tcpnetlock's clients hold a lock by keeping a connection open and
// silent, often for hours. A goroutine blocked in Read costs its stack (4 to
// 8 KiB once grown), several times the rest of the connection. So a holder
// with nothing to read is registered, one-shot, with an epoll set of our own
// (the fd stays in Go's netpoller too) and its goroutine ends. When the peer
// sends anything or goes away, the event starts a new goroutine that goes on
// exactly where the old one stopped.
type parker struct {
	epfd int
	wake int // eventfd: ends the loop
	log  *slog.Logger

	mu     sync.Mutex
	byFD   []*conn
	closed bool
}

func newParker(log *slog.Logger) *parker {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		log.Warn("epoll unavailable: idle holders keep a goroutine each", "err", err)
		return nil
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1})
		if err != nil {
			unix.Close(wake)
		}
	}
	if err != nil {
		unix.Close(epfd)
		log.Warn("eventfd unavailable: idle holders keep a goroutine each", "err", err)
		return nil
	}
	p := &parker{epfd: epfd, wake: wake, log: log}
	go p.loop()
	return p
}

// park registers c, which holds a lock and has nothing buffered, and reports
// whether it did. After true, c belongs to the parker until resumed.
func (p *parker) park(c *conn) bool {
	// All of it under p.mu, epoll_ctl included: once the fd is armed, an
	// event (take), an operator's break (unpark) or a shutdown (close) may
	// hand c to another goroutine, which must find c.fd, c.epolled and
	// p.byFD already settled, and must not run c while this goroutine still
	// touches it.
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.fd == 0 && !c.lookupFD() {
		c.fd = -1
	}
	if c.fd < 0 || p.closed {
		return false
	}
	fd := int(c.fd)
	if fd >= len(p.byFD) {
		n := max(2*len(p.byFD), fd+1, 1024)
		nb := make([]*conn, n)
		copy(nb, p.byFD)
		p.byFD = nb
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
	op := unix.EPOLL_CTL_MOD
	if !c.epolled {
		op = unix.EPOLL_CTL_ADD
	}
	err := unix.EpollCtl(p.epfd, op, fd, &ev)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EEXIST) {
		op ^= unix.EPOLL_CTL_ADD ^ unix.EPOLL_CTL_MOD
		err = unix.EpollCtl(p.epfd, op, fd, &ev)
	}
	if err != nil {
		return false
	}
	c.epolled = true
	p.byFD[fd] = c
	return true
}

func (c *conn) lookupFD() bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var fd int32 = -1
	if rc.Control(func(f uintptr) { fd = int32(f) }) != nil || fd <= 0 {
		return false
	}
	c.fd = fd
	return true
}

// unpark takes c back if it is parked, and reports whether it was.
func (p *parker) unpark(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.fd <= 0 || int(c.fd) >= len(p.byFD) || p.byFD[c.fd] != c {
		return false
	}
	p.byFD[c.fd] = nil
	return true
}

func (p *parker) take(fd int) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fd < 0 || fd >= len(p.byFD) {
		return nil
	}
	c := p.byFD[fd]
	p.byFD[fd] = nil
	return c
}

func (p *parker) loop() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.log.Error("epoll_wait failed; parked holders are resumed", "err", err)
			p.close()
			unix.Close(p.epfd)
			unix.Close(p.wake)
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == -1 {
				unix.Close(p.epfd)
				unix.Close(p.wake)
				return
			}
			if c := p.take(int(ev.Fd)); c != nil {
				go c.run()
			}
		}
	}
}

// close resumes every parked connection (the caller has closed them, so they
// end at once and release their locks) and stops the loop.
func (p *parker) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	parked := p.byFD
	p.byFD = nil
	p.mu.Unlock()
	for _, c := range parked {
		if c != nil {
			go c.run()
		}
	}
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
}
