package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// peer is a server process the benchmark started on loopback.
type peer struct {
	name string
	addr string // 127.0.0.1:PORT
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
	err  error // how it exited, once done is closed
	// closers run on stop, before the process is told to end.
	closers []func()
}

func (p *peer) pid() int { return p.cmd.Process.Pid }

// readyTimeout bounds a peer's start: etcd takes a second or two, the
// others milliseconds.
const readyTimeout = 20 * time.Second

// freePort asks the kernel for a free loopback port by binding :0 and
// closing. Another process could take it before the peer binds it; on a
// benchmark machine that is rare, and the peer then fails to start loudly.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startProcess starts path with args, its output going to a log file in dir.
func startProcess(name, dir, path string, args, env []string) (*peer, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	// If the benchmark dies, its peers die with it instead of keeping ports
	// and memory. Pdeathsig fires when the forking OS thread exits, not the
	// process; Go keeps its threads for the life of the process unless a
	// goroutine exits while locked to one, which this program never does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &peer{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// waitReady polls check until it succeeds, the process exits, or the
// timeout passes.
func (p *peer) waitReady(ctx context.Context, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	delay := 5 * time.Millisecond
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start (%v): %s", p.name, p.err, p.tail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v: %s", p.name, readyTimeout, err, p.tail())
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// tail is the last lines of the peer's log, for error messages.
func (p *peer) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	lines = lines[max(0, len(lines)-3):]
	s := strings.Join(lines, " | ")
	if s == "" {
		return "(no output)"
	}
	return s
}

// stop ends the peer: SIGTERM, then SIGKILL if it has not exited in 5s.
func (p *peer) stop() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// alive says whether the peer is still running.
func (p *peer) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// tnlPing checks that a tnl-protocol server answers ".ping" with "pong".
func tnlPing(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(deadlineOf(ctx))
	if _, err := c.Write([]byte(".ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "pong\n" {
		return fmt.Errorf("answer to .ping: %q", line)
	}
	return nil
}

// startTnlLike starts a tnl-protocol server (tnl-server, or this program as
// the null server) on a free port and waits for it to answer ".ping".
func startTnlLike(ctx context.Context, name, dir, path string, args func(addr string) []string) (*peer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p, err := startProcess(name, dir, path, args(addr), nil)
	if err != nil {
		return nil, err
	}
	p.addr = addr
	if err := p.waitReady(ctx, func(ctx context.Context) error { return tnlPing(ctx, addr) }); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startTnl starts tnl-server. maxSessionLocks is its --max-session-locks:
// the held scenario puts up to all its locks in one session, beyond the
// server's default cap, as an operator would allow it.
func startTnl(ctx context.Context, dir, bin string, maxSessionLocks int) (*peer, error) {
	return startTnlLike(ctx, "tnl", dir, bin, func(addr string) []string {
		return []string{"--listen", addr, "--max-session-locks", strconv.Itoa(maxSessionLocks)}
	})
}

// startNull re-runs this program as "nullserver", so that the null server is
// a process of its own whose CPU and memory are measured like tnl-server's.
func startNull(ctx context.Context, dir string) (*peer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startTnlLike(ctx, "null", dir, self, func(addr string) []string { return []string{"nullserver", "-listen", addr} })
}

// runNullServer is the "nullserver" subcommand.
func runNullServer(args []string, stderr *os.File) int {
	listen := "127.0.0.1:0"
	if len(args) == 2 && args[0] == "-listen" {
		listen = args[1]
	} else if len(args) != 0 {
		fmt.Fprintln(stderr, "usage: bench nullserver [-listen ADDR]")
		return 2
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(stderr, "bench nullserver: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "listening addr=%s\n", ln.Addr())
	// The parent kills us with SIGTERM, whose default action ends the
	// process at once: there is no state to save.
	if err := serveNull(ln); err != nil {
		fmt.Fprintf(stderr, "bench nullserver: %v\n", err)
		return 1
	}
	return 0
}

// firstLine is the first non-empty line of b, for one-line error messages.
func firstLine(b []byte) string {
	for line := range bytes.Lines(b) {
		if s := strings.TrimSpace(string(line)); s != "" {
			return s
		}
	}
	return ""
}

// errSkip marks a peer or scenario that cannot run here; its message is the
// one clear line the report shows.
type errSkip struct{ why string }

func (e *errSkip) Error() string { return e.why }

func skipf(format string, args ...any) error { return &errSkip{why: fmt.Sprintf(format, args...)} }

func isSkip(err error) bool {
	var s *errSkip
	return errors.As(err, &s)
}
