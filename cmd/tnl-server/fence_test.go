package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateDirRefusesStart: a damaged state file, a missing one next to
// other state and an exhausted ceiling stop the start with status 1 and
// one line that names the file; nothing listens. (The full and read-only
// disks are in test/fence_test.go, which needs root for its tmpfs.)
func TestStateDirRefusesStart(t *testing.T) {
	fix := "restore it, or write into it a number above every token ever issued (see Fencing state in tnl-server(1))"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // after "tnl-server: fencing state DIR/fence"
	}{
		{"truncated", map[string]string{"fence": "tnl-fence 1 131072 "},
			" is truncated or corrupt (no line end): not starting, a token could be handed out twice; " + fix},
		{"bad checksum", map[string]string{"fence": "tnl-fence 1 931072 85eddac7\n"},
			" is truncated or corrupt (bad checksum): not starting, a token could be handed out twice; " + fix},
		{"empty", map[string]string{"fence": ""},
			" is truncated or corrupt (empty): not starting, a token could be handed out twice; " + fix},
		{"missing", map[string]string{"leases": "x"},
			` is missing, but DIR holds "leases": not starting from token 1, which may have been handed out; ` + fix},
		{"exhausted", map[string]string{"fence": "9223372036854775807\n"},
			": ceiling 9223372036854775807 leaves no token below the largest, 9223372036854775807: not starting, tokens never wrap around"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			code, stdout, stderr := runBin(t, "--listen", "127.0.0.1:0", "--state-dir", dir)
			want := "tnl-server: fencing state " + filepath.Join(dir, "fence") + strings.ReplaceAll(tc.want, "DIR", dir) + "\n"
			if code != 1 || stderr != want || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 1 and:\n%s", code, stdout, stderr, want)
			}
		})
	}
}

// TestFenceBlockFlag: the hidden --fence-block sets the tokens reserved per
// write; out of range it is a usage error.
func TestFenceBlockFlag(t *testing.T) {
	for _, n := range []string{"0", "1", "4294967297"} {
		code, _, stderr := runBin(t, "--listen", "127.0.0.1:0", "--fence-block", n)
		if want := "tnl-server: invalid --fence-block " + n + ": want 2 to 4294967296\n"; code != 2 || stderr != want {
			t.Errorf("--fence-block %s: exit %d, stderr %q; want 2 and %q", n, code, stderr, want)
		}
	}
	dir := t.TempDir()
	p := startServer(t, nil, "--listen", "127.0.0.1:0", "--state-dir", dir, "--fence-block", "4")
	b, err := os.ReadFile(filepath.Join(dir, "fence"))
	if err != nil || string(b) != "tnl-fence 1 4 a0107f81\n" {
		t.Fatalf("state file %q (%v), want the ceiling 4", b, err)
	}
	for want := uint64(1); want <= 9; want++ { // across two writes
		if n := token(t, p.addr, "a"); n != want {
			t.Fatalf("token %d, want %d", n, want)
		}
	}
}
