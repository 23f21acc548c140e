package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests drive the real binary: signals, exit statuses and kill -9 are
// about the process, not about the server package.

const ioTimeout = 10 * time.Second

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// TestMain removes the binary that serverBin builds once for all tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// serverBin builds tnl-server once per test run.
func serverBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "tnl-server-test-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", buildDir, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "tnl-server")
}

// cleanEnv is the test's environment without the variables tnl-server
// reads, so that the caller's shell cannot change the outcome.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TNL_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

var listeningText = regexp.MustCompile(`\bmsg=listening addr=(\S+)`)

// proc is a running tnl-server.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{} // closed once the process has exited and been reaped
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startServer runs tnl-server with args and waits for its "listening" log
// line, which tells the address it got.
func startServer(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(serverBin(t), args...)
	cmd.Env = cleanEnv(env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			addr := ""
			if m := listeningText.FindStringSubmatch(line); m != nil {
				addr = m[1]
			}
			var js struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &js) == nil && js.Msg == "listening" {
				addr = js.Addr
			}
			if addr != "" {
				select {
				case addrc <- addr:
				default:
				}
			}
		}
		// Reading is over (the process closed stderr by exiting): only now
		// may Wait close the pipe.
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.addr = <-addrc:
	case <-p.done:
		t.Fatalf("tnl-server exited before listening (%v):\n%s", cmd.ProcessState, p.log())
	case <-time.After(ioTimeout):
		t.Fatalf("no listening line from tnl-server:\n%s", p.log())
	}
	return p
}

// wait waits for the process to end and returns its exit status.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(ioTimeout):
		t.Fatalf("tnl-server still running after %v:\n%s", ioTimeout, p.log())
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// peer is a client connection.
type peer struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dial(t *testing.T, addr string) *peer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &peer{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *peer) roundtrip(req, want string) {
	c.t.Helper()
	_ = c.nc.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c.nc, req); err != nil {
		c.t.Fatalf("send %q: %v", req, err)
	}
	c.expect(want)
}

func (c *peer) expect(want string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	got, err := c.r.ReadString('\n')
	if got != want || err != nil {
		c.t.Fatalf("got %q (err %v), want %q", got, err, want)
	}
}

func (c *peer) expectEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	got, err := c.r.ReadString('\n')
	if got != "" || err != io.EOF {
		c.t.Fatalf("got %q (err %v), want EOF", got, err)
	}
}

// token takes name with an extension request and returns its fencing token.
func token(t *testing.T, addr, name string) uint64 {
	t.Helper()
	return tokenWaiting(t, addr, name, "1")
}

// tokenWaiting is token with a wait of wait seconds.
func tokenWaiting(t *testing.T, addr, name, wait string) uint64 {
	t.Helper()
	c := dial(t, addr)
	_ = c.nc.SetDeadline(time.Now().Add(ioTimeout))
	fmt.Fprintf(c.nc, "lock,name:%s,wait:%s\n", name, wait)
	line, err := c.r.ReadString('\n')
	tok, ok := strings.CutPrefix(line, "ok,token:")
	n, perr := strconv.ParseUint(strings.TrimSuffix(tok, "\n"), 10, 64)
	if err != nil || !ok || perr != nil {
		t.Fatalf("lock %s: got %q (err %v)", name, line, err)
	}
	c.roundtrip("release\n", "released\n")
	return n
}

// TestSignalsReleaseEverything: SIGTERM (and SIGINT) stop the server, which
// closes every connection (releasing every lock, ending every wait and
// session) and exits 0.
func TestSignalsReleaseEverything(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startServer(t, nil, "--listen", "127.0.0.1:0")
			h := dial(t, p.addr)
			h.roundtrip("lock,name:x\n", "ok\n")
			w := dial(t, p.addr)
			w.roundtrip("lock,name:x,wait:inf\n.keepalive\n", "alive\n")
			s := dial(t, p.addr)
			s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
			s.roundtrip("lock,name:y\n", "ok,name:y,token:2\n")
			p.signal(t, sig)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit status %d after %v, want 0:\n%s", code, sig, p.log())
			}
			h.expectEOF()
			w.expectEOF()
			s.expectEOF()
			log := p.log()
			for _, want := range []string{"msg=\"shutting down: closing every connection, which releases every lock\" connections=3 held=2 waiting=1", "msg=stopped"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			if strings.Contains(log, "panic") || strings.Contains(log, "goroutine ") {
				t.Errorf("log has a stack trace:\n%s", log)
			}
			if c, err := net.DialTimeout("tcp", p.addr, ioTimeout); err == nil {
				c.Close()
				t.Errorf("%s still accepts connections", p.addr)
			}
		})
	}
}

