package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WatchdogFlag is the one argument with which a program that uses
// StartWatchdog is run as its own watchdog: such a program calls
// RunWatchdog, first thing, when its arguments are IsWatchdog. The value is
// the pid of the program it guards, which ps(1) then shows.
const WatchdogFlag = "--watchdog-of"

// IsWatchdog reports whether args (os.Args[1:]) are those of a watchdog.
func IsWatchdog(args []string) bool {
	return len(args) == 1 && strings.HasPrefix(args[0], WatchdogFlag+"=")
}

// maxRearms bounds how many times a watchdog that died is replaced.
const maxRearms = 3

// Watchdog is a second process that kills the command's process group when
// tnl-do dies without a word (SIGKILL of tnl-do or of its process group, a
// crash, the OOM killer): see the package doc. It is this very program,
// started again with WatchdogFlag.
type Watchdog struct {
	started chan struct{} // closed once the first one is forked
	pgid    int           // the first one's pid: the command's group
	err     error         // why the first one could not be started

	mu      sync.Mutex
	f       *os.File        // our end of the current one's socket pair
	conn    syscall.RawConn // what Keep was given, for a replacement
	closed  bool            // Close was called
	retired bool            // the group is being killed, or the command was reaped
	rearms  int
}

// StartWatchdog starts the watchdog in the background and returns at once:
// forking and executing it overlaps tnl-do's round trips to the server.
// Start waits for the fork, so that the command never runs unguarded.
func StartWatchdog() *Watchdog {
	w := &Watchdog{started: make(chan struct{})}
	go func() {
		defer close(w.started)
		f, pid, err := forkWatchdog(0)
		if err != nil {
			w.err = err
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.pgid = pid
		if w.closed {
			standDown(f)
			return
		}
		w.f = f
		go w.monitor(f)
	}()
	return w
}

// watchdogSignals are blocked in the watchdog from its first instruction
// on: every signal whose default would end or stop it (see signals_linux.go).
// It is in the command's process group, so it hears the terminal's Ctrl-C
// and Ctrl-Z, --on-lost's SIGTERM and whatever else is sent to the group.
// A mask survives fork and exec, so none of these can reach the watchdog
// before its Go runtime is up; then RunWatchdog ignores them all. (Go
// unblocks HUP, INT, QUIT, ABRT and TERM as it starts: one of those in the
// first millisecond ends the watchdog, and monitor starts another.)
func watchdogSignals() []syscall.Signal {
	return append(append([]syscall.Signal(nil), terminating...), jobControl...)
}

// forkWatchdog forks and executes a watchdog in process group pgid (0: a
// new one that it leads), and returns our end of its socket pair. It does
// so on a thread that is thrown away afterwards, because the watchdog
// inherits two settings of it that cannot always be undone:
//
//   - the lowest priority (SCHED_IDLE; without privileges there is no way
//     back): starting a Go program costs a millisecond or two of CPU, which
//     on a small machine would be taken from tnl-do, the server and the
//     command; idle, it is done on a processor nobody needs. Once up, the
//     watchdog only waits; the kill it may have to do is one system call,
//     and the lock is safe however long that waits for a processor, because
//     the watchdog holds the connection to the server (Keep);
//   - the blocked signals of watchdogSignals.
func forkWatchdog(pgid int) (*os.File, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot start its watchdog: %w", err)
	}
	var pid int
	onThrowawayThread(func() {
		var set unix.Sigset_t
		for _, s := range watchdogSignals() {
			set.Val[(s-1)/64] |= 1 << ((uint(s) - 1) % 64)
		}
		_ = unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil)
		_ = unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_IDLE}, 0)
		argv := []string{os.Args[0], WatchdogFlag + "=" + strconv.Itoa(os.Getpid())}
		pid, err = syscall.ForkExec("/proc/self/exe", argv, &syscall.ProcAttr{
			// No GC, one processor: it allocates nothing and does one thing.
			Env:   []string{"GOGC=off", "GOMAXPROCS=1"},
			Files: []uintptr{uintptr(fds[1])}, // stdin; no stdout, no stderr
			// The first one leads a process group of its own, which the
			// command joins; a replacement joins that group. While it lives
			// (or is an unreaped zombie of tnl-do) the group's id names
			// this group and no other (see the package doc).
			Sys: &syscall.SysProcAttr{Setpgid: true, Pgid: pgid},
		})
	})
	unix.Close(fds[1])
	if err != nil {
		unix.Close(fds[0])
		return nil, 0, fmt.Errorf("cannot start its watchdog: %w", err)
	}
	// Non-blocking, so that the monitor's read waits in Go's poller, not
	// on a thread of its own.
	_ = unix.SetNonblock(fds[0], true)
	return os.NewFile(uintptr(fds[0]), "watchdog"), pid, nil
}

// onThrowawayThread runs f on an OS thread of its own, which ends with it:
// whatever f changes in the thread (its priority, its signal mask) goes
// with it. Not on the main thread, which Go cannot end and which ps(1)
// shows as the whole process.
func onThrowawayThread(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: Go ends the thread
		defer close(done)
		if unix.Gettid() == unix.Getpid() {
			// The main thread, held by us: the nested goroutine cannot
			// run on it.
			onThrowawayThread(f)
			runtime.UnlockOSThread()
			return
		}
		f()
	}()
	<-done
}

