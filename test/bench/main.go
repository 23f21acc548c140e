// Command bench is tnl's load generator: it starts tnl-server (built from
// this tree), redis, etcd and a null server on loopback ports chosen at run
// time, drives each with the same scenarios, and prints Markdown tables of
// the results, the ratios tnl/peer and the goals of issue 6, writing the raw
// numbers as JSON.
//
// It is a test tool, not shipped, and lives in its own Go module so that the
// etcd and redis clients never enter tnl's go.mod. It speaks the tnl protocol
// itself (tnlwire.go) rather than through lib/client, so that tnl-server and
// the null server are driven by identical code paths.
//
//	go run . [-quick] [-repo ../..] [-out bench-results/x.json]
//	go run . nullserver -listen 127.0.0.1:0
//
// Every load goes to 127.0.0.1 only; every loop is bounded by count and time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "nullserver" {
		os.Exit(runNullServer(os.Args[2:], os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	quick      bool
	repo       string
	tnlBin     string
	out        string
	peers      map[string]bool
	scenarios  map[string]bool
	modes      map[string]bool
	workers    []int
	warmup     time.Duration
	measure    time.Duration
	maxCycles  int
	hold       time.Duration
	heldConns  int
	heldLocks  int
	heldSConns int
	settle     time.Duration
	etcdHeld   int
	procRuns   int
	backoffMin time.Duration
	backoffMax time.Duration
}

// sizes of a full and a quick run: `make bench` must stay under 5 minutes
// and `make bench-quick` under 1 on 2 cores.
var (
	fullSizes  = config{warmup: 500 * time.Millisecond, measure: 5 * time.Second, heldConns: 10_000, heldLocks: 1_000_000, settle: time.Second, etcdHeld: 10_000, procRuns: 100}
	quickSizes = config{warmup: 200 * time.Millisecond, measure: time.Second, heldConns: 10_000, heldLocks: 200_000, settle: 500 * time.Millisecond, etcdHeld: 1_000, procRuns: 20}
)

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var peers, scenarios, modes, workers string
	fs.BoolVar(&c.quick, "quick", false, "small sizes and short runs (make bench-quick, under a minute)")
	fs.StringVar(&c.repo, "repo", "../..", "root of the tnl tree, to build tnl-server, tnl-do and tnl-lock from")
	fs.StringVar(&c.tnlBin, "tnl-bin", "", "use prebuilt tnl-server, tnl-do, tnl-lock from this directory instead of building them")
	fs.StringVar(&c.out, "out", "", "write the raw results as JSON here (default bench-results/bench-TIME.json)")
	fs.StringVar(&peers, "peers", "tnl,null,redis,etcd", "peers to run, comma-separated")
	fs.StringVar(&scenarios, "scenarios", "uncontended,contended,held,process", "scenarios to run, comma-separated")
	fs.StringVar(&modes, "modes", "legacy,session", "uncontended: modes of tnl and the null server to run")
	fs.StringVar(&workers, "workers", "1,8,64", "worker counts of the uncontended scenario")
	fs.DurationVar(&c.warmup, "warmup", 0, "warm-up before each measured run (default 500ms, quick 200ms)")
	fs.DurationVar(&c.measure, "duration", 0, "measured time of each load run (default 5s, quick 1s)")
	fs.DurationVar(&c.hold, "hold", 0, "contended: how long each worker holds the lock (the issue's scenario: 0)")
	fs.IntVar(&c.maxCycles, "max-cycles", 50_000_000, "upper bound on one worker's cycles in one run")
	fs.IntVar(&c.heldConns, "held-conns", 0, "held: connections each holding a legacy lock (default 10000)")
	fs.IntVar(&c.heldLocks, "held-locks", 0, "held: locks over session connections (default 1000000, quick 200000)")
	fs.IntVar(&c.heldSConns, "held-session-conns", 4, "held: session connections the locks are spread over")
	fs.DurationVar(&c.settle, "held-settle", 0, "held: read RSS again this long after the last grant (default 1s, quick 500ms)")
	fs.IntVar(&c.etcdHeld, "etcd-held", 0, "held: mutexes held in etcd (default 10000, quick 1000)")
	fs.IntVar(&c.procRuns, "process-runs", 0, "process: runs of each command (default 100, quick 20)")
	fs.DurationVar(&c.backoffMin, "redis-backoff-min", 50*time.Microsecond, "redis: first retry backoff when the lock is taken")
	fs.DurationVar(&c.backoffMax, "redis-backoff-max", 2*time.Millisecond, "redis: largest retry backoff")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	sz := fullSizes
	if c.quick {
		sz = quickSizes
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defD(&c.warmup, sz.warmup)
	defD(&c.measure, sz.measure)
	defD(&c.settle, sz.settle)
	def(&c.heldConns, sz.heldConns)
	def(&c.heldLocks, sz.heldLocks)
	def(&c.etcdHeld, sz.etcdHeld)
	def(&c.procRuns, sz.procRuns)
	def(&c.heldSConns, 4)
	if c.backoffMin <= 0 || c.backoffMax < c.backoffMin {
		return nil, fmt.Errorf("redis backoff: need 0 < min <= max")
	}
	var err error
	if c.peers, err = set(peers, "tnl", "null", "redis", "etcd"); err != nil {
		return nil, fmt.Errorf("-peers: %w", err)
	}
	if c.scenarios, err = set(scenarios, "uncontended", "contended", "held", "process"); err != nil {
		return nil, fmt.Errorf("-scenarios: %w", err)
	}
	if c.modes, err = set(modes, "legacy", "session"); err != nil {
		return nil, fmt.Errorf("-modes: %w", err)
	}
	for _, w := range strings.Split(workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("-workers: %q is not a count in 1..1024", w)
		}
		c.workers = append(c.workers, n)
	}
	return &c, nil
}

