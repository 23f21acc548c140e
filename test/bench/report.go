package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Result is one measured run of one peer in one scenario. Field names in the
// JSON are what a script comparing two runs would key on.
type Result struct {
	Scenario string `json:"scenario"` // uncontended, contended, held, process
	// Case is what rows of different peers are compared on: "C=8" for a
	// load, "conn" or "session" for held, "tnl-do"/"tnl-lock" for process.
	Case    string `json:"case"`
	Peer    string `json:"peer"` // tnl, null, redis, etcd, flock
	Mode    string `json:"mode"`
	Workers int    `json:"workers,omitempty"`

	Ops       int64   `json:"ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	MeanUs    float64 `json:"mean_us,omitempty"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`

	MinGrants   int64   `json:"min_grants"`
	MaxGrants   int64   `json:"max_grants"`
	Jain        float64 `json:"jain"`
	Overlaps    int64   `json:"overlaps"`
	TokenErrors int64   `json:"token_errors"`
	Retries     int64   `json:"retries,omitempty"`

	ServerCPUSeconds float64 `json:"server_cpu_s"`
	CPUusPerOp       float64 `json:"server_cpu_us_per_op"`

	Locks      int64 `json:"locks,omitempty"`
	RSSBefore  int64 `json:"rss_before,omitempty"`
	RSSAtGrant int64 `json:"rss_at_last_grant,omitempty"`
	RSSAfter   int64 `json:"rss_after_settle,omitempty"`
	// BytesPerLock is the growth after the settle time; the table shows it.
	BytesPerLock        float64 `json:"bytes_per_lock,omitempty"`
	BytesPerLockAtGrant float64 `json:"bytes_per_lock_at_last_grant,omitempty"`

	Note string `json:"note,omitempty"`
	Err  string `json:"error,omitempty"`

	exclusive bool // overlaps fail the run
}

// failed says whether r makes the whole benchmark fail: a safety violation
// by a peer that claims to lock, or a run that broke.
func (r *Result) failed() bool {
	return r.Err != "" || (r.exclusive && (r.Overlaps > 0 || r.TokenErrors > 0))
}

// Report is the whole run, written as JSON.
type Report struct {
	Started time.Time      `json:"started"`
	Elapsed float64        `json:"elapsed_s"`
	Quick   bool           `json:"quick"`
	Host    map[string]any `json:"host"`
	Config  map[string]any `json:"config"`
	Skipped []string       `json:"skipped"`
	Results []*Result      `json:"results"`
	Targets []Target       `json:"targets"`
}

// Target is one goal of issue 6 checked against this run.
type Target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Verdict  string `json:"verdict"` // PASS, MISS, n/a
}

func (rep *Report) find(scenario, cas, peer, mode string) *Result {
	for _, r := range rep.Results {
		if r.Scenario == scenario && r.Case == cas && r.Peer == peer && (mode == "" || r.Mode == mode) && r.Err == "" {
			return r
		}
	}
	return nil
}

func (rep *Report) writeJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// printMarkdown writes the results, the ratios and the targets as Markdown
// tables.
func (rep *Report) printMarkdown(w io.Writer) {
	fmt.Fprintf(w, "## tnl benchmark (%s, %v CPUs, %s)\n\n", map[bool]string{true: "quick", false: "full"}[rep.Quick], rep.Host["cpus"], rep.Host["kernel"])
	if la, ok := rep.Host["loadavg_start"].(float64); ok {
		le, _ := rep.Host["loadavg_end"].(float64)
		// The end figure includes the benchmark's own load; the start one
		// is other work.
		fmt.Fprintf(w, "Load average %.1f at start, %.1f at end", la, le)
		if cpus, ok := rep.Host["cpus"].(int); ok && la > float64(cpus)/2 {
			fmt.Fprint(w, ": other work shared this machine, so ops/s are noisy; server CPU per op is steadier")
		}
		fmt.Fprint(w, ".\n\n")
	}
	if len(rep.Skipped) > 0 {
		for _, s := range rep.Skipped {
			fmt.Fprintf(w, "- skipped: %s\n", s)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "### Results")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | case | peer | mode | ops/s | p50 µs | p99 µs | grants min/max | Jain | overlaps | srv CPU µs/op | RSS/lock |")
	fmt.Fprintln(w, "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	var errs []string
	for _, r := range rep.Results {
		if r.Err != "" {
			errs = append(errs, fmt.Sprintf("%s %s %s %s: %s", r.Scenario, r.Case, r.Peer, r.Mode, r.Err))
			fmt.Fprintf(w, "| %s | %s | %s | %s | ERROR | | | | | | | |\n", r.Scenario, r.Case, r.Peer, r.Mode)
			continue
		}
		grants, j, ov := "", "", ""
		if r.Scenario == "uncontended" || r.Scenario == "contended" {
			grants = fmt.Sprintf("%d/%d", r.MinGrants, r.MaxGrants)
			j = fmt.Sprintf("%.3f", r.Jain)
			ov = fmt.Sprint(r.Overlaps)
			if r.TokenErrors > 0 {
				ov += fmt.Sprintf(" (+%d token)", r.TokenErrors)
			}
			if !r.exclusive {
				ov += " (n/a)"
			}
		}
		lat50, lat99 := "", ""
		if r.P50us > 0 {
			lat50, lat99 = fmtUs(r.P50us), fmtUs(r.P99us)
		}
		cpu := ""
		if r.CPUusPerOp > 0 {
			cpu = fmt.Sprintf("%.1f", r.CPUusPerOp)
		}
		rss := ""
		if r.Locks > 0 {
			rss = fmt.Sprintf("%.0f B", r.BytesPerLock)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, r.Case, r.Peer, r.Mode, r.OpsPerSec, lat50, lat99, grants, j, ov, cpu, rss)
	}
	fmt.Fprintln(w)
	if len(errs) > 0 {
		fmt.Fprintln(w, "Errors:")
		for _, e := range errs {
			fmt.Fprintf(w, "- %s\n", e)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "### Ratios tnl ÷ peer (ops/s: higher is better for tnl; bytes/lock and µs: lower is)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | case | tnl mode | metric | tnl | ÷redis | ÷etcd | ÷null | ÷flock |")
	fmt.Fprintln(w, "|---|---|---|---|--:|--:|--:|--:|--:|")
	for _, row := range rep.ratioRows() {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8])
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Targets (issue 6)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | goal | measured | verdict |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, t := range rep.Targets {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Measured, t.Verdict)
	}
	fmt.Fprintln(w)
}

func fmtUs(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// metric picks the number a ratio is taken of, per scenario.
func metric(r *Result) (float64, string) {
	switch r.Scenario {
	case "held":
		return r.BytesPerLock, "bytes/lock"
	case "process":
		return r.MeanUs, "mean µs"
	default:
		return r.OpsPerSec, "ops/s"
	}
}

func ratio(tnl, other *Result) string {
	if other == nil {
		return "–"
	}
	a, _ := metric(tnl)
	b, _ := metric(other)
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// ratioRows is one row per tnl result: its metric and the ratio to each
// peer's result in the same scenario and case (the null server in the same
// mode, since it speaks the same protocol).
func (rep *Report) ratioRows() [][9]string {
	var rows [][9]string
	for _, t := range rep.Results {
		if t.Peer != "tnl" || t.Err != "" {
			continue
		}
		v, name := metric(t)
		val := fmt.Sprintf("%.0f", v)
		row := [9]string{t.Scenario, t.Case, t.Mode, name, val,
			ratio(t, rep.find(t.Scenario, t.Case, "redis", "")),
			ratio(t, rep.find(t.Scenario, t.Case, "etcd", "")),
			ratio(t, rep.nullFor(t)),
			ratio(t, rep.find(t.Scenario, t.Case, "flock", "")),
		}
		rows = append(rows, row)
	}
	return rows
}

// nullFor is the null server's result that matches tnl result t: same
// scenario, case and mode ("held" modes name the same connection layout).
func (rep *Report) nullFor(t *Result) *Result {
	return rep.find(t.Scenario, t.Case, "null", t.Mode)
}

// tcpnetlockRate is the Python tcpnetlock server's cycles/s on this kind of
// machine, from issue 6.
var tcpnetlockRate = map[int]float64{1: 1626, 8: 2641, 64: 2456}

// evalTargets checks the goals of issue 6 against the results.
func (rep *Report) evalTargets() {
	var ts []Target
	add := func(name, goal string, measured string, ok, known bool) {
		v := "n/a"
		if known {
			v = map[bool]string{true: "PASS", false: "MISS"}[ok]
		}
		if !known && measured == "" {
			measured = "not measured"
		}
		ts = append(ts, Target{Name: name, Goal: goal, Measured: measured, Verdict: v})
	}
	for _, c := range []int{1, 8, 64} {
		cas := fmt.Sprintf("C=%d", c)
		t := rep.find("uncontended", cas, "tnl", "legacy")
		n := rep.find("uncontended", cas, "null", "legacy")
		goal := 1.5 * tcpnetlockRate[c]
		if t != nil {
			add("legacy "+cas+" vs tcpnetlock", fmt.Sprintf("≥ %.0f/s (1.5 × %.0f)", goal, tcpnetlockRate[c]), fmt.Sprintf("%.0f/s", t.OpsPerSec), t.OpsPerSec >= goal, true)
		} else {
			add("legacy "+cas+" vs tcpnetlock", fmt.Sprintf("≥ %.0f/s", goal), "", false, false)
		}
		rel("legacy "+cas+" vs null", "≥ 0.80 × null", t, n, 0.8, add)
		t = rep.find("uncontended", cas, "tnl", "session")
		rel("session "+cas+" vs redis", "≥ 1.20 × redis", t, rep.find("uncontended", cas, "redis", ""), 1.2, add)
		rel("session "+cas+" vs null", "≥ 0.80 × null", t, rep.find("uncontended", cas, "null", "session"), 0.8, add)
	}
	t := rep.find("contended", "C=8", "tnl", "")
	rel("contended vs redis", "≥ 2.00 × redis grants/s", t, rep.find("contended", "C=8", "redis", ""), 2, add)
	if t != nil {
		add("contended fairness", "Jain ≥ 0.99", fmt.Sprintf("%.4f", t.Jain), t.Jain >= 0.99, true)
		add("contended overlaps", "0", fmt.Sprint(t.Overlaps+t.TokenErrors), t.Overlaps == 0 && t.TokenErrors == 0, true)
	} else {
		add("contended fairness", "Jain ≥ 0.99", "", false, false)
		add("contended overlaps", "0", "", false, false)
	}
	if h := rep.find("held", "conn", "tnl", ""); h != nil {
		add("held, conn per lock", "≤ 4096 B/lock", fmt.Sprintf("%.0f B/lock over %d", h.BytesPerLock, h.Locks), h.BytesPerLock <= 4096, true)
	} else {
		add("held, conn per lock", "≤ 4096 B/lock", "", false, false)
	}
	if h := rep.find("held", "session", "tnl", ""); h != nil {
		add("held, session", "≤ 512 B/lock", fmt.Sprintf("%.0f B/lock over %d", h.BytesPerLock, h.Locks), h.BytesPerLock <= 512, true)
		add("held, 1,000,000 session locks", "1000000 held", fmt.Sprint(h.Locks), h.Locks >= 1_000_000, h.Locks >= 1_000_000 || !rep.Quick)
	} else {
		add("held, session", "≤ 512 B/lock", "", false, false)
		add("held, 1,000,000 session locks", "1000000 held", "", false, false)
	}
	td := rep.find("process", "run true", "tnl", "")
	fl := rep.find("process", "run true", "flock", "")
	if td != nil && fl != nil && fl.MeanUs > 0 {
		add("process tnl-do vs flock", "≤ 3.00 × flock", fmt.Sprintf("%.0f µs vs %.0f µs = %.2fx", td.MeanUs, fl.MeanUs, td.MeanUs/fl.MeanUs), td.MeanUs <= 3*fl.MeanUs, true)
	} else {
		add("process tnl-do vs flock", "≤ 3.00 × flock", "", false, false)
	}
	rep.Targets = ts
}

// rel adds a target "t's ops/s ≥ k × o's".
func rel(name, goal string, t, o *Result, k float64, add func(string, string, string, bool, bool)) {
	if t == nil || o == nil || o.OpsPerSec <= 0 {
		add(name, goal, "", false, false)
		return
	}
	r := t.OpsPerSec / o.OpsPerSec
	add(name, goal, fmt.Sprintf("%.0f vs %.0f = %.3fx", t.OpsPerSec, o.OpsPerSec, r), r >= k, true)
}

// summary is the one line printed after each run on stderr, as progress.
func (r *Result) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-11s %-8s %-5s %-26s", r.Scenario, r.Case, r.Peer, r.Mode)
	if r.Err != "" {
		fmt.Fprintf(&b, " ERROR: %s", r.Err)
		return b.String()
	}
	fmt.Fprintf(&b, " %9.0f ops/s", r.OpsPerSec)
	if r.P50us > 0 {
		fmt.Fprintf(&b, "  p50 %s p99 %s µs", fmtUs(r.P50us), fmtUs(r.P99us))
	}
	if r.Locks > 0 {
		fmt.Fprintf(&b, "  %d locks %.0f B/lock", r.Locks, r.BytesPerLock)
	}
	if r.Overlaps > 0 || r.TokenErrors > 0 {
		fmt.Fprintf(&b, "  overlaps %d token errors %d", r.Overlaps, r.TokenErrors)
	}
	return b.String()
}