// wait waits for the fork and returns the process group the command is to
// join: the watchdog's.
func (w *Watchdog) wait() (int, error) {
	<-w.started
	return w.pgid, w.err
}

// monitor waits for the watchdog's end of f to close. That is expected
// once Close has been called or the group is being killed; otherwise the
// watchdog died (a signal in its first millisecond, a stray kill, the OOM
// killer) and a new one takes its place in the group, up to maxRearms.
func (w *Watchdog) monitor(f *os.File) {
	var b [16]byte
	for {
		if _, err := f.Read(b[:]); err == nil {
			continue
		}
		break
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != f || w.closed || w.retired || w.rearms >= maxRearms {
		return
	}
	w.rearms++
	f.Close()
	w.f = nil
	nf, _, err := forkWatchdog(w.pgid)
	if err != nil {
		return
	}
	w.f = nf
	if w.conn != nil {
		_ = w.send(w.conn)
	}
	go w.monitor(nf)
}

// retire says that the watchdog's death is no longer news: the command has
// been reaped, or its group is being killed (which kills the watchdog too).
func (w *Watchdog) retire() {
	w.mu.Lock()
	w.retired = true
	w.mu.Unlock()
}

// Keep hands the watchdog a copy of the socket of rc, to hold until it is
// done. tnl-do gives it its connection to the server: when tnl-do is
// killed, the server sees the connection close, and releases the lock,
// only once the watchdog has sent SIGKILL to the command's group.
func (w *Watchdog) Keep(rc syscall.RawConn) error {
	if _, err := w.wait(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.conn = rc
	if w.f == nil || w.closed {
		return errors.New("cannot hand the connection to the watchdog: it is not running")
	}
	return w.send(rc)
}

// send passes rc's descriptor to the current watchdog; w.mu is held.
func (w *Watchdog) send(rc syscall.RawConn) error {
	wc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		werr := wc.Write(func(wfd uintptr) bool {
			serr = unix.Sendmsg(int(wfd), []byte{'k'}, unix.UnixRights(int(fd)), nil, unix.MSG_NOSIGNAL)
			return !errors.Is(serr, unix.EAGAIN)
		})
		if serr == nil {
			serr = werr
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("cannot hand the connection to the watchdog: %w", err)
	}
	return nil
}

// Close tells the watchdog that tnl-do is ending as it should: the watchdog
// exits without killing anything, and lets go of what Keep gave it. Call it
// once the command has ended (or when it never started), before closing
// the connection given to Keep: Close shuts that connection down, so that
// the server sees it end now, not when the watchdog gets a processor to
// exit. Without Close, the watchdog reads the end of the socket when
// tnl-do exits, and kills the group: what the command left there, or, if
// the command never started, the watchdog alone. It does not wait for a
// watchdog still being started.
func (w *Watchdog) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil && !w.closed {
		_ = w.conn.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	}
	w.closed = true
	if w.f != nil {
		standDown(w.f)
		w.f = nil
	}
}

// standDown sends 'q' on f and closes it. If the watchdog was killed with
// the command's group, nobody reads it: MSG_NOSIGNAL, and the error is of
// no interest.
func standDown(f *os.File) {
	if wc, err := f.SyscallConn(); err == nil {
		_ = wc.Write(func(fd uintptr) bool {
			err := unix.Sendmsg(int(fd), []byte{'q'}, nil, nil, unix.MSG_NOSIGNAL)
			return !errors.Is(err, unix.EAGAIN)
		})
	}
	f.Close()
}

// RunWatchdog is the watchdog's whole life; it returns its exit status.
// Its standard input is its end of the socket pair. It waits: a 'k'
// message brings descriptors to keep open, 'q' means that tnl-do ends as
// it should (exit 0, nothing killed), and the end of the socket that tnl-do
// is gone: then it sends SIGKILL to its own process group, the command's,
// and dies with it.
//
// It refuses to run (status 2) unless its standard input is a socket made
// by the pid named in arg, so that a stray "tnl-do --watchdog-of=1" does
// not kill the process group of whoever typed it.
func RunWatchdog(arg string) int {
	var sigs []os.Signal
	for _, s := range watchdogSignals() {
		sigs = append(sigs, s)
	}
	signal.Ignore(sigs...)
	pid, err := strconv.Atoi(strings.TrimPrefix(arg, WatchdogFlag+"="))
	ucred, cerr := unix.GetsockoptUcred(0, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil || cerr != nil || int(ucred.Pid) != pid {
		fmt.Fprintf(os.Stderr, "%s: %s is for its own use\n", progName(), WatchdogFlag)
		return 2
	}
	// Run from /proc/self/exe, it would be "exe" in ps -o comm and top.
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&append([]byte(progName()), 0)[0])), 0, 0, 0)
	// Normal priority again where that is allowed (root), for this thread,
	// which does the kill, so that a kill under load is not delayed; without
	// privileges it stays idle (see forkWatchdog).
	runtime.LockOSThread()
	_ = unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0)
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4*8))
	for {
		n, _, _, _, err := unix.Recvmsg(0, buf, oob, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err == nil && n == 1 && buf[0] == 'q' {
			return 0
		}
		if err != nil || n == 0 {
			break
		}
		// 'k': the descriptors came with it and stay open here.
	}
	// Our own group, the command's: while we are in it, its id cannot name
	// another group.
	_ = unix.Kill(0, unix.SIGKILL)
	return 0 // not reached
}

func progName() string {
	name := os.Args[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}
