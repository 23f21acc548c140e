//go:build unix

package lockd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const helperEnv = "TNL_LOCKD_TOKENS_HELPER"

// TestHelperProcess is not a test: TestFileTokensKill9 runs the test binary
// again with it, to draw tokens in a child that can be killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		return
	}
	f, err := OpenFileTokens(dir, 16)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for range 10_000_000 {
		// One write per line: what the parent reads was handed out.
		v, err := f.Next()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stdout, "token %d\n", v)
	}
	os.Exit(3) // the parent kills it long before
}

// TestFileTokensKill9 kills a process with SIGKILL while it draws tokens as
// fast as it can (with a small block, so it is often waiting for a write or
// has one running), and checks that the next process on the same state
// directory starts above every token the killed one handed out.
func TestFileTokensKill9(t *testing.T) {
	dir := t.TempDir()
	var last uint64
	for round := range 3 {
		killAt := 300 + 211*round // lines read before the kill
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		lines := 0
		first := true
		for sc.Scan() { // to EOF: also what was written while dying
			s, ok := strings.CutPrefix(sc.Text(), "token ")
			v, err := strconv.ParseUint(s, 10, 64)
			if !ok || err != nil {
				t.Fatalf("round %d: child printed %q", round, sc.Text())
			}
			if v <= last {
				t.Fatalf("round %d: token %d after %d (first in this process: %v)", round, v, last, first)
			}
			last, first = v, false
			if lines++; lines == killAt {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		err = cmd.Wait()
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v after %d tokens, not by SIGKILL; stderr:\n%s", round, err, lines, stderr.Bytes())
		}
		if lines < killAt {
			t.Fatalf("round %d: only %d tokens before the end", round, lines)
		}
		t.Logf("round %d: killed after %d tokens, the last %d", round, lines, last)
	}
	f, err := OpenFileTokens(dir, 16)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Next(); err != nil || v <= last {
		t.Fatalf("after kill -9 and restart: token %d (%v), not above %d", v, err, last)
	}
}
