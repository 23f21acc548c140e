// Crash, restart and hostile-input tests (issue 5, "Crashes and
// partitions" and "Hostile input"), against the real binaries:
//
//   - TestCrashKill9Restart (make test): kill -9 of tnl-server under 20
//     tnl-do loops, then a restart on the same port and state directory.
//   - TestHostileMemory (make test): the server's memory and connections
//     come back to their baseline after hostile clients leave, while a
//     legacy holder keeps its lock.
//   - TestHostileMemoryHolders (make test): .holders over a huge table, by
//     clients that never read, within a memory bound, while others are
//     served.
//   - TestChaosSoak (make chaos, $TNL_CHAOS=5m): random kills of servers and
//     clients and random partitions, then a replay of every grant.
//
// The partition tests, and the network namespaces the soak uses, are in
// netns_test.go.
//
// Every command under tnl-do is test/chaos/child.sh, which appends start,
// work and end lines with its fencing token to one shared file (O_APPEND:
// the order of lines is the order of the writes). chaosCheck replays that
// file: for each lock name the writes of one grant must all come before the
// first write of the next grant, and grants must come in increasing token
// order. Nothing here sleeps to synchronise: the tests wait for lines in
// files and for processes, each with a deadline.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ---- a tnl-server process ---------------------------------------------------

// chaosServer is a tnl-server process started by a test.
type chaosServer struct {
	Addr string // HOST:PORT from its "listening" line
	Pid  int

	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped

	mu  sync.Mutex
	log bytes.Buffer
}

// chaosStartServer starts tnl-server with args (prefix, if any, is put
// before it: "ip netns exec NS") and waits for its "listening" line.
func chaosStartServer(t *testing.T, prefix []string, args ...string) *chaosServer {
	t.Helper()
	bin := filepath.Join(bins(t), "tnl-server")
	argv := append(append(slices.Clone(prefix), bin), args...)
	s := &chaosServer{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Pid = s.cmd.Process.Pid
	t.Cleanup(s.Kill)
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		s.cmd.Wait()
		close(s.done)
	}()
	select {
	case s.Addr = <-addrc:
	case <-s.done:
		t.Fatalf("tnl-server %q exited before listening:\n%s", args, s.Log())
	case <-time.After(10 * time.Second):
		t.Fatalf("tnl-server %q did not say where it listens within 10s:\n%s", args, s.Log())
	}
	return s
}

// Kill sends SIGKILL and waits until the process is reaped.
func (s *chaosServer) Kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGCONT) // in case a test left it stopped
	s.cmd.Process.Kill()
	<-s.done
}

// Signal sends sig to the server.
func (s *chaosServer) Signal(sig syscall.Signal) error { return s.cmd.Process.Signal(sig) }

// Log is what the server wrote on stderr so far.
func (s *chaosServer) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Port is the port of s.Addr.
func (s *chaosServer) Port() string {
	_, p, _ := net.SplitHostPort(s.Addr)
	return p
}

// ---- the records of child.sh, and their replay -------------------------------

// chaosRec is one line of child.sh.
type chaosRec struct {
	Kind  string // start, work, sigterm, end, term
	Name  string
	Token uint64
	ID    string // the tnl-do run: g<server generation>-l<loop>-i<iteration>
	PID   int
	Time  time.Time
	Line  int // 1-based line number in the file
}

func chaosChild(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("chaos/child.sh")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// chaosReadRecords reads the records file; a last line without its newline
// (being written) is left for the next read.
func chaosReadRecords(path string) ([]chaosRec, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var recs []chaosRec
	for n, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 6 {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, n+1, line)
		}
		tok, err1 := strconv.ParseUint(f[2], 10, 64)
		pid, err2 := strconv.Atoi(f[4])
		sec, err3 := strconv.ParseFloat(f[5], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, n+1, line)
		}
		recs = append(recs, chaosRec{Kind: f[0], Name: f[1], Token: tok, ID: f[3], PID: pid,
			Time: time.Unix(0, int64(sec*1e6)*1e3), Line: n + 1})
	}
	return recs, nil
}

// chaosGrant is one grant as the records show it: from the first line its
// command wrote to the last.
type chaosGrant struct {
	Name        string
	Token       uint64
	ID          string
	First, Last int       // line numbers
	Start, Stop time.Time // times of the first and last lines
	SigTerm     time.Time // when SIGTERM reached it; zero if it did not
	Ended       string    // "end" (work done), "term" (stopped), "" (killed, or still running)
}

// chaosReport is the replay of a records file.
type chaosReport struct {
	Grants   []*chaosGrant // in the order of their first line
	Overlaps []string      // a write of one grant after the next grant began
	Problems []string      // tokens out of order, a token granted twice, stray lines
}

func (g *chaosGrant) String() string {
	return fmt.Sprintf("%s token %d (%s, lines %d-%d)", g.Name, g.Token, g.ID, g.First, g.Last)
}

// chaosCheck replays the records. Per lock name, the grants ordered by
// their first line must have strictly increasing tokens, and no line of a
// grant may come after the first line of a later grant: that would be two
// commands writing under the same lock at once. A grant whose command was
// killed outright has no end line; its last line is its last write.
func chaosCheck(recs []chaosRec) chaosReport {
	var r chaosReport
	byKey := map[string]*chaosGrant{}
	for _, rec := range recs {
		key := rec.Name + "\x00" + strconv.FormatUint(rec.Token, 10)
		g := byKey[key]
		switch {
		case rec.Kind == "start":
			if g != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("line %d: %s granted twice: to %s and to %s", rec.Line, g, g.ID, rec.ID))
				continue
			}
			g = &chaosGrant{Name: rec.Name, Token: rec.Token, ID: rec.ID, First: rec.Line, Start: rec.Time}
			byKey[key] = g
			r.Grants = append(r.Grants, g)
		case g == nil:
			r.Problems = append(r.Problems, fmt.Sprintf("line %d: %s line of %s token %d before its start", rec.Line, rec.Kind, rec.Name, rec.Token))
			continue
		case g.Ended != "":
			r.Problems = append(r.Problems, fmt.Sprintf("line %d: %s line of %s after its %s line", rec.Line, rec.Kind, g, g.Ended))
		case g.ID != rec.ID:
			r.Problems = append(r.Problems, fmt.Sprintf("line %d: %s written by %s and %s", rec.Line, g, g.ID, rec.ID))
		}
		g.Last, g.Stop = rec.Line, rec.Time
		switch rec.Kind {
		case "sigterm":
			g.SigTerm = rec.Time
		case "end", "term":
			g.Ended = rec.Kind
		}
	}
	byName := map[string][]*chaosGrant{}
	for _, g := range r.Grants {
		byName[g.Name] = append(byName[g.Name], g)
	}
	for _, gs := range byName {
		var prev, latest *chaosGrant // latest: the earlier grant that wrote last
		for _, g := range gs {
			if prev != nil && g.Token <= prev.Token {
				r.Problems = append(r.Problems, fmt.Sprintf("%s began after %s: tokens must increase in grant order", g, prev))
			}
			if latest != nil && latest.Last > g.First {
				r.Overlaps = append(r.Overlaps, fmt.Sprintf("%s wrote at line %d, after %s began", latest, latest.Last, g))
			}
			if latest == nil || g.Last > latest.Last {
				latest = g
			}
			prev = g
		}
	}
	return r
}