// set parses a comma-separated list of words out of allowed.
func set(list string, allowed ...string) (map[string]bool, error) {
	m := map[string]bool{}
	for _, w := range strings.Split(list, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == w
		}
		if !ok {
			return nil, fmt.Errorf("unknown %q (want some of %s)", w, strings.Join(allowed, ","))
		}
		m[w] = true
	}
	return m, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	b := &bench{cfg: cfg, log: stderr, rep: &Report{Started: time.Now(), Quick: cfg.quick}}
	b.rep.Host = hostInfo()
	if n, err := raiseNofile(); err != nil {
		fmt.Fprintf(stderr, "bench: raising the open-files limit: %v\n", err)
	} else {
		b.rep.Host["nofile"] = n
		// Each held connection costs one fd here and one in the server.
		if need := uint64(cfg.heldConns + 256); n < need && cfg.scenarios["held"] {
			cfg.heldConns = int(n) - 256
			b.skip("held: open-files hard limit %d: only %d connections", n, cfg.heldConns)
		}
	}
	b.rep.Config = map[string]any{
		"workers": cfg.workers, "warmup_s": cfg.warmup.Seconds(), "measure_s": cfg.measure.Seconds(),
		"held_conns": cfg.heldConns, "held_locks": cfg.heldLocks, "held_session_conns": cfg.heldSConns, "held_settle_s": cfg.settle.Seconds(),
		"etcd_held": cfg.etcdHeld, "process_runs": cfg.procRuns, "contended_hold_s": cfg.hold.Seconds(),
		"redis_backoff": []string{cfg.backoffMin.String(), cfg.backoffMax.String()},
	}
	tmp, err := os.MkdirTemp("", "tnl-bench-")
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	b.tmp = tmp

	b.buildTnl(ctx)
	b.runAll(ctx)
	b.rep.Elapsed = time.Since(b.rep.Started).Seconds()
	b.rep.Host["loadavg_end"] = loadavg()
	b.rep.evalTargets()

	out := cfg.out
	if out == "" {
		kind := "bench"
		if cfg.quick {
			kind = "bench-quick"
		}
		out = filepath.Join("bench-results", kind+"-"+b.rep.Started.Format("20060102-150405")+".json")
	}
	b.rep.printMarkdown(stdout)
	status := 0
	if err := b.rep.writeJSON(out); err != nil {
		fmt.Fprintf(stderr, "bench: writing results: %v\n", err)
		status = 1
	} else {
		fmt.Fprintf(stdout, "raw results: %s (%.0f s in all)\n", out, b.rep.Elapsed)
	}
	for _, r := range b.rep.Results {
		if r.failed() {
			fmt.Fprintf(stderr, "bench: FAILED: %s\n", r.summary())
			status = 1
		}
	}
	if b.failed {
		status = 1
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "bench: interrupted")
		status = 130
	}
	return status
}

