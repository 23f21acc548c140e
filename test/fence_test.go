// End-to-end tests of issue 9 §1: a fencing token is never handed out
// twice, also when the state directory stops taking writes (a full or a
// read-only file system), across kill -9 and restarts, and a damaged state
// file stops the start. The state directory is on a 64 KiB tmpfs of its
// own, which the test fills, frees, and remounts read-only: root only.
package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fenceMount mounts a 64 KiB tmpfs and returns its directory.
func fenceMount(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot mount the tmpfs that this test fills (run make test as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (no CAP_SYS_ADMIN here?): %v: %s", err, out)
	}
	// Registered after t.TempDir's clean-up, so it runs before it; and
	// after the servers' kills, which run first.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fenceFill fills the file system of dir with the file dir/filler.
func fenceFill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1024)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func fenceFree(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
}

func fenceRemount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", mode, dir, err, out)
	}
}

var fenceLine = regexp.MustCompile(`^tnl-fence 1 (\d+) [0-9a-f]{8}\n$`)

// fenceCeiling reads the durable ceiling from the state file.
func fenceCeiling(t *testing.T, state string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "fence"))
	if err != nil {
		t.Fatal(err)
	}
	m := fenceLine.FindSubmatch(b)
	if m == nil {
		t.Fatalf("state file %q", b)
	}
	n, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return n
}

// fenceTokens records every token the test was granted.
type fenceTokens struct {
	t     *testing.T
	state string
	all   []uint64
	seen  map[uint64]bool
	n     int // names drawn, so that no draw waits for the last one's release
}

// draw asks for a fresh name with an extension request and returns the
// token, or 0 and the refusal. Every token must be new, and at or below
// the durable ceiling once granted.
func (f *fenceTokens) draw(addr string) (uint64, string) {
	f.t.Helper()
	f.n++
	line, err := chaosAsk(addr, fmt.Sprintf("lock,name:f%d,wait:5", f.n), 10*time.Second)
	if err != nil {
		f.t.Fatalf("lock f%d: %q, %v", f.n, line, err)
	}
	s, ok := strings.CutPrefix(line, "ok,token:")
	if !ok {
		return 0, line
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		f.t.Fatalf("lock f%d: %q", f.n, line)
	}
	f.add(v)
	return v, ""
}

func (f *fenceTokens) add(v uint64) {
	f.t.Helper()
	if f.seen[v] {
		f.t.Fatalf("token %d handed out twice (tokens so far: %v)", v, f.all)
	}
	if c := fenceCeiling(f.t, f.state); v > c {
		f.t.Fatalf("token %d granted above the durable ceiling %d", v, c)
	}
	f.seen[v] = true
	f.all = append(f.all, v)
}

func (f *fenceTokens) max() uint64 {
	var m uint64
	for _, v := range f.all {
		m = max(m, v)
	}
	return m
}

// untilRefused draws until a grant is refused, and returns the refusal.
func (f *fenceTokens) untilRefused(addr string) string {
	f.t.Helper()
	for range 100 { // a block of 8: refused within 8 draws
		if v, refusal := f.draw(addr); v == 0 {
			return refusal
		}
	}
	f.t.Fatalf("granted 100 times on a state directory that takes no writes: %v", f.all)
	return ""
}

// fenceRun runs a binary to its end and returns its exit status and stderr.
func fenceRun(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bins(t), name), args...)
	cmd.Env = fenceEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", name, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q still running after 20s; stderr:\n%s", name, args, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// fenceEnv is the environment without the variables tnl's commands read.
func fenceEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TNL_") && !strings.HasPrefix(kv, "TCPNETLOCK_") {
			env = append(env, kv)
		}
	}
	return env
}

// fenceLogged waits until the server's log has n lines matching re.
func fenceLogged(t *testing.T, s *chaosServer, re string, n int) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := len(rx.FindAllString(s.Log(), -1))
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			t.Fatalf("%d log lines match %q, want %d:\n%s", got, re, n, s.Log())
		}
		time.Sleep(5 * time.Millisecond) // the log is read on another goroutine
	}
}