// Unfinished are the grants without an end line.
func (r *chaosReport) Unfinished() []*chaosGrant {
	var out []*chaosGrant
	for _, g := range r.Grants {
		if g.Ended == "" {
			out = append(out, g)
		}
	}
	return out
}

// TestChaosChecker: the replay finds what it must find.
func TestChaosChecker(t *testing.T) {
	at := func(kind, name string, tok uint64, id string) string {
		return fmt.Sprintf("%s %s %d %s 1 1700000000.000001\n", kind, name, tok, id)
	}
	cases := []struct {
		name               string
		lines              []string
		overlaps, problems int
		grants, unfinished int
	}{
		{"clean", []string{at("start", "a", 1, "x"), at("work", "a", 1, "x"), at("end", "a", 1, "x"),
			at("start", "b", 2, "y"), at("start", "a", 3, "z"), at("term", "a", 3, "z"), at("end", "b", 2, "y")}, 0, 0, 3, 0},
		{"overlap", []string{at("start", "a", 1, "x"), at("start", "a", 2, "y"), at("work", "a", 1, "x"),
			at("end", "a", 1, "x"), at("end", "a", 2, "y")}, 1, 0, 2, 0},
		{"killed then stale write", []string{at("start", "a", 1, "x"), at("start", "a", 2, "y"), at("end", "a", 2, "y"),
			at("work", "a", 1, "x")}, 1, 0, 2, 1},
		{"killed, silent", []string{at("start", "a", 1, "x"), at("work", "a", 1, "x"), at("start", "a", 2, "y"),
			at("end", "a", 2, "y")}, 0, 0, 2, 1},
		{"token order", []string{at("start", "a", 5, "x"), at("end", "a", 5, "x"), at("start", "a", 4, "y"),
			at("end", "a", 4, "y")}, 0, 1, 2, 0},
		{"granted twice", []string{at("start", "a", 5, "x"), at("end", "a", 5, "x"), at("start", "a", 5, "y"),
			at("end", "a", 5, "y")}, 0, 2, 1, 0},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "records")
		if err := os.WriteFile(path, []byte(strings.Join(c.lines, "")+"start a 9 partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		recs, err := chaosReadRecords(path)
		if err != nil {
			t.Fatal(err)
		}
		r := chaosCheck(recs)
		if len(r.Overlaps) != c.overlaps || len(r.Problems) != c.problems || len(r.Grants) != c.grants || len(r.Unfinished()) != c.unfinished {
			t.Errorf("%s: got %d overlaps %q, %d problems %q, %d grants, %d unfinished; want %d, %d, %d, %d",
				c.name, len(r.Overlaps), r.Overlaps, len(r.Problems), r.Problems, len(r.Grants), len(r.Unfinished()),
				c.overlaps, c.problems, c.grants, c.unfinished)
		}
	}
}

// ---- loops of tnl-do --------------------------------------------------------

// chaosGen is one life of the server: a kill -9 ends it, a restart begins
// the next. Loops start tnl-do only once the current generation is ready.
type chaosGen struct {
	N     int
	Port  string
	ready chan struct{}
}

// chaosRun is one tnl-do run.
type chaosRun struct {
	ID         string
	Loop, Gen  int
	Name       string
	Start, End time.Time
	Code       int    // exit status; -1 when killed by a signal
	Killed     bool   // by the test (a chaos event)
	Stderr     string // what tnl-do said
	cmd        *exec.Cmd
}

// chaosFleet runs loops of "tnl-do -w inf NAME -- child.sh ...".
type chaosFleet struct {
	tnlDo     string
	child     string
	records   string
	names     []string // loop i uses names[i%len(names)]
	killAfter string
	workMs    int
	stopMs    int
	maxIter   int
	// host gives the server's address as loop i sees it, and prefix what
	// runs its tnl-do ("ip netns exec NS"); both optional.
	host   func(loop int) string
	prefix func(loop int) []string

	ctx    context.Context
	cancel context.CancelFunc
	stop   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	gen     *chaosGen
	runs    []*chaosRun
	running map[*chaosRun]bool
}

func newChaosFleet(t *testing.T, records string, names []string) *chaosFleet {
	dir := bins(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := &chaosFleet{tnlDo: filepath.Join(dir, "tnl-do"), child: chaosChild(t), records: records, names: names,
		killAfter: "1s", workMs: 150, stopMs: 100, maxIter: 1000,
		ctx: ctx, cancel: cancel, stop: make(chan struct{}), running: map[*chaosRun]bool{}}
	t.Cleanup(func() {
		f.cancel() // kills what is still running
		f.wg.Wait()
	})
	return f
}

// NewGen begins server generation n: loops wait for Ready before they start
// another tnl-do.
func (f *chaosFleet) NewGen(n int) {
	f.mu.Lock()
	f.gen = &chaosGen{N: n, ready: make(chan struct{})}
	f.mu.Unlock()
}

// Ready says the server of the current generation listens on port.
func (f *chaosFleet) Ready(port string) {
	f.mu.Lock()
	f.gen.Port = port
	close(f.gen.ready)
	f.mu.Unlock()
}

func (f *chaosFleet) current() *chaosGen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// Start starts n loops.
func (f *chaosFleet) Start(n int) {
	for i := range n {
		f.wg.Add(1)
		go f.loop(i)
	}
}

// Stop asks every loop to end after its current run and waits for them, at
// most d; then it kills what is left and reports false.
func (f *chaosFleet) Stop(d time.Duration) bool {
	close(f.stop)
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		f.cancel()
		<-done
		return false
	}
}

func (f *chaosFleet) loop(i int) {
	defer f.wg.Done()
	for iter := 0; iter < f.maxIter; iter++ {
		g := f.current()
		select {
		case <-f.stop:
			return
		case <-f.ctx.Done():
			return
		case <-g.ready:
		}
		select {
		case <-f.stop:
			return
		default:
		}
		r := f.runOnce(g, i, iter)
		if r.Code == 125 && r.End.Sub(r.Start) < 100*time.Millisecond && f.current() == g {
			// The server refused at once and no restart is under way:
			// pace the retries instead of spinning.
			select {
			case <-f.stop:
				return
			case <-f.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func (f *chaosFleet) runOnce(g *chaosGen, loop, iter int) chaosRun {
	name := f.names[loop%len(f.names)]
	host := "127.0.0.1"
	if f.host != nil {
		host = f.host(loop)
	}
	var argv []string
	if f.prefix != nil {
		argv = append(argv, f.prefix(loop)...)
	}
	r := &chaosRun{ID: fmt.Sprintf("g%d-l%02d-i%03d", g.N, loop, iter), Loop: loop, Gen: g.N, Name: name}
	argv = append(argv, f.tnlDo, "-w", "inf", "--kill-after", f.killAfter, "-s", net.JoinHostPort(host, g.Port), name, "--",
		"bash", f.child, f.records, r.ID, strconv.Itoa(f.workMs), strconv.Itoa(f.stopMs))
	cmd := exec.CommandContext(f.ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TNL_CLIENT_ID=chaos-"+r.ID)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// The command inherits tnl-do's stderr; should it outlive tnl-do
	// (it must not: Pdeathsig), Wait would wait for it forever.
	cmd.WaitDelay = 5 * time.Second
	r.cmd = cmd
	f.mu.Lock()
	r.Start = time.Now()
	err := cmd.Start()
	if err == nil {
		f.running[r] = true
	}
	f.runs = append(f.runs, r)
	f.mu.Unlock()
	if err == nil {
		err = cmd.Wait()
	}
	f.mu.Lock()
	r.End = time.Now()
	delete(f.running, r)
	r.Code = -1
	if cmd.ProcessState != nil {
		r.Code = cmd.ProcessState.ExitCode()
	}
	r.Stderr = stderr.String()
	if err != nil && cmd.ProcessState == nil {
		r.Stderr += "start: " + err.Error()
	}
	defer f.mu.Unlock()
	return *r
}

// Runs returns a copy of every run so far.
func (f *chaosFleet) Runs() []chaosRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]chaosRun, len(f.runs))
	for i, r := range f.runs {
		out[i] = *r
		out[i].cmd = nil
	}
	return out
}

// KillOne sends SIGKILL to one running tnl-do chosen by rnd, and reports
// the run it killed, or nil.
func (f *chaosFleet) KillOne(rnd *rand.Rand) *chaosRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rs []*chaosRun
	for r := range f.running {
		if !r.Killed {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	r := rs[rnd.Intn(len(rs))]
	r.Killed = true
	r.cmd.Process.Kill()
	return r
}

// chaosWait polls cond every 10 ms until it holds or d has passed.
func chaosWait(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// chaosGenOf is the server generation in a run id ("g2-l03-i007" -> 2).
func chaosGenOf(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(id, "-", 2)[0], "g"))
	return n
}

func chaosFileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// ---- kill -9 and restart ------------------------------------------------------

// TestCrashKill9Restart: kill -9 of tnl-server under 20 concurrent
// "tnl-do -w inf NAME -- child" loops (five names, four loops each), then a
// restart on the same port with the same --state-dir. Every tnl-do that was
// running a command stops it and exits 122; those that were waiting exit
// 125 (or 122 if the grant came in just before); no two commands of one name
// ever write at once, across the restart too: no command of the new server
// starts before every command of the old one has ended; and every fencing
// token after the restart is larger than every one before.
func TestCrashKill9Restart(t *testing.T) {
	const (
		deadPeer  = 2 * time.Second
		killAfter = 700 * time.Millisecond // < deadPeer/2: the command is gone before anyone else can be granted
		loops     = 20
	)
	names := []string{"k9-a", "k9-b", "k9-c", "k9-d", "k9-e"}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	records := filepath.Join(dir, "records")
	srvArgs := func(listen string) []string {
		return []string{"--listen", listen, "--state-dir", state, "--dead-peer-timeout", deadPeer.String()}
	}
	srv1 := chaosStartServer(t, nil, srvArgs("127.0.0.1:0")...)

	f := newChaosFleet(t, records, names)
	f.killAfter = killAfter.String()
	f.workMs = 200 // short turns: many grants per second
	f.stopMs = 150 // a clean-up after SIGTERM that still writes, well within --kill-after
	f.NewGen(1)
	f.Ready(srv1.Port())
	f.Start(loops)

	// Phase 1: run until every name has been granted three times and has a
	// command running right now.
	ok := chaosWait(20*time.Second, func() bool {
		recs, err := chaosReadRecords(records)
		if err != nil {
			t.Fatal(err)
		}
		r := chaosCheck(recs)
		count, open := map[string]int{}, map[string]bool{}
		for _, g := range r.Grants {
			count[g.Name]++
			open[g.Name] = g.Ended == ""
		}
		for _, n := range names {
			if count[n] < 3 || !open[n] {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("the loops did not get going within 20s; records:\n%s", chaosTail(records, 40))
	}

	// kill -9, and restart at once on the same port, same state directory.
	f.NewGen(2)
	killOffset := chaosFileSize(records)
	tKill := time.Now()
	srv1.Kill()
	srv2 := chaosStartServer(t, nil, srvArgs(srv1.Addr)...)
	tUp := time.Now()
	f.Ready(srv2.Port())

	// Phase 2: until every name has been granted three times by the new
	// server.
	ok = chaosWait(30*time.Second, func() bool {
		recs, err := chaosReadRecords(records)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, rec := range recs {
			if rec.Kind == "start" && chaosGenOf(rec.ID) == 2 {
				count[rec.Name]++
			}
		}
		for _, n := range names {
			if count[n] < 3 {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Errorf("the new server did not grant every name three times within 30s; server log:\n%s\nrecords:\n%s", srv2.Log(), chaosTail(records, 40))
	}
	if !f.Stop(20 * time.Second) {
		t.Errorf("the loops did not end within 20s of being asked to")
	}

	recs, err := chaosReadRecords(records)
	if err != nil {
		t.Fatal(err)
	}
	rep := chaosCheck(recs)
	for _, o := range rep.Overlaps {
		t.Errorf("overlap: %s", o)
	}
	for _, p := range rep.Problems {
		t.Errorf("records: %s", p)
	}
	for _, g := range rep.Unfinished() {
		t.Errorf("%s never ended: killed after --kill-after?", g)
	}

	// Which commands ran when the server died: started before the kill
	// (their start line is within the first killOffset bytes), not ended.
	linesBefore := chaosLinesIn(records, killOffset)
	runningAtKill := map[string]*chaosGrant{}
	var maxTok1, minTok2 uint64 = 0, ^uint64(0)
	lastOld, firstNew := 0, len(recs)+1
	var firstNewStart time.Time
	var stopped []time.Duration
	for _, g := range rep.Grants {
		switch chaosGenOf(g.ID) {
		case 1:
			maxTok1 = max(maxTok1, g.Token)
			lastOld = max(lastOld, g.Last)
			if g.First <= linesBefore && !(g.Ended != "" && g.Last <= linesBefore) {
				runningAtKill[g.ID] = g
			}
		case 2:
			minTok2 = min(minTok2, g.Token)
			if g.First < firstNew {
				firstNew, firstNewStart = g.First, g.Start
			}
		}
	}
	if maxTok1 == 0 || minTok2 == ^uint64(0) {
		t.Fatalf("grants before the kill: max token %d; after: min token %d", maxTok1, minTok2)
	}
	if minTok2 <= maxTok1 {
		t.Errorf("fencing: a token after the restart (%d) is not larger than every token before (%d)", minTok2, maxTok1)
	}
	if firstNew < lastOld {
		t.Errorf("a command of the new server began (line %d) before every command of the old one had ended (line %d)", firstNew, lastOld)
	}
	if len(runningAtKill) == 0 {
		t.Errorf("no command was running at the kill: the test tested nothing")
	}

	// Exit statuses: the tnl-do runs that were running a command at the
	// kill stopped it and exit 122; those waiting exit 125 (122 when the
	// grant was on its way); every other run exits 0.
	terms, ends := 0, 0
	ranOld := map[string]bool{} // runs whose command ran under the old server's token
	for _, g := range rep.Grants {
		if g.Token <= maxTok1 {
			ranOld[g.ID] = true
		}
	}
	var codes []string
	for _, r := range f.Runs() {
		g := runningAtKill[r.ID]
		inFlight := r.Gen == 1 && r.Start.Before(tKill) && r.End.After(tKill)
		switch {
		case g != nil && g.Ended == "term":
			terms++
			stopped = append(stopped, g.Stop.Sub(tKill))
			if r.Code != 122 {
				t.Errorf("%s: tnl-do stopped its command (SIGTERM) but exited %d, want 122; stderr:\n%s", r.ID, r.Code, r.Stderr)
			}
		case g != nil:
			// The command finished its work as the server died, before
			// tnl-do heard: exit 0, or 122 if the loss came first.
			ends++
			if r.Code != 0 && r.Code != 122 {
				t.Errorf("%s: its command finished at the kill; tnl-do exited %d, want 0 or 122; stderr:\n%s", r.ID, r.Code, r.Stderr)
			}
		case inFlight && ranOld[r.ID]:
			// The old server's grant was on its way at the kill: the
			// command began just after it (inside the new server's
			// restart grace) and may have finished before tnl-do heard
			// of the loss: exit 0, or 122.
			if r.Code != 0 && r.Code != 122 {
				t.Errorf("%s: its grant came as the server died; tnl-do exited %d, want 0 or 122; stderr:\n%s", r.ID, r.Code, r.Stderr)
			}
		case inFlight:
			if r.Code != 125 && r.Code != 122 {
				t.Errorf("%s: tnl-do waiting at the kill exited %d, want 125 (or 122); stderr:\n%s", r.ID, r.Code, r.Stderr)
			}
		case r.Code != 0:
			t.Errorf("%s: tnl-do exited %d, want 0; stderr:\n%s", r.ID, r.Code, r.Stderr)
		}
		codes = append(codes, strconv.Itoa(r.Code))
	}
	if terms == 0 {
		t.Errorf("no command was stopped by SIGTERM at the kill (%d finished on their own)", ends)
	}
	slices.Sort(stopped)
	var worst time.Duration
	if len(stopped) > 0 {
		worst = stopped[len(stopped)-1]
	}
	counts := map[string]int{}
	for _, c := range codes {
		counts[c]++
	}
	msg := fmt.Sprintf("kill9: %d grants, overlaps=%d; %d commands running at the kill: %d stopped (last one %v after the kill, clean-up %dms included), %d finished; "+
		"restart took %v; first grant of the new server %v after its start; tokens before <= %d < %d after; exit statuses %v",
		len(rep.Grants), len(rep.Overlaps), len(runningAtKill), terms, worst.Round(time.Millisecond), f.stopMs, ends,
		tUp.Sub(tKill).Round(time.Millisecond), firstNewStart.Sub(tUp).Round(time.Millisecond), maxTok1, minTok2, counts)
	t.Log(msg)
	fmt.Println(msg)
	if t.Failed() {
		t.Logf("old server log:\n%s\nnew server log:\n%s", srv1.Log(), srv2.Log())
	}
}

// chaosLinesIn counts the complete lines in the first n bytes of path.
func chaosLinesIn(path string, n int64) int {
	b, _ := os.ReadFile(path)
	if int64(len(b)) > n {
		b = b[:n]
	}
	return bytes.Count(b, []byte("\n"))
}

// chaosTail returns the last n lines of path.
func chaosTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- a stalled server ----------------------------------------------------------

// TestCrashServerStall: the server stalls (SIGSTOP: a long GC pause, a
// frozen VM, swapping) while a client holds a lock and another asks for it.
// The holder hears nothing for half the dead-peer timeout, declares the lock
// lost and stops its command, which takes a while to clean up; then the
// server resumes. The waiter must not be granted the lock, nor start its
// command, before the holder's command has ended: the server has no way to
// know about the clean-up, so it must not take the holder's loss for a
// release until the holder's tnl-do says so by closing its connection.
func TestCrashServerStall(t *testing.T) {
	const (
		deadPeer  = 2 * time.Second
		killAfter = 900 * time.Millisecond // < deadPeer/2
		cleanup   = 600 * time.Millisecond // the holder's command winds down for this long
	)
	bin := bins(t)
	records := filepath.Join(t.TempDir(), "records")
	srv := chaosStartServer(t, nil, "--listen", "127.0.0.1:0", "--dead-peer-timeout", deadPeer.String())
	tnlDo := func(id, work string) *nsProc {
		return nsStart(t, []string{filepath.Join(bin, "tnl-do"), "-w", "inf", "--kill-after", killAfter.String(), "-s", srv.Addr, "stall", "--",
			"bash", chaosChild(t), records, id, work, strconv.Itoa(int(cleanup / time.Millisecond))})
	}
	holder := tnlDo("holder", "600000")
	if !chaosWait(10*time.Second, func() bool {
		recs, _ := chaosReadRecords(records)
		return len(recs) >= 2
	}) {
		t.Fatalf("the holder's command did not start:\n%s", holder.Output())
	}

	if err := srv.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	tStop := time.Now()
	waiter := tnlDo("waiter", "100")
	// The holder declares the lock lost after half the dead-peer timeout
	// of silence and sends SIGTERM to its command; the server resumes then.
	if !chaosWait(deadPeer+5*time.Second, func() bool {
		recs, _ := chaosReadRecords(records)
		return slices.ContainsFunc(recs, func(r chaosRec) bool { return r.Kind == "sigterm" })
	}) {
		srv.Signal(syscall.SIGCONT)
		t.Fatalf("the holder did not declare the lock lost:\n%s", holder.Output())
	}
	if err := srv.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	tCont := time.Now()
	hcode, hok := holder.Wait(10 * time.Second)
	wcode, wok := waiter.Wait(10 * time.Second)
	recs, err := chaosReadRecords(records)
	if err != nil {
		t.Fatal(err)
	}
	rep := chaosCheck(recs)
	var hg, wg *chaosGrant
	for _, g := range rep.Grants {
		switch g.ID {
		case "holder":
			hg = g
		case "waiter":
			wg = g
		}
	}
	if hg == nil || wg == nil {
		t.Fatalf("grants: %v; holder:\n%s\nwaiter:\n%s", rep.Grants, holder.Output(), waiter.Output())
	}
	msg := fmt.Sprintf("stall: server stopped for %s; holder declared the lock lost %s after the stop, its command ended %s after; waiter's command began %s after the stop; overlaps=%d",
		secs(tCont.Sub(tStop)), secs(hg.SigTerm.Sub(tStop)), secs(hg.Stop.Sub(tStop)), secs(wg.Start.Sub(tStop)), len(rep.Overlaps))
	t.Log(msg)
	fmt.Println(msg)
	for _, o := range rep.Overlaps {
		t.Errorf("overlap: %s", o)
	}
	for _, p := range rep.Problems {
		t.Errorf("records: %s", p)
	}
	if !hok || hcode != 122 {
		t.Errorf("holder: exited %v, status %d, want 122:\n%s", hok, hcode, holder.Output())
	}
	if !wok || wcode != 0 {
		t.Errorf("waiter: exited %v, status %d, want 0:\n%s", wok, wcode, waiter.Output())
	}
}

// ---- hostile clients and memory -----------------------------------------------

// chaosRSS is the resident set size of pid, in KiB.
func chaosRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the server's memory: %v", err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// chaosFDs is the number of open file descriptors of pid.
func chaosFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading the server's descriptors: %v", err)
	}
	return len(ents)
}

// chaosAsk sends one request on a fresh connection and returns the answer.
func chaosAsk(addr, line string, d time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	s, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

// chaosStats asks .stats and decodes its JSON.
func chaosStats(addr string) (map[string]int64, error) {
	s, err := chaosAsk(addr, ".stats", 2*time.Second)
	if err != nil {
		return nil, err
	}
	var m map[string]int64
	if err := json.Unmarshal([]byte(strings.TrimPrefix(s, "stats,")), &m); err != nil {
		return nil, fmt.Errorf("stats %q: %w", s, err)
	}
	return m, nil
}

// chaosStatsClosed is chaosStats that returns only once the server has
// closed the connection it asked on: it ends its side and reads to the
// server's end of file, which the server sends by closing its descriptor.
// The answer counts that connection in "connections"; a count of the
// server's descriptors taken after it does not: with chaosStats, it did or
// not, as the server happened to have read the end of file yet or not
// (the "65 after, 64 before" of a loaded machine).
func chaosStatsClosed(addr string) (map[string]int64, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, ".stats\n"); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	s, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return nil, err
	}
	if n, err := io.Copy(io.Discard, r); n != 0 || err != nil {
		return nil, fmt.Errorf("after the stats: %d more bytes, %v, want the server's end of file", n, err)
	}
	var m map[string]int64
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSuffix(s, "\n"), "stats,")), &m); err != nil {
		return nil, fmt.Errorf("stats %q: %w", s, err)
	}
	return m, nil
}

// chaosClosedBy reads from c until the server closes it, and reports how
// long that took, or an error if it did not within d.
func chaosClosedBy(c net.Conn, d time.Duration) (time.Duration, error) {
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, fmt.Errorf("still open after %v", d)
	}
	return time.Since(start), nil // EOF or a reset: closed by the server
}

// chaosAttack is one round of hostile clients against addr: idle
// connections, random binary, 1 MiB lines and slowlorises. Each must be cut
// by the server within bound. It returns when every attacker is gone, with
// the slowest cut and the errors.
func chaosAttack(addr string, idle int, bound time.Duration, seed int64, during func()) (slowest time.Duration, errs []string) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	note := func(d time.Duration) {
		mu.Lock()
		slowest = max(slowest, d)
		mu.Unlock()
	}
	// Idle connections: each closed by the first-line timeout.
	for i := range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fail("idle connection %d: %v", i, err)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			d, err := chaosClosedBy(c, bound)
			if err != nil {
				fail("idle connection: %v", err)
			}
			note(d)
		}()
	}
	// Random binary, 64 KiB per connection: refused, cut.
	rnd := rand.New(rand.NewSource(seed))
	for i := range 20 {
		junk := make([]byte, 64<<10)
		rnd.Read(junk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fail("binary %d: %v", i, err)
				return
			}
			defer c.Close()
			go c.Write(junk) // may fail once the server has refused it
			d, err := chaosClosedBy(c, bound)
			if err != nil {
				fail("binary %d: %v", i, err)
			}
			note(d)
		}()
	}
	// 1 MiB lines: "err,line too long", cut.
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fail("long line %d: %v", i, err)
				return
			}
			defer c.Close()
			line := append(bytes.Repeat([]byte("lock,name:"), (1<<20)/10), '\n')
			go c.Write(line)
			r := bufio.NewReader(c)
			c.SetReadDeadline(time.Now().Add(bound))
			if s, err := r.ReadString('\n'); s != "err,line too long\n" {
				fail("long line %d: answered %q (%v), want err,line too long", i, s, err)
			}
			d, err := chaosClosedBy(c, bound)
			if err != nil {
				fail("long line %d: %v", i, err)
			}
			note(d)
		}()
	}
	// Slowlorises: three bytes every 100 ms, never a whole line.
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fail("slowloris %d: %v", i, err)
				return
			}
			defer c.Close()
			closed := make(chan time.Duration, 1)
			go func() {
				d, err := chaosClosedBy(c, bound)
				if err != nil {
					fail("slowloris %d: %v", i, err)
				}
				closed <- d
			}()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case d := <-closed:
					note(d)
					return
				case <-tick.C:
					c.Write([]byte("loc"))
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return slowest, errs
		case <-tick.C:
			during()
		}
	}
}

