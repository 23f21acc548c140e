package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// fakeTnlLock writes a stand-in for tnl-lock: it prints a grant line, then
// holds until stdin closes, as the contract says.
func fakeTnlLock(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	path := filepath.Join(t.TempDir(), "tnl-lock")
	script := "#!/bin/sh\n[ -n \"$TNL_SERVER\" ] || exit 125\necho \"token 1\"\ncat >/dev/null\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestProcessTnlLock(t *testing.T) {
	res := processTnlLock(context.Background(), fakeTnlLock(t), "127.0.0.1:1", 5)
	if res.Err != "" || res.Ops != 5 || res.P50us <= 0 || res.MeanUs <= 0 {
		t.Fatalf("%+v", res)
	}
	// A tnl-lock that fails without a grant line is an error, not a hang.
	res = processTnlLock(context.Background(), "/bin/false", "127.0.0.1:1", 2)
	if res.Err == "" {
		t.Fatal("a failing tnl-lock is not reported")
	}
}

func TestProcessHyperfine(t *testing.T) {
	for _, b := range []string{"hyperfine", "flock"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed", b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// `true bench-process -- true` stands in for tnl-do.
	tr, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true")
	}
	res, err := processHyperfine(ctx, t.TempDir(), tr, "127.0.0.1:1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Peer != "tnl" || res[1].Peer != "flock" || res[0].MeanUs <= 0 || res[1].MeanUs <= 0 {
		t.Fatalf("%+v %+v", res[0], res[1])
	}
	// A failing command makes hyperfine fail: reported, not swallowed.
	if _, err := processHyperfine(ctx, t.TempDir(), "/bin/false", "127.0.0.1:1", 2); err == nil || isSkip(err) {
		t.Fatalf("err = %v", err)
	}
}
