package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleReport() *Report {
	rep := &Report{Host: map[string]any{"cpus": 2, "kernel": "k"}}
	add := func(r *Result) { r.exclusive = r.Peer != "null"; rep.Results = append(rep.Results, r) }
	for _, c := range []struct {
		cas                     string
		tl, ts, nl, ns, rd, etc float64
	}{
		{"C=1", 4000, 25000, 4500, 26000, 7000, 600},
		{"C=8", 5000, 20000, 5300, 29000, 19000, 1300},
		{"C=64", 6000, 30000, 6400, 30000, 12000, 2700},
	} {
		add(&Result{Scenario: "uncontended", Case: c.cas, Peer: "tnl", Mode: "legacy", OpsPerSec: c.tl, P50us: 200, P99us: 900, Jain: 1})
		add(&Result{Scenario: "uncontended", Case: c.cas, Peer: "tnl", Mode: "session", OpsPerSec: c.ts, P50us: 40, P99us: 90, Jain: 1})
		add(&Result{Scenario: "uncontended", Case: c.cas, Peer: "null", Mode: "legacy", OpsPerSec: c.nl})
		add(&Result{Scenario: "uncontended", Case: c.cas, Peer: "null", Mode: "session", OpsPerSec: c.ns})
		add(&Result{Scenario: "uncontended", Case: c.cas, Peer: "redis", Mode: "SET NX PX + Lua", OpsPerSec: c.rd})
		add(&Result{Scenario: "uncontended", Case: c.cas, Peer: "etcd", Mode: "concurrency.Mutex", OpsPerSec: c.etc})
	}
	add(&Result{Scenario: "contended", Case: "C=8", Peer: "tnl", Mode: "session wait:inf", OpsPerSec: 12000, Jain: 0.999})
	add(&Result{Scenario: "contended", Case: "C=8", Peer: "redis", Mode: "SET NX PX + Lua", OpsPerSec: 5000, Jain: 0.9})
	add(&Result{Scenario: "held", Case: "conn", Peer: "tnl", Mode: "legacy, conn per lock", Locks: 10000, BytesPerLock: 3000})
	add(&Result{Scenario: "held", Case: "conn", Peer: "redis", Mode: "keys, pipelined", Locks: 10000, BytesPerLock: 150})
	add(&Result{Scenario: "held", Case: "session", Peer: "tnl", Mode: "session, 4 conns", Locks: 1_000_000, BytesPerLock: 600})
	add(&Result{Scenario: "process", Case: "run true", Peer: "tnl", Mode: "tnl-do NAME -- true", MeanUs: 2000})
	add(&Result{Scenario: "process", Case: "run true", Peer: "flock", Mode: "flock FILE true", MeanUs: 1000})
	add(&Result{Scenario: "contended", Case: "C=8", Peer: "etcd", Mode: "concurrency.Mutex", Err: "broke"})
	return rep
}

func verdicts(rep *Report) map[string]string {
	m := map[string]string{}
	for _, t := range rep.Targets {
		m[t.Name] = t.Verdict
	}
	return m
}

func TestEvalTargets(t *testing.T) {
	rep := sampleReport()
	rep.evalTargets()
	want := map[string]string{
		"legacy C=1 vs tcpnetlock":      "PASS", // 4000 ≥ 2439
		"legacy C=8 vs tcpnetlock":      "PASS", // 5000 ≥ 3962
		"legacy C=1 vs null":            "PASS", // 4000/4500 = 0.89
		"session C=1 vs redis":          "PASS", // 25000/7000
		"session C=8 vs redis":          "MISS", // 20000/19000 = 1.05
		"session C=8 vs null":           "MISS", // 20000/29000 = 0.69
		"session C=64 vs null":          "PASS",
		"contended vs redis":            "PASS", // 12000/5000 = 2.4
		"contended fairness":            "PASS",
		"contended overlaps":            "PASS",
		"held, conn per lock":           "PASS",
		"held, session":                 "MISS", // 600 > 512
		"held, 1,000,000 session locks": "PASS",
		"process tnl-do vs flock":       "PASS", // 2x
	}
	got := verdicts(rep)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}

	// Nothing measured: every target n/a, none PASS.
	empty := &Report{Host: map[string]any{}}
	empty.evalTargets()
	for _, tg := range empty.Targets {
		if tg.Verdict != "n/a" || tg.Measured != "not measured" {
			t.Errorf("empty report: %+v", tg)
		}
	}
}

func TestMarkdown(t *testing.T) {
	rep := sampleReport()
	rep.Skipped = []string{"etcd: not installed"}
	rep.evalTargets()
	var b bytes.Buffer
	rep.printMarkdown(&b)
	out := b.String()
	for _, want := range []string{
		"- skipped: etcd: not installed",
		"| uncontended | C=8 | tnl | session | 20000 | 40.0 | 90.0 | 0/0 | 1.000 | 0 |",
		"| 0 (n/a) |", // the null server's overlaps are not enforced
		// tnl session C=1: 25000 / redis 7000 / etcd 600 / null 26000
		"| uncontended | C=1 | session | ops/s | 25000 | 3.57x | 41.67x | 0.96x | – |",
		// held: bytes per lock, tnl 3000 vs redis 150
		"| held | conn | legacy, conn per lock | bytes/lock | 3000 | 20.00x | – | – | – |",
		"| process | run true | tnl-do NAME -- true | mean µs | 2000 | – | – | – | 2.00x |",
		"| contended | C=8 | etcd | concurrency.Mutex | ERROR |",
		"- contended C=8 etcd concurrency.Mutex: broke",
		"| session C=8 vs null | ≥ 0.80 × null | 20000 vs 29000 = 0.690x | MISS |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	rep := sampleReport()
	rep.evalTargets()
	path := filepath.Join(t.TempDir(), "sub", "r.json")
	if err := rep.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Results []map[string]any `json:"results"`
		Targets []Target         `json:"targets"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != len(rep.Results) || len(back.Targets) != len(rep.Targets) {
		t.Fatalf("round trip lost rows: %d results, %d targets", len(back.Results), len(back.Targets))
	}
	r0 := back.Results[0]
	for _, k := range []string{"scenario", "case", "peer", "mode", "ops_per_sec", "p50_us", "p99_us", "jain", "overlaps", "server_cpu_us_per_op"} {
		if _, ok := r0[k]; !ok {
			t.Errorf("JSON result lacks %q", k)
		}
	}
}

func TestResultFailed(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want bool
	}{
		{Result{exclusive: true}, false},
		{Result{exclusive: true, Overlaps: 1}, true},
		{Result{exclusive: true, TokenErrors: 1}, true},
		{Result{exclusive: false, Overlaps: 5, TokenErrors: 5}, false},
		{Result{Err: "x"}, true},
	} {
		if got := tc.r.failed(); got != tc.want {
			t.Errorf("%+v.failed() = %v", tc.r, got)
		}
	}
}