// TestHostileMemory: rounds of hostile clients (500 idle connections,
// random binary, 1 MiB lines, slowlorises at three bytes per 100 ms) are
// refused or cut within their bounds; a legacy holder keeps its lock and
// other clients are served all along; once the attackers are gone the
// server's connections, lock table and file descriptors are back to their
// baseline exactly, the server has handed its free memory back (it logs
// that), and its resident memory is within 10% of its baseline plus a slack.
//
// Why a slack, and why the exact checks carry the weight: Go never frees
// some of what a connection needs, it keeps it for the next one: the
// goroutine's descriptor (about 450 bytes, kept in the runtime's list of all
// goroutines) and the poll descriptor (kept in non-GC memory, as epoll may
// still point at it), plus the runtime's own bookkeeping of a larger heap.
// Measured in-process with runtime/metrics around 500 idle connections,
// after debug.FreeOSMemory: RSS 1.2 MiB above the baseline, heap objects
// +264 KiB, "other" runtime memory +615 KiB, metadata +130 KiB; and the
// kernel counts RSS in whole pages. Before the server returned memory after
// surges (lib/server/reclaim.go), RSS stayed 4 to 6 MiB above the baseline
// until the runtime's forced GC two minutes later. So the strict 10% is
// reported, and RSS is bounded with the 2 MiB slack below, which a leak of
// the connections would still exceed (and which the descriptor and
// connection counts catch exactly).
func TestHostileMemory(t *testing.T) {
	const (
		firstLine = 500 * time.Millisecond
		idle      = 500
		rounds    = 3
		slackKiB  = 2 << 10 // what the Go runtime never frees: see above
		// The server's return of memory after a surge: its wait for the
		// surge to end (up to 2s), the wait between two returns (1s), and
		// a busy machine.
		reclaimBound = 10 * time.Second
		reclaimed    = "returned free memory to the system"
	)
	srv := chaosStartServer(t, nil, "--listen", "127.0.0.1:0", "--first-line-timeout", firstLine.String())
	addr := srv.Addr

	// The legacy holder: tcpnetlock's tnl_client holds silently.
	holder, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	hr := bufio.NewReader(holder)
	io.WriteString(holder, "lock,name:mem-held,client-id:legacy\n")
	holder.SetReadDeadline(time.Now().Add(5 * time.Second))
	if s, err := hr.ReadString('\n'); s != "ok\n" || err != nil {
		t.Fatalf("legacy lock: %q %v", s, err)
	}
	checks, bad := 0, 0
	stillHeld := func(when string) {
		checks++
		if s, err := chaosAsk(addr, "lock,name:mem-held", 2*time.Second); s != "not-granted" || err != nil {
			bad++
			t.Errorf("%s: another client got %q (%v) for the held lock, want not-granted", when, s, err)
		}
		if s, err := chaosAsk(addr, ".ping", time.Second); s != "pong" || err != nil {
			bad++
			t.Errorf("%s: .ping answered %q (%v) within 1s, want pong", when, s, err)
		}
	}

	// Warm up with ordinary traffic, so that the baseline includes what
	// any served server has (runtime caches, the first goroutines).
	for range 200 {
		if _, err := chaosAsk(addr, ".ping", 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// The baseline: the holder's connection and the one asking, once the
	// warm-up's connections are all closed on the server's side too.
	var st0 map[string]int64
	if !chaosWait(5*time.Second, func() bool {
		st0, err = chaosStatsClosed(addr)
		return err == nil && st0["connections"] == 2
	}) {
		t.Fatalf("stats before the attack: %v (%v), want 2 connections", st0, err)
	}
	base, fds0 := chaosRSS(t, srv.Pid), chaosFDs(t, srv.Pid)
	same := func(st map[string]int64) bool {
		for _, k := range []string{"connections", "sessions", "lock_count", "names", "waiting"} {
			if st[k] != st0[k] {
				return false
			}
		}
		return true
	}

	// The bound on any attacker: the first-line timeout, the server's
	// one-second drain of refused input, and scheduling on a busy machine.
	bound := firstLine + 3*time.Second
	var peak int64
	var after []int64
	var back []time.Duration // how long each round's memory took to come back
	var slowest time.Duration
	var st map[string]int64
	fds := 0
	for round := range rounds {
		n := 0
		returns := strings.Count(srv.Log(), reclaimed)
		sl, errs := chaosAttack(addr, idle, bound, int64(round), func() {
			peak = max(peak, chaosRSS(t, srv.Pid))
			if n++; n%10 == 0 {
				stillHeld(fmt.Sprintf("round %d, during the attack", round+1))
			}
		})
		slowest = max(slowest, sl)
		for _, e := range errs {
			t.Errorf("round %d: %s", round+1, e)
		}
		// The attackers are gone: connections, lock table and descriptors
		// are back to the baseline.
		if !chaosWait(10*time.Second, func() bool {
			st, err = chaosStatsClosed(addr)
			fds = chaosFDs(t, srv.Pid)
			return err == nil && same(st) && fds <= fds0
		}) {
			t.Errorf("round %d: after the attack: stats %v and %d descriptors; before: %v and %d (%v)", round+1, st, fds, st0, fds0, err)
		}
		stillHeld(fmt.Sprintf("round %d, after the attack", round+1))
		// The server hands its free memory back once a surge has ended
		// (lib/server/reclaim.go), and logs it: wait for this round's line.
		t0 := time.Now()
		if !chaosWait(reclaimBound, func() bool {
			return strings.Count(srv.Log(), reclaimed) > returns
		}) {
			t.Errorf("round %d: the server did not log %q within %v", round+1, reclaimed, reclaimBound)
		}
		back = append(back, time.Since(t0).Round(10*time.Millisecond))
		after = append(after, chaosRSS(t, srv.Pid))
		peak = max(peak, after[round])
	}
	if s, err := func() (string, error) {
		io.WriteString(holder, ".keepalive\n")
		holder.SetReadDeadline(time.Now().Add(2 * time.Second))
		return hr.ReadString('\n')
	}(); s != "alive\n" || err != nil {
		t.Errorf("the legacy holder's connection: .keepalive answered %q (%v), want alive", s, err)
	}

	last := after[len(after)-1]
	strict := base + base/10
	limit := strict + slackKiB
	verdict := "met"
	if last > strict {
		verdict = fmt.Sprintf("not met by %d KiB: runtime structures Go keeps for the next connections", last-strict)
	}
	msg := fmt.Sprintf("hostile: %d rounds of %d idle + 20 random-binary + 10 x 1 MiB-line + 20 slowloris connections; "+
		"RSS %d KiB at baseline, %d KiB at the peak, %v KiB after each round (after %v); strict +10%% (%d KiB) %s; limit with the %d KiB slack %d KiB; "+
		"connections %d -> %d, descriptors %d -> %d, requests %d; slowest attacker cut after %v; legacy holder kept its lock (%d checks, %d failed)",
		rounds, idle, base, peak, after, back, strict, verdict, slackKiB, limit,
		st0["connections"], st["connections"], fds0, fds, st["requests_count"], slowest.Round(time.Millisecond), checks, bad)
	t.Log(msg)
	fmt.Println(msg)
	if last > limit {
		t.Errorf("server memory did not come back: %d KiB after the attacks, baseline %d KiB, limit %d KiB", last, base, limit)
	}
}

// TestHostileMemoryHolders (issue 9): the .holders answer and session waits
// against a large table. 50 sessions wait for each of 10,000 names held by
// one session (500,000 waits, client ids of 200 bytes: the table that once
// made one .holders answer a 322 MB line). Then 300 connections ask for
// .holders and never read: half once, half in sessions with 50 requests
// each. All along, the server's resident memory stays under rssBound, an
// honest client's .pings, one after another, are all answered "pong", none
// refused, cut or left unanswered before the test's own deadline, and a
// legacy holder keeps its lock. Their round trips (p50 and p99) are printed,
// not bounded: how long a round trip takes here depends on what else the
// machine runs (1.9s seen for p99 on a loaded one); latency under attack
// is for the benchmarks. The readers that
// never read are cut within the dead-peer timeout of their answer, and the
// server's connections and descriptors come back to what they were.
func TestHostileMemoryHolders(t *testing.T) {
	const (
		names     = 10000
		waiters   = 50
		slow      = 300
		pipelined = 50        // .holders per slow session
		rssBound  = 256 << 10 // KiB
		deadPeer  = 6 * time.Second
		attackFor = 4 * time.Second
		maxAnswer = 1 << 20 // the server's default --max-answer-bytes
		idLen     = 200
	)
	srv := chaosStartServer(t, nil, "--listen", "127.0.0.1:0", "--dead-peer-timeout", deadPeer.String())
	addr := srv.Addr
	deadline := time.Now().Add(3 * time.Minute) // no step of this test may hang it
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(deadline)
		t.Cleanup(func() { c.Close() })
		return c
	}

	// The legacy holder, as in TestHostileMemory.
	holder := dial()
	hr := bufio.NewReader(holder)
	io.WriteString(holder, "lock,name:mem-held,client-id:legacy\n")
	if s, err := hr.ReadString('\n'); s != "ok\n" || err != nil {
		t.Fatalf("legacy lock: %q %v", s, err)
	}

	// The table: sessions that stay alive (a keepalive a second, answers
	// read) while the attack runs.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	defer func() { close(stop); bg.Wait() }()
	session := func(id string, lines []byte, want string) {
		c := dial()
		r := bufio.NewReaderSize(c, 64<<10)
		go func() { c.Write([]byte(".session,client-id:" + id + "\n")); c.Write(lines) }()
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("session %.20s...: %v", id, err)
			}
			if s == want {
				break
			}
		}
		bg.Add(1)
		go func() {
			defer bg.Done()
			go io.Copy(io.Discard, r)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					io.WriteString(c, ".keepalive\n")
				}
			}
		}()
	}
	name := func(i int) string { return fmt.Sprintf("big-%05d", i) } // before mem-held
	var held bytes.Buffer
	for i := range names {
		fmt.Fprintf(&held, "lock,name:%s\n", name(i))
	}
	held.WriteString(".ping\n")
	t0 := time.Now()
	session(strings.Repeat("h", idLen), held.Bytes(), "pong\n")
	var wg sync.WaitGroup
	for j := range waiters {
		var b bytes.Buffer
		for i := range names {
			fmt.Fprintf(&b, "lock,name:%s,wait:inf\n", name(i))
		}
		b.WriteString(".ping\n")
		wg.Go(func() { session(fmt.Sprintf("%0*d", idLen, j), b.Bytes(), "pong\n") })
	}
	wg.Wait()
	setup := time.Since(t0)
	st, err := chaosStatsClosed(addr)
	if err != nil || st["lock_count"] != names+1 || st["waiting"] != names*waiters {
		t.Fatalf("the table: %v (%v), want %d held and %d waiting", st, err, names+1, names*waiters)
	}
	base, fds0, conns0 := chaosRSS(t, srv.Pid), chaosFDs(t, srv.Pid), st["connections"]-1

	// One honest .holders over it all: within the answer bound, one valid
	// line, the first names in order, cut and saying so.
	c := dial()
	io.WriteString(c, ".holders\n")
	line, err := bufio.NewReaderSize(c, 64<<10).ReadString('\n')
	if err != nil || len(line) > maxAnswer || !strings.HasPrefix(line, "holders,{") || !strings.HasSuffix(line, `],"truncated":true}`+"\n") {
		t.Fatalf(".holders: %d bytes (%v), want at most %d ending in \"truncated\":true: %.200q...", len(line), err, maxAnswer, line)
	}
	var doc struct {
		Locks []struct {
			Name    string
			Holders []struct {
				ClientID string `json:"client_id"`
			}
			Waiters []struct {
				ClientID string `json:"client_id"`
			}
		}
		Truncated bool
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "holders,")), &doc); err != nil || !doc.Truncated || len(doc.Locks) == 0 {
		t.Fatalf(".holders: %v, %d locks, truncated %v", err, len(doc.Locks), doc.Truncated)
	}
	listed := 0
	for i, l := range doc.Locks {
		listed += len(l.Holders) + len(l.Waiters)
		full := len(l.Holders) == 1 && len(l.Waiters) == waiters
		if l.Name != name(i) || len(l.Holders) != 1 || (!full && i < len(doc.Locks)-1) {
			t.Fatalf(".holders: lock %d is %s with %d holders and %d waiters, want %s with 1 and %d", i, l.Name, len(l.Holders), len(l.Waiters), name(i), waiters)
		}
	}
	answer := len(line)

	// The attack.
	var peak int64
	var mu sync.Mutex
	var pings []time.Duration
	var pingErrs []string
	var pwg sync.WaitGroup
	pstop := make(chan struct{})
	pwg.Go(func() {
		for {
			select {
			case <-pstop:
				return
			default:
			}
			t := time.Now()
			// No bound of its own: only a server that stops answering
			// others fails, not a busy machine.
			s, err := chaosAsk(addr, ".ping", time.Until(deadline))
			d := time.Since(t)
			mu.Lock()
			if s != "pong" || err != nil {
				pingErrs = append(pingErrs, fmt.Sprintf("%q %v", s, err))
			}
			pings = append(pings, d)
			mu.Unlock()
		}
	})
	over := func() bool {
		peak = max(peak, chaosRSS(t, srv.Pid))
		return peak > rssBound
	}
	attackers := make([]net.Conn, 0, slow)
	aStart := time.Now()
	for i := range slow {
		c := dial()
		if i%2 == 0 {
			io.WriteString(c, ".holders\n")
		} else {
			io.WriteString(c, ".session\n"+strings.Repeat(".holders\n", pipelined))
		}
		attackers = append(attackers, c)
		if i%10 == 0 && over() {
			break
		}
	}
	checks, bad := 0, 0
	for n, end := 0, time.Now().Add(attackFor); time.Now().Before(end) && !over(); n++ {
		if n%25 == 0 { // every half second or so
			checks++
			if s, err := chaosAsk(addr, "lock,name:mem-held", 2*time.Second); s != "not-granted" || err != nil {
				bad++
				t.Errorf("during the attack: another client got %q (%v) for the held lock, want not-granted", s, err)
			}
		}
		time.Sleep(20 * time.Millisecond) // the sampling period of RSS, not a synchronisation
	}
	close(pstop)
	pwg.Wait()
	if peak > rssBound {
		srv.Kill() // before it takes the machine with it
		t.Fatalf("server RSS %d KiB during the attack, bound %d KiB (%d KiB before it)", peak, rssBound, base)
	}

	// Every attacker is cut within the dead-peer timeout of its answer:
	// the server's connections are those of the table and the holder.
	var cut time.Duration
	// chaosStatsClosed: once the count is right, every connection but the
	// stats one was closed before the answer (the server counts one down
	// after closing it), and the stats one is closed when it returns.
	if !chaosWait(deadPeer+10*time.Second, func() bool {
		st, err = chaosStatsClosed(addr)
		return err == nil && st["connections"]-1 == conns0
	}) {
		t.Errorf("the attackers were not all cut: %v connections (%v), want %d", st["connections"]-1, err, conns0)
	}
	cut = time.Since(aStart)
	fds := chaosFDs(t, srv.Pid)
	if fds > fds0 {
		t.Errorf("descriptors: %d after the attack, %d before", fds, fds0)
	}
	for _, c := range attackers {
		c.Close()
	}
	if st["lock_count"] != names+1 || st["waiting"] != names*waiters {
		t.Errorf("the table after the attack: %v, want %d held and %d waiting", st, names+1, names*waiters)
	}
	if s, err := chaosAsk(addr, "lock,name:mem-held", 2*time.Second); s != "not-granted" || err != nil {
		t.Errorf("after the attack: another client got %q (%v) for the held lock, want not-granted", s, err)
	}

	slices.Sort(pings)
	if len(pings) == 0 {
		t.Fatal("no .ping measured")
	}
	p50, p99 := pings[len(pings)/2], pings[len(pings)*99/100]
	for _, e := range pingErrs {
		t.Errorf(".ping during the attack: %s", e)
	}
	msg := fmt.Sprintf("hostile holders: %d names held, %d x %d waits (client ids of %d bytes), set up in %v; one .holders %d bytes, %d parties, truncated %v; "+
		"%d readers that never read (%d one-shot, %d sessions x %d .holders) for %v: RSS %d KiB before, %d KiB at the peak (bound %d KiB); "+
		".ping p50 %v p99 %v over %d (%d not answered); all cut after %v; legacy holder kept its lock (%d checks, %d failed)",
		names, waiters, names, idLen, setup.Round(time.Millisecond), answer, listed, doc.Truncated,
		len(attackers), (len(attackers)+1)/2, len(attackers)/2, pipelined, attackFor, base, peak, rssBound,
		p50.Round(time.Microsecond), p99.Round(time.Microsecond), len(pings), len(pingErrs), cut.Round(10*time.Millisecond), checks, bad)
	t.Log(msg)
	fmt.Println(msg)
}