func hostInfo() map[string]any {
	h := map[string]any{"cpus": runtime.NumCPU(), "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h["kernel"] = strings.TrimSpace(string(b))
	}
	h["loadavg_start"] = loadavg()
	return h
}

// loadavg is the 1-minute load average: on a machine shared with other work,
// it says how much to trust the numbers.
func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

type bench struct {
	cfg    *config
	log    io.Writer
	rep    *Report
	tmp    string
	failed bool // a peer that should have run did not

	tnlServer, tnlDo, tnlLock string // built binaries, "" when absent
}

func (b *bench) skip(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if slices.Contains(b.rep.Skipped, s) {
		return // a peer missing for one phase is missing for all
	}
	b.rep.Skipped = append(b.rep.Skipped, s)
	fmt.Fprintf(b.log, "bench: skipped: %s\n", s)
}

func (b *bench) add(r *Result) {
	b.rep.Results = append(b.rep.Results, r)
	fmt.Fprintf(b.log, "bench: %5.1fs %s\n", time.Since(b.rep.Started).Seconds(), r.summary())
}

// buildTnl builds tnl-server, tnl-do and tnl-lock from the tree (static, as
// released), side by side, or finds them in -tnl-bin. A command another
// helper has not written yet, or that does not build, is skipped with one
// line.
func (b *bench) buildTnl(ctx context.Context) {
	t0 := time.Now()
	dir := filepath.Join(b.tmp, "bin")
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	names := []string{"tnl-server", "tnl-do", "tnl-lock"}
	paths := make([]string, len(names))
	skips := make([]string, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		if name == "tnl-server" && !b.cfg.peers["tnl"] {
			continue
		}
		if name != "tnl-server" && !(b.cfg.scenarios["process"] && b.cfg.peers["tnl"]) {
			continue
		}
		if b.cfg.tnlBin != "" {
			paths[i] = filepath.Join(b.cfg.tnlBin, name)
			if _, err := os.Stat(paths[i]); err != nil {
				paths[i], skips[i] = "", fmt.Sprintf("%s: not in -tnl-bin %s", name, b.cfg.tnlBin)
			}
			continue
		}
		if _, err := os.Stat(filepath.Join(b.cfg.repo, "cmd", name)); err != nil {
			skips[i] = fmt.Sprintf("%s: cmd/%s is not in this tree yet", name, name)
			continue
		}
		wg.Go(func() {
			path := filepath.Join(dir, name)
			cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", path, "./cmd/"+name)
			cmd.Dir = b.cfg.repo
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				skips[i] = fmt.Sprintf("%s: does not build: %s", name, firstLine(out))
				return
			}
			paths[i] = path
		})
	}
	wg.Wait()
	var built []string
	for i := range names {
		if skips[i] != "" {
			b.skip("%s", skips[i])
		}
		if paths[i] != "" {
			built = append(built, names[i])
		}
	}
	b.tnlServer, b.tnlDo, b.tnlLock = paths[0], paths[1], paths[2]
	if len(built) > 0 && b.cfg.tnlBin == "" {
		fmt.Fprintf(b.log, "bench: built %s in %.1fs\n", strings.Join(built, ", "), time.Since(t0).Seconds())
	}
}