// TestStateDirSurvivesKill: with --state-dir, the tokens handed out after a
// kill -9 and a restart are larger than every token handed out before, and
// so after a graceful restart.
func TestStateDirSurvivesKill(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	var last uint64
	for round, stop := range []string{"kill -9", "kill -9", "SIGTERM", ""} {
		// A short dead-peer timeout: each restart holds grants off for it
		// (TestRestartHoldOff); token waits a second.
		p := startServer(t, nil, "--listen", "127.0.0.1:0", "--state-dir", dir, "--dead-peer-timeout", "300ms")
		for i := range 50 {
			n := token(t, p.addr, "f"+strconv.Itoa(i%3))
			if n <= last {
				t.Fatalf("round %d (after %s): token %d, not above %d", round, stop, n, last)
			}
			last = n
		}
		if _, err := os.Stat(filepath.Join(dir, "fence")); err != nil {
			t.Fatalf("state file: %v", err)
		}
		switch stop {
		case "kill -9":
			p.signal(t, syscall.SIGKILL)
			if code := p.wait(t); code != -1 {
				t.Fatalf("exit status %d after kill -9", code)
			}
		case "SIGTERM":
			p.signal(t, syscall.SIGTERM)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit status %d after SIGTERM:\n%s", code, p.log())
			}
		}
	}
}

// TestWithoutStateDir: tokens restart from 1, and the log says so.
func TestWithoutStateDir(t *testing.T) {
	p := startServer(t, nil, "--listen", "127.0.0.1:0")
	if n := token(t, p.addr, "a"); n != 1 {
		t.Errorf("first token %d, want 1", n)
	}
	if !strings.Contains(p.log(), "no --state-dir") {
		t.Errorf("no warning about the missing --state-dir:\n%s", p.log())
	}
}