// ---- the soak (make chaos) -------------------------------------------------------

// TestChaosSoak (make chaos; $TNL_CHAOS is its duration, e.g. 5m): 15 loops
// of "tnl-do -w inf" on four names, while random events hit them: kill -9
// and restart of the server (same port, same --state-dir), kill -9 of a
// tnl-do, partitions of one client host or of the server host (network
// namespaces, when there are), and stalls of the server (SIGSTOP, SIGCONT).
// Then every grant is replayed: no two commands of one name ever wrote at
// once, and tokens increase in grant order. $TNL_CHAOS_SEED repeats a run;
// TNL_CHAOS_NETNS=off uses the fallback for hosts without namespaces.
func TestChaosSoak(t *testing.T) {
	v := os.Getenv("TNL_CHAOS")
	if v == "" {
		t.Skip("chaos: skipped: the soak runs with make chaos (TNL_CHAOS=5m)")
	}
	total, err := time.ParseDuration(v)
	if err != nil || total <= 0 {
		t.Fatalf("TNL_CHAOS=%q: want a duration such as 5m", v)
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("TNL_CHAOS_SEED"); s != "" {
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("TNL_CHAOS_SEED=%q: %v", s, err)
		}
	}
	rnd := rand.New(rand.NewSource(seed))
	const (
		deadPeer  = 2 * time.Second
		killAfter = 500 * time.Millisecond
		loops     = 15
	)
	names := []string{"soak-0", "soak-1", "soak-2", "soak-3"}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	records := filepath.Join(dir, "records")

	var lab *nsLab
	why := "TNL_CHAOS_NETNS=off"
	if os.Getenv("TNL_CHAOS_NETNS") != "off" { // off: try the fallback by hand
		lab, why = tryNSLab(t, 3)
	}
	var mode string
	var prefix []string
	listenHost := "127.0.0.1"
	if lab != nil {
		mode = fmt.Sprintf("netns: server + %d client hosts, cut by %s", len(lab.Clients), lab.How)
		prefix = lab.Exec(lab.Server)
		listenHost = "0.0.0.0" // inside the server's namespace only
	} else {
		mode = "loopback, partitions by SIGSTOP of the server (" + why + ")"
	}
	srvArgs := func(port string) []string {
		return []string{"--listen", net.JoinHostPort(listenHost, port), "--state-dir", state, "--dead-peer-timeout", deadPeer.String()}
	}
	srv := chaosStartServer(t, prefix, srvArgs("0")...)
	port := srv.Port()

	f := newChaosFleet(t, records, names)
	f.killAfter = killAfter.String()
	f.workMs, f.stopMs = 200, 300 // a clean-up after SIGTERM of 300ms, within --kill-after
	f.maxIter = 100000
	if lab != nil {
		f.host = func(i int) string { return lab.ServerIP[i%len(lab.Clients)] }
		f.prefix = func(i int) []string { return lab.Exec(lab.Clients[i%len(lab.Clients)]) }
	}
	gen := 1
	f.NewGen(gen)
	f.Ready(port)
	f.Start(loops)
	t.Logf("chaos: %v, seed %d, %s, %d loops on %d names", total, seed, mode, loops, len(names))

	var serverKills, clientKills, cuts, serverCuts, stalls int
	cut := map[string]time.Time{} // namespace -> when it heals
	var stalledUntil time.Time
	healAll := func() {
		for ns := range cut {
			if err := lab.Heal(ns); err != nil {
				t.Errorf("heal %s: %v", ns, err)
			}
			delete(cut, ns)
		}
		if !stalledUntil.IsZero() {
			srv.Signal(syscall.SIGCONT)
			stalledUntil = time.Time{}
		}
	}
	end := time.Now().Add(total)
	next := time.Now()
	for time.Now().Before(end) {
		// Heal what is due, then wait for the next event.
		now := time.Now()
		for ns, until := range cut {
			if now.After(until) {
				if err := lab.Heal(ns); err != nil {
					t.Fatalf("heal %s: %v", ns, err)
				}
				delete(cut, ns)
			}
		}
		if !stalledUntil.IsZero() && now.After(stalledUntil) {
			srv.Signal(syscall.SIGCONT)
			stalledUntil = time.Time{}
		}
		if now.Before(next) {
			wake := next
			for _, until := range cut {
				if until.Before(wake) {
					wake = until
				}
			}
			if !stalledUntil.IsZero() && stalledUntil.Before(wake) {
				wake = stalledUntil
			}
			<-time.After(time.Until(wake)) // the schedule of events, not a synchronisation
			continue
		}
		next = now.Add(time.Duration(300+rnd.Intn(1200)) * time.Millisecond)
		// A partition or stall lasts from well under half the dead-peer
		// timeout (nobody notices) to well over all of it.
		outage := time.Duration(200+rnd.Intn(3800)) * time.Millisecond
		switch p := rnd.Intn(100); {
		case p < 12: // kill -9 of the server, restart on the same port
			healAll()
			gen++
			f.NewGen(gen)
			srv.Kill()
			srv = chaosStartServer(t, prefix, srvArgs(port)...)
			f.Ready(port)
			serverKills++
		case p < 50:
			if f.KillOne(rnd) != nil {
				clientKills++
			}
		case p < 80 && lab != nil: // one client host vanishes for a while
			ns := lab.Clients[rnd.Intn(len(lab.Clients))]
			if _, ok := cut[ns]; ok {
				continue
			}
			if err := lab.Cut(ns); err != nil {
				t.Fatal(err)
			}
			cut[ns] = now.Add(outage)
			cuts++
		case p < 88 && lab != nil: // the server's host vanishes for a while
			if _, ok := cut[lab.Server]; ok {
				continue
			}
			if err := lab.Cut(lab.Server); err != nil {
				t.Fatal(err)
			}
			cut[lab.Server] = now.Add(outage)
			serverCuts++
		case p < 95 || lab == nil: // the server stalls
			if !stalledUntil.IsZero() {
				continue
			}
			srv.Signal(syscall.SIGSTOP)
			stalledUntil = now.Add(outage)
			stalls++
		}
	}
	if lab != nil {
		healAll()
	} else if !stalledUntil.IsZero() {
		srv.Signal(syscall.SIGCONT)
	}
	if !f.Stop(60 * time.Second) {
		t.Errorf("the loops did not end within 60s of being asked to")
	}

	recs, err := chaosReadRecords(records)
	if err != nil {
		t.Fatal(err)
	}
	rep := chaosCheck(recs)
	for _, o := range rep.Overlaps {
		t.Errorf("overlap: %s", o)
	}
	for _, p := range rep.Problems {
		t.Errorf("records: %s", p)
	}
	runs := f.Runs()
	killed := map[string]bool{}
	codes := map[string]int{}
	for _, r := range runs {
		switch {
		case r.Killed:
			killed[r.ID] = true
			codes["killed"]++
		case r.Code == 0 || r.Code == 122 || r.Code == 125:
			codes[strconv.Itoa(r.Code)]++
		default:
			codes[strconv.Itoa(r.Code)]++
			t.Errorf("%s: tnl-do exited %d, want 0, 122 or 125; stderr:\n%s", r.ID, r.Code, r.Stderr)
		}
	}
	unfinished := 0
	for _, g := range rep.Unfinished() {
		unfinished++
		if !killed[g.ID] {
			t.Errorf("%s never ended, and its tnl-do was not killed by the test", g)
		}
	}
	perName := map[string]int{}
	for _, g := range rep.Grants {
		perName[g.Name]++
	}
	for _, n := range names {
		if perName[n] == 0 {
			t.Errorf("%s was never granted", n)
		}
	}
	msg := fmt.Sprintf("chaos: %v, seed %d, %s: grants=%d %v, tnl-do runs=%d (exit %v), server kills=%d, client kills=%d, "+
		"client partitions=%d, server partitions=%d, server stalls=%d, commands killed outright=%d, overlaps=%d, token-order problems=%d",
		total, seed, mode, len(rep.Grants), perName, len(runs), codes, serverKills, clientKills, cuts, serverCuts, stalls,
		unfinished, len(rep.Overlaps), len(rep.Problems))
	t.Log(msg)
	fmt.Println(msg)
	if t.Failed() {
		t.Logf("server log (last generation):\n%s", srv.Log())
		t.Logf("seed %d repeats this run: TNL_CHAOS=%v TNL_CHAOS_SEED=%d", seed, total, seed)
	}
}