// TestFenceFullDisk: a state directory on a file system that fills up in
// the middle of a run. The server grants with the tokens up to the durable
// ceiling, then refuses with the reason (to extension and legacy requests,
// tnl-do and tnl-lock exit 125), logs it once, shows it in .stats and in an
// extension .ping, keeps a waiter queued, and recovers by itself when space
// comes back. After kill -9, a restart on the full disk is refused, and one
// after space came back issues only tokens above every token before.
func TestFenceFullDisk(t *testing.T) {
	mnt := fenceMount(t)
	state := filepath.Join(mnt, "state")
	args := []string{"--listen", "127.0.0.1:0", "--state-dir", state, "--fence-block", "8", "--restart-grace", "200ms"}
	srv := chaosStartServer(t, nil, args...)
	toks := &fenceTokens{t: t, state: state, seen: map[uint64]bool{}}
	for range 3 {
		toks.draw(srv.Addr)
	}
	holder := fenceDial(t, srv.Addr, "lock,name:q", "ok")

	fenceFill(t, mnt)
	tmp := filepath.Join(state, "fence.tmp")
	refusal := "err,fencing state not durable: write " + tmp + ": no space left on device"
	if got := toks.untilRefused(srv.Addr); got != refusal {
		t.Fatalf("refusal %q, want %q", got, refusal)
	}
	before := len(toks.all)
	for _, req := range []string{"lock,name:legacy", "lock,name:f1000,wait:5", "lock,name:sh,mode:shared"} {
		if got, err := chaosAsk(srv.Addr, req, 5*time.Second); got != refusal || err != nil {
			t.Fatalf("%s: %q (%v), want %q", req, got, err, refusal)
		}
	}
	// The clients: "could not talk to the server" (125), with the reason.
	for _, c := range [][]string{{"tnl-do", "--server", srv.Addr, "job", "--", "true"}, {"tnl-lock", "--server", srv.Addr, "job"}} {
		code, stderr := fenceRun(t, c[0], c[1:]...)
		want := c[0] + ": server refused job: fencing state not durable: write " + tmp + ": no space left on device\n"
		if code != 125 || stderr != want {
			t.Errorf("%s: exit %d, stderr %q; want 125 and %q", c[0], code, stderr, want)
		}
	}
	if got, _ := chaosAsk(srv.Addr, ".ping", 5*time.Second); got != "pong" {
		t.Errorf("legacy .ping: %q, want pong", got)
	}
	if got, _ := chaosAsk(srv.Addr, ".ping,host:probe", 5*time.Second); got != "pong,degraded:"+strings.TrimPrefix(refusal, "err,") {
		t.Errorf(".ping,host:probe: %q", got)
	}
	if st, err := chaosStats(srv.Addr); err != nil || st["degraded"] != 1 {
		t.Errorf(".stats: %v (%v), want degraded 1", st, err)
	}
	// One error line for the whole episode, however many refusals.
	fenceLogged(t, srv, `level=ERROR msg="fencing state not durable: cannot write the next ceiling[^\n]*err="write `+regexp.QuoteMeta(tmp)+`: no space left on device"`, 1)

	// A waiter at the head of the queue stays queued without a token.
	waiter := fenceDial(t, srv.Addr, "lock,name:q,wait:inf\n.keepalive", "alive")
	holder.ask("release", "released")
	waiter.ask(".keepalive", "alive")

	fenceFree(t, mnt) // the server's retries find the space
	start := time.Now()
	line := waiter.read(15 * time.Second)
	v, err := strconv.ParseUint(strings.TrimPrefix(line, "ok,token:"), 10, 64)
	if err != nil || !strings.HasPrefix(line, "ok,token:") {
		t.Fatalf("the waiter after the recovery: %q", line)
	}
	toks.add(v)
	if v <= toks.all[before-1] {
		t.Fatalf("the waiter's token %d is not above %d", v, toks.all[before-1])
	}
	t.Logf("recovered by itself %v after the space came back; the waiter got token %d", time.Since(start).Round(time.Millisecond), v)
	fenceLogged(t, srv, `level=WARN msg="fencing state durable again: granting locks"`, 1)
	if st, err := chaosStats(srv.Addr); err != nil || st["degraded"] != 0 {
		t.Errorf(".stats after the recovery: %v (%v), want degraded 0", st, err)
	}
	waiter.close()
	for range 10 {
		if v, refusal := toks.draw(srv.Addr); v == 0 {
			t.Fatalf("after the recovery: %q", refusal)
		}
	}

	// Full again, then kill -9 while refusing.
	fenceFill(t, mnt)
	if got := toks.untilRefused(srv.Addr); got != refusal {
		t.Fatalf("refusal %q, want %q", got, refusal)
	}
	srv.Kill()
	last := toks.max()
	t.Logf("before the kill: %d tokens, the last %d, durable ceiling %d", len(toks.all), last, fenceCeiling(t, state))

	// A restart on the full disk cannot write a new ceiling: it stops.
	code, stderr := fenceRun(t, "tnl-server", args...)
	wantErr := "tnl-server: fencing state: cannot write " + filepath.Join(state, "fence") + ": write " + tmp + ": no space left on device\n"
	if code != 1 || !strings.HasSuffix(stderr, wantErr) || strings.Contains(stderr, "listening") {
		t.Fatalf("restart on the full disk: exit %d, stderr:\n%s\nwant 1 and last line %q", code, stderr, wantErr)
	}

	fenceFree(t, mnt)
	srv = chaosStartServer(t, nil, args...)
	n := len(toks.all)
	for range 30 { // several blocks
		if v, refusal := toks.draw(srv.Addr); v == 0 {
			t.Fatalf("after the restart: %q", refusal)
		} else if v <= last {
			t.Fatalf("after kill -9 and restart: token %d, not above %d, handed out before", v, last)
		}
	}
	t.Logf("after the restart: tokens %d to %d (%d before the kill, up to %d)", toks.all[n], toks.max(), n, last)
}

