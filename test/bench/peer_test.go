package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestStartNull runs the null server as a process of its own, as the
// benchmark does (TestMain dispatches "nullserver").
func TestStartNull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := startNull(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	if !strings.HasPrefix(p.addr, "127.0.0.1:") {
		t.Errorf("addr %q not on loopback", p.addr)
	}
	s, err := openSession(ctx, p.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.lock(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	s.close()
	if rss, err := procRSS(p.pid()); err != nil || rss <= 0 {
		t.Errorf("server RSS = %d, %v", rss, err)
	}
	if _, err := procCPU(p.pid()); err != nil {
		t.Error(err)
	}
	p.stop()
	if p.alive() {
		t.Error("alive after stop")
	}
	p.stop() // twice is harmless
}

func TestStartFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A "server" that exits at once is reported with its output.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	_, err = startTnlLike(ctx, "broken", t.TempDir(), sh, func(string) []string {
		return []string{"-c", "echo cannot bind >&2; exit 3"}
	})
	if err == nil || !strings.Contains(err.Error(), "cannot bind") {
		t.Errorf("err = %v, want the server's output in it", err)
	}
	if !isSkip(skipf("x")) || isSkip(err) {
		t.Error("isSkip confuses skips and failures")
	}
}