// running is the set of started peers of one phase.
type running struct {
	tnl, null *peer
	redis     *redisPeer
	etcd      *etcdPeer
}

func (r *running) stop() {
	for _, p := range []*peer{r.tnl, r.null} {
		if p != nil {
			p.stop()
		}
	}
	if r.redis != nil {
		r.redis.stop()
	}
	if r.etcd != nil {
		r.etcd.stop()
	}
}

// start starts the peers in names that are selected and available; one that
// cannot start is skipped with a line (and fails the run unless it is simply
// not installed).
func (b *bench) start(ctx context.Context, names ...string) *running {
	r := &running{}
	note := func(name string, err error) {
		if isSkip(err) {
			b.skip("%s: %v", name, err)
			return
		}
		b.skip("%s: failed to start: %v", name, err)
		b.failed = true
	}
	for _, n := range names {
		if !b.cfg.peers[n] || ctx.Err() != nil {
			continue
		}
		var err error
		switch n {
		case "tnl":
			if b.tnlServer == "" {
				continue // already reported by buildTnl
			}
			r.tnl, err = startTnl(ctx, b.tmp, b.tnlServer, max(b.cfg.heldLocks, 100000))
		case "null":
			r.null, err = startNull(ctx, b.tmp)
		case "redis":
			r.redis, err = startRedis(ctx, b.tmp)
		case "etcd":
			r.etcd, err = startEtcd(ctx, b.tmp)
		}
		if err != nil {
			note(n, err)
		}
	}
	return r
}

// tnlLike are the targets of a tnl-protocol server.
func tnlLike(name string, p *peer, exclusive bool) (legacy, session, waiting *target) {
	legacy = &target{peer: name, mode: "legacy", pid: p.pid(), exclusive: exclusive,
		newLocker: func(context.Context, bool) (locker, error) { return newTnlLegacy(p.addr), nil }}
	sess := func(wait string) func(ctx context.Context, _ bool) (locker, error) {
		return func(ctx context.Context, _ bool) (locker, error) {
			s, err := openSession(ctx, p.addr)
			if err != nil {
				return nil, err
			}
			s.wait = wait
			return s, nil
		}
	}
	session = &target{peer: name, mode: "session", pid: p.pid(), exclusive: exclusive, newLocker: sess("")}
	waiting = &target{peer: name, mode: "session wait:inf", pid: p.pid(), exclusive: exclusive, newLocker: sess("inf")}
	return legacy, session, waiting
}

