package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	var errb bytes.Buffer
	c, err := parseFlags(nil, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if c.measure != 5*time.Second || c.heldConns != 10_000 || c.heldLocks != 1_000_000 || len(c.workers) != 3 {
		t.Errorf("full defaults: %+v", c)
	}
	if !c.peers["tnl"] || !c.peers["etcd"] || !c.scenarios["process"] {
		t.Errorf("default sets: %v %v", c.peers, c.scenarios)
	}
	c, err = parseFlags([]string{"-quick", "-duration", "3s", "-workers", "2,4"}, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if c.measure != 3*time.Second || c.warmup != quickSizes.warmup || c.heldLocks != quickSizes.heldLocks || len(c.workers) != 2 || c.workers[1] != 4 {
		t.Errorf("quick with overrides: %+v", c)
	}
	for _, bad := range [][]string{
		{"-peers", "tnl,consul"},
		{"-scenarios", "everything"},
		{"-workers", "0"},
		{"-workers", "x"},
		{"-redis-backoff-min", "5ms", "-redis-backoff-max", "1ms"},
		{"stray"},
		{"-nosuchflag"},
	} {
		if _, err := parseFlags(bad, &errb); err == nil {
			t.Errorf("parseFlags(%q): no error", bad)
		}
	}
}

// TestRunNullOnly drives the whole program against the null server alone:
// tables on stdout, JSON on disk, exit 0.
func TestRunNullOnly(t *testing.T) {
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-peers", "null", "-scenarios", "uncontended,contended,held", "-workers", "1,3",
		"-warmup", "20ms", "-duration", "100ms", "-held-conns", "50", "-held-locks", "1000", "-held-settle", "10ms", "-out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	for _, want := range []string{
		"| uncontended | C=3 | null | session |",
		"| contended | C=8 | null | session wait:inf |",
		"| held | session | null | session, 4 conns |",
		"### Targets (issue 6)",
		"raw results: " + out,
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, &stdout)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	// 2 worker counts × 2 modes, 1 contended, 2 held.
	if len(rep.Results) != 7 {
		t.Errorf("%d results, want 7", len(rep.Results))
	}
	if rep.Config["held_conns"] == nil || rep.Host["cpus"] == nil {
		t.Errorf("config/host missing: %v %v", rep.Config, rep.Host)
	}
}

func TestRunUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-peers", "nope"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.HasPrefix(stderr.String(), "bench: -peers: unknown \"nope\"") {
		t.Errorf("stderr %q", &stderr)
	}
}

// TestBuildTnlMissing: a command not yet in the tree is skipped with a line.
func TestBuildTnlMissing(t *testing.T) {
	var stderr bytes.Buffer
	cfg, err := parseFlags([]string{"-repo", t.TempDir()}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{cfg: cfg, log: &stderr, rep: &Report{}, tmp: t.TempDir()}
	b.buildTnl(t.Context())
	if b.tnlServer != "" || len(b.rep.Skipped) != 3 {
		t.Fatalf("skipped %q, server %q", b.rep.Skipped, b.tnlServer)
	}
	if want := "tnl-server: cmd/tnl-server is not in this tree yet"; b.rep.Skipped[0] != want {
		t.Errorf("skip line %q, want %q", b.rep.Skipped[0], want)
	}
}

// TestMissingPeersSkipOnce: a peer whose program is not installed is skipped
// with one line, however many phases ask for it, and does not fail the run.
func TestMissingPeersSkipOnce(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var stderr bytes.Buffer
	cfg, err := parseFlags([]string{"-peers", "redis,etcd"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{cfg: cfg, log: &stderr, rep: &Report{}, tmp: t.TempDir()}
	for range 2 {
		r := b.start(t.Context(), "redis", "etcd")
		if r.redis != nil || r.etcd != nil {
			t.Fatal("started a peer that is not installed")
		}
	}
	want := []string{
		"redis: redis-server not installed (apt-get install redis-server, or make bench-deps)",
		"etcd: etcd not installed (apt-get install etcd-server, or make bench-deps)",
	}
	if strings.Join(b.rep.Skipped, "|") != strings.Join(want, "|") || b.failed {
		t.Errorf("skipped %q, failed %v", b.rep.Skipped, b.failed)
	}
	if n := strings.Count(stderr.String(), "bench: skipped: redis:"); n != 1 {
		t.Errorf("redis skip printed %d times:\n%s", n, &stderr)
	}
}