// TestFenceReadOnly: the same with a file system remounted read-only, and
// a truncated state file, which stops the start.
func TestFenceReadOnly(t *testing.T) {
	mnt := fenceMount(t)
	state := filepath.Join(mnt, "state")
	args := []string{"--listen", "127.0.0.1:0", "--state-dir", state, "--fence-block", "8", "--restart-grace", "200ms"}
	srv := chaosStartServer(t, nil, args...)
	toks := &fenceTokens{t: t, state: state, seen: map[uint64]bool{}}
	toks.draw(srv.Addr)
	holder := fenceDial(t, srv.Addr, "lock,name:q", "ok")

	fenceRemount(t, mnt, "ro")
	refusal := "err,fencing state not durable: open " + filepath.Join(state, "fence.tmp") + ": read-only file system"
	if got := toks.untilRefused(srv.Addr); got != refusal {
		t.Fatalf("refusal %q, want %q", got, refusal)
	}
	if st, err := chaosStats(srv.Addr); err != nil || st["degraded"] != 1 {
		t.Errorf(".stats: %v (%v), want degraded 1", st, err)
	}
	waiter := fenceDial(t, srv.Addr, "lock,name:q,wait:inf\n.keepalive", "alive")
	holder.ask("release", "released")
	waiter.ask(".keepalive", "alive")
	last := toks.max()
	fenceRemount(t, mnt, "rw")
	line := waiter.read(15 * time.Second)
	v, err := strconv.ParseUint(strings.TrimPrefix(line, "ok,token:"), 10, 64)
	if err != nil || !strings.HasPrefix(line, "ok,token:") || v <= last {
		t.Fatalf("the waiter after remount rw: %q, want a token above %d", line, last)
	}
	toks.add(v)
	waiter.close()
	if v, refusal := toks.draw(srv.Addr); v == 0 {
		t.Fatalf("after remount rw: %q", refusal)
	}
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-srv.done

	// Truncated: the start is refused, whatever is left of the line.
	path := filepath.Join(state, "fence")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{len(b) - 1, len(b) / 2, 0} {
		if err := os.WriteFile(path, b[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		code, stderr := fenceRun(t, "tnl-server", args...)
		why := "no line end"
		if cut == 0 {
			why = "empty"
		}
		want := "tnl-server: fencing state " + path + " is truncated or corrupt (" + why + "): not starting, a token could be handed out twice; " +
			"restore it, or write into it a number above every token ever issued (see Fencing state in tnl-server(1))\n"
		if code != 1 || stderr != want {
			t.Errorf("state cut to %d bytes: exit %d, stderr %q; want 1 and %q", cut, code, stderr, want)
		}
	}
	// Missing, in a directory that holds other state.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "notes"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stderr := fenceRun(t, "tnl-server", args...)
	if code != 1 || !strings.HasPrefix(stderr, "tnl-server: fencing state "+path+" is missing, but "+state+` holds "notes": not starting from token 1`) {
		t.Errorf("missing state file: exit %d, stderr %q", code, stderr)
	}
}

// fenceConn is a connection that sends lines and reads answers.
type fenceConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

// fenceDial dials addr, sends req and expects the answer want.
func fenceDial(t *testing.T, addr, req, want string) *fenceConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &fenceConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	c.ask(req, want)
	return c
}

func (c *fenceConn) ask(req, want string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c.nc, "%s\n", req); err != nil {
		c.t.Fatal(err)
	}
	if got := c.read(5 * time.Second); got != want {
		c.t.Fatalf("%s: got %q, want %q", req, got, want)
	}
}

func (c *fenceConn) read(d time.Duration) string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %q, %v", line, err)
	}
	return strings.TrimSuffix(line, "\n")
}

func (c *fenceConn) close() { c.nc.Close() }