func (b *bench) runAll(ctx context.Context) {
	cfg := b.cfg
	if cfg.scenarios["uncontended"] || cfg.scenarios["contended"] {
		// All peers run side by side for the load scenarios, so that they
		// share the machine's state; idle ones cost nothing measurable.
		r := b.start(ctx, "tnl", "null", "redis", "etcd")
		var uncontended, contended []*target
		peerOf := map[*target]*peer{}
		for _, p := range []*peer{r.tnl, r.null} {
			if p == nil {
				continue
			}
			l, s, w := tnlLike(p.name, p, p == r.tnl)
			if cfg.modes["legacy"] {
				uncontended = append(uncontended, l)
			}
			if cfg.modes["session"] {
				uncontended = append(uncontended, s)
			}
			contended = append(contended, w)
			peerOf[l], peerOf[s], peerOf[w] = p, p, p
		}
		if r.redis != nil {
			t := r.redis.target(cfg.backoffMin, cfg.backoffMax)
			uncontended, contended = append(uncontended, t), append(contended, t)
			peerOf[t] = r.redis.peer
		}
		if r.etcd != nil {
			t := r.etcd.target()
			uncontended, contended = append(uncontended, t), append(contended, t)
			peerOf[t] = r.etcd.peer
		}
		dead := map[*peer]bool{} // reported once, then its runs are left out
		one := func(t *target, spec loadSpec) {
			p := peerOf[t]
			if ctx.Err() != nil || dead[p] {
				return
			}
			var res *Result
			if p.alive() {
				res = runLoad(ctx, t, spec)
			} else {
				res = &Result{Scenario: spec.scenario, Case: fmt.Sprintf("C=%d", spec.workers), Peer: t.peer, Mode: t.mode}
			}
			if !p.alive() {
				res.Err = fmt.Sprintf("%s exited (%v): %s", p.name, p.err, p.tail())
				dead[p] = true
			}
			b.add(res)
		}
		if cfg.scenarios["uncontended"] {
			for _, c := range cfg.workers {
				for _, t := range uncontended {
					one(t, loadSpec{scenario: "uncontended", workers: c, warmup: cfg.warmup, measure: cfg.measure, maxCycles: cfg.maxCycles})
				}
			}
		}
		if cfg.scenarios["contended"] {
			for _, t := range contended {
				one(t, loadSpec{scenario: "contended", workers: 8, contended: true, hold: cfg.hold, warmup: cfg.warmup, measure: cfg.measure, maxCycles: cfg.maxCycles})
			}
		}
		r.stop()
	}

	if cfg.scenarios["held"] {
		// Each held run gets a fresh server, so that memory freed by the
		// earlier runs does not hide the growth.
		fresh := func(name string, f func(r *running) *Result) {
			if ctx.Err() != nil {
				return
			}
			r := b.start(ctx, name)
			defer r.stop()
			if r.tnl == nil && r.null == nil && r.redis == nil && r.etcd == nil {
				return
			}
			b.add(f(r))
		}
		for _, name := range []string{"tnl", "null"} {
			fresh(name, func(r *running) *Result {
				p := r.tnl
				if p == nil {
					p = r.null
				}
				return heldConns(ctx, name, p.addr, p.pid(), cfg.heldConns, cfg.settle)
			})
			fresh(name, func(r *running) *Result {
				p := r.tnl
				if p == nil {
					p = r.null
				}
				return heldSession(ctx, name, p.addr, p.pid(), cfg.heldLocks, cfg.heldSConns, cfg.settle)
			})
		}
		fresh("redis", func(r *running) *Result { return r.redis.held(ctx, "conn", cfg.heldConns, cfg.settle) })
		fresh("redis", func(r *running) *Result { return r.redis.held(ctx, "session", cfg.heldLocks, cfg.settle) })
		fresh("etcd", func(r *running) *Result { return r.etcd.held(ctx, "conn", cfg.etcdHeld, cfg.settle) })
	}

	if cfg.scenarios["process"] && cfg.peers["tnl"] && ctx.Err() == nil {
		switch {
		case b.tnlServer == "":
			b.skip("process: no tnl-server to lock against")
		case b.tnlDo == "" && b.tnlLock == "":
			b.skip("process: neither tnl-do nor tnl-lock is built yet")
		default:
			r := b.start(ctx, "tnl")
			if r.tnl != nil {
				if b.tnlDo == "" {
					b.skip("process: tnl-do is not built yet: no tnl-do vs flock")
				} else if res, err := processHyperfine(ctx, b.tmp, b.tnlDo, r.tnl.addr, cfg.procRuns); err != nil {
					if isSkip(err) {
						b.skip("process: %v", err)
					} else {
						b.add(&Result{Scenario: "process", Case: "run true", Peer: "tnl", Mode: "tnl-do NAME -- true", Err: err.Error()})
					}
				} else {
					for _, x := range res {
						b.add(x)
					}
				}
				if b.tnlLock == "" {
					b.skip("process: tnl-lock is not built yet: no start-to-granted")
				} else {
					b.add(processTnlLock(ctx, b.tnlLock, r.tnl.addr, cfg.procRuns))
				}
			}
			r.stop()
		}
	}
}
