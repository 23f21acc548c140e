package main

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// These start the real redis-server and etcd when they are installed (make
// bench-deps); elsewhere they skip.

func TestRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := startRedis(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	tg := r.target(50*time.Microsecond, 2*time.Millisecond)
	for _, spec := range []loadSpec{
		{scenario: "uncontended", workers: 2, warmup: 20 * time.Millisecond, measure: 200 * time.Millisecond, maxCycles: 100_000},
		{scenario: "contended", workers: 4, contended: true, hold: time.Millisecond, warmup: 20 * time.Millisecond, measure: 300 * time.Millisecond, maxCycles: 100_000},
	} {
		res := runLoad(ctx, tg, spec)
		if res.Err != "" || res.Ops == 0 || res.failed() {
			t.Fatalf("%s: %+v", spec.scenario, res)
		}
		if spec.contended && res.Retries == 0 {
			t.Errorf("contended redis never retried: %+v", res)
		}
	}
	res := r.held(ctx, "conn", 2500, 0)
	if res.Err != "" || res.Locks != 2500 || res.RSSAfter <= 0 {
		t.Fatalf("held: %+v", res)
	}
	// A second round on the same keys must find them all taken.
	if n, err := r.rdb.DBSize(ctx).Result(); err != nil || n < 2500 {
		t.Fatalf("dbsize %d, %v", n, err)
	}
}

func TestEtcd(t *testing.T) {
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd not installed")
	}
	if testing.Short() {
		t.Skip("etcd takes seconds to start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e, err := startEtcd(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer e.stop()
	tg := e.target()
	for _, spec := range []loadSpec{
		{scenario: "uncontended", workers: 2, warmup: 20 * time.Millisecond, measure: 300 * time.Millisecond, maxCycles: 100_000},
		{scenario: "contended", workers: 3, contended: true, warmup: 20 * time.Millisecond, measure: 500 * time.Millisecond, maxCycles: 100_000},
	} {
		res := runLoad(ctx, tg, spec)
		if res.Err != "" || res.Ops == 0 || res.failed() {
			t.Fatalf("%s: %+v", spec.scenario, res)
		}
	}
	res := e.held(ctx, "conn", 100, 0)
	if res.Err != "" || res.Locks != 100 {
		t.Fatalf("held: %+v", res)
	}
}