// TestListenFromEnvAndLogFormats: TNL_LISTEN, --log-format json and the
// tcpnetlock spellings --info and --debug.
func TestListenFromEnvAndLogFormats(t *testing.T) {
	p := startServer(t, []string{"TNL_LISTEN=127.0.0.1:0"}, "--log-format", "json", "--debug")
	c := dial(t, p.addr)
	c.roundtrip("nope\n", "bad-action\n")
	c.expectEOF()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	var debug bool
	for _, line := range strings.Split(strings.TrimSpace(p.log()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		debug = debug || m["level"] == "DEBUG" && m["msg"] == "bad action"
	}
	if !debug {
		t.Errorf("--debug: no debug line for the bad action:\n%s", p.log())
	}

	p = startServer(t, nil, "--listen", "127.0.0.1:0", "--info")
	c = dial(t, p.addr)
	c.roundtrip("nope\n", "bad-action\n")
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if strings.Contains(p.log(), "level=DEBUG") {
		t.Errorf("--info logs debug lines:\n%s", p.log())
	}
}

// runBin runs tnl-server to its end and returns its exit status and output.
func runBin(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(serverBin(t), args...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
	case <-time.After(ioTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("tnl-server %q still running after %v", args, ioTimeout)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestUsageErrors: exit 2 and exactly one line on stderr, "tnl-server: ...",
// nothing on stdout, no usage dump, no stack trace.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"},
		{"extra-argument"},
		{"--port", "70000"},
		{"--port", "-1"},
		{"--listen", "127.0.0.1:1:2"},
		{"--log-format", "xml"},
		{"--log-level", "loud"},
		{"--dead-peer-timeout", "0s"},
		{"--dead-peer-timeout", "soon"},
		{"--first-line-timeout", "-1s"},
		{"--max-line-length", "10"},
		{"--max-conns", "-1"},
		{"--max-session-locks", "-1"},
		{"--max-session-waits", "-1"},
		{"--max-answer-bytes", "4095"},
		{"--max-answer-bytes", "67108865"},
		{"--max-hold", "-1s"},
		{"--max-hold", "8785h"},
		{"--max-hold", "soon"},
		{"--auth-token-file", "/nonexistent/token"},
		{"--tls-cert", "/nonexistent/cert.pem"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runBin(t, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
			if code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			// a usage error is found before the logger says anything
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "tnl-server: ") || !strings.HasSuffix(stderr, "\n") {
				t.Errorf("stderr %q, want one line \"tnl-server: ...\"", stderr)
			}
		})
	}
}

// TestMemoryFlags: --max-session-locks, --max-session-waits and
// --max-answer-bytes reach the server; 0 is no cap.
func TestMemoryFlags(t *testing.T) {
	p := startServer(t, nil, "--listen", "127.0.0.1:0", "--max-session-locks", "2", "--max-session-waits", "1", "--max-answer-bytes", "4096")
	h := dial(t, p.addr)
	h.roundtrip("lock,name:held,client-id:"+strings.Repeat("h", 250)+"\n", "ok\n")
	s := dial(t, p.addr)
	s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	s.roundtrip("lock,name:held,wait:inf\n.keepalive\n", "alive\n")
	s.roundtrip("lock,name:busy,wait:inf\n", "ok,name:busy,token:2\n") // at the cap on waits, but free
	s.roundtrip("lock,name:c\n", "err,name:c,too many locks in this session (max 2)\n")
	for i := range 20 {
		q := dial(t, p.addr)
		q.roundtrip(fmt.Sprintf("lock,name:held,wait:inf,client-id:%02d%s\n.keepalive\n", i, strings.Repeat("w", 250)), "alive\n")
	}
	c := dial(t, p.addr)
	_, _ = io.WriteString(c.nc, ".holders\n")
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	line, err := c.r.ReadString('\n')
	if err != nil || len(line) > 4096 || !strings.HasSuffix(line, `],"truncated":true}`+"\n") {
		t.Errorf(".holders with --max-answer-bytes 4096: %d bytes (%v): %s", len(line), err, line)
	}

	p = startServer(t, nil, "--listen", "127.0.0.1:0", "--max-session-locks", "0", "--max-session-waits", "0")
	s = dial(t, p.addr)
	s.roundtrip(".session\n", "session,dead-peer-timeout:30\n")
	var b strings.Builder
	for i := range 100001 {
		fmt.Fprintf(&b, "lock,name:n%d\n", i)
	}
	b.WriteString(".ping\n")
	go func() { _, _ = io.WriteString(s.nc, b.String()) }()
	_ = s.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	for i := range 100001 {
		if line, err := s.r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "ok,name:n"+strconv.Itoa(i)+",") {
			t.Fatalf("--max-session-locks 0, lock %d: %q (%v)", i, line, err)
		}
	}
	s.expect("pong\n")
}

// TestCannotListen: an address in use is no usage error, but still one line.
func TestCannotListen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, _, stderr := runBin(t, "--listen", l.Addr().String())
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	want := "tnl-server: cannot listen on " + l.Addr().String() + ": bind: address already in use"
	if code != 1 || lines[len(lines)-1] != want {
		t.Errorf("exit status %d, stderr:\n%s\nwant 1 and last line %q", code, stderr, want)
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, stdout, stderr := runBin(t, "--help")
	if code != 0 || !strings.HasPrefix(stdout, "Usage: tnl-server") || stderr != "" {
		t.Errorf("--help: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, flag := range []string{"--listen", "--port", "--state-dir", "--dead-peer-timeout", "--max-conns", "--log-format", "--debug"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
	code, stdout, stderr = runBin(t, "--version")
	if code != 0 || strings.Count(stdout, "\n") != 1 || strings.TrimSpace(stdout) == "" || stderr != "" {
		t.Errorf("--version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
