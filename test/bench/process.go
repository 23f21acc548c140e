package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// The process scenario measures what a shell script pays per lock: starting
// tnl-do around `true`, against flock(1) around `true`, and how long tnl-lock
// takes from exec to printing its grant line.

// hyperfineOut is the part of hyperfine's --export-json that is used here.
type hyperfineOut struct {
	Results []struct {
		Command string    `json:"command"`
		Mean    float64   `json:"mean"`
		Median  float64   `json:"median"`
		User    float64   `json:"user"`
		System  float64   `json:"system"`
		Times   []float64 `json:"times"`
	} `json:"results"`
}

// processHyperfine runs hyperfine on `tnl-do NAME -- true` and `flock FILE
// true` against the tnl server at addr.
func processHyperfine(ctx context.Context, dir, tnlDo, addr string, runs int) ([]*Result, error) {
	hf, err := exec.LookPath("hyperfine")
	if err != nil {
		return nil, skipf("hyperfine not installed (apt-get install hyperfine, or make bench-deps)")
	}
	fl, err := exec.LookPath("flock")
	if err != nil {
		return nil, skipf("flock(1) not installed (util-linux)")
	}
	lockFile := filepath.Join(dir, "flock.lock")
	if err := os.WriteFile(lockFile, nil, 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "hyperfine.json")
	// -N: no shell in between, so that both commands pay only their own
	// exec; the first runs warm the page cache for both binaries.
	cmd := exec.CommandContext(ctx, hf, "-N", "--style", "none", "--warmup", "5",
		"--runs", strconv.Itoa(runs), "--export-json", out,
		"-n", "tnl-do", tnlDo+" bench-process -- true",
		"-n", "flock", fl+" "+lockFile+" true")
	cmd.Env = append(os.Environ(), "TNL_SERVER="+addr)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("hyperfine: %v: %s", err, firstLine(b))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var hout hyperfineOut
	if err := json.Unmarshal(b, &hout); err != nil {
		return nil, fmt.Errorf("hyperfine's JSON: %w", err)
	}
	if len(hout.Results) != 2 {
		return nil, fmt.Errorf("hyperfine's JSON: %d results, want 2", len(hout.Results))
	}
	modes := []struct{ peer, mode string }{{"tnl", "tnl-do NAME -- true"}, {"flock", "flock FILE true"}}
	var res []*Result
	for i, r := range hout.Results {
		times := make([]time.Duration, len(r.Times))
		for j, t := range r.Times {
			times[j] = time.Duration(t * float64(time.Second))
		}
		slices.Sort(times)
		res = append(res, &Result{
			Scenario: "process", Case: "run true", Peer: modes[i].peer, Mode: modes[i].mode, Workers: 1,
			Ops: int64(len(times)), Seconds: r.Mean * float64(len(times)),
			OpsPerSec: 1 / r.Mean, P50us: r.Median * 1e6, P99us: us(percentile(times, 99)),
			MeanUs: r.Mean * 1e6, Note: fmt.Sprintf("hyperfine, mean %.0f µs, user+sys %.0f µs", r.Mean*1e6, (r.User+r.System)*1e6),
		})
	}
	return res, nil
}

// processTnlLock starts tnl-lock runs times and times each from exec to its
// grant line on stdout; then closes its stdin, which releases the lock.
func processTnlLock(ctx context.Context, tnlLock, addr string, runs int) *Result {
	res := &Result{Scenario: "process", Case: "start-to-granted", Peer: "tnl", Mode: "tnl-lock NAME", Workers: 1}
	times := make([]time.Duration, 0, runs)
	var total time.Duration
	for i := range runs {
		d, err := tnlLockOnce(ctx, tnlLock, addr)
		if err != nil {
			res.Err = fmt.Sprintf("run %d: %v", i, err)
			return res
		}
		times = append(times, d)
		total += d
	}
	slices.Sort(times)
	res.Ops = int64(runs)
	res.Seconds = total.Seconds()
	res.OpsPerSec = float64(runs) / total.Seconds()
	res.MeanUs = us(total) / float64(runs)
	res.P50us = us(percentile(times, 50))
	res.P99us = us(percentile(times, 99))
	return res
}

func tnlLockOnce(ctx context.Context, tnlLock, addr string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tnlLock, "bench-process-lock")
	cmd.Env = append(os.Environ(), "TNL_SERVER="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	line, rerr := bufio.NewReader(stdout).ReadString('\n')
	d := time.Since(t0)
	_ = stdin.Close()
	werr := cmd.Wait()
	if rerr != nil {
		return 0, fmt.Errorf("no grant line (%v, exit: %v): %s", rerr, werr, firstLine(stderr.b))
	}
	if werr != nil {
		return 0, fmt.Errorf("tnl-lock after %q: %v: %s", line, werr, firstLine(stderr.b))
	}
	return d, nil
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
