package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFiles: tnl-server reads its secret files as the client
// commands do (package security): a control character or a file over
// 1 MiB is refused with status 2 and, as its last line (after the log's
// first words), the reason, before anything listens.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		flag, name, content, want string
	}{
		{"--auth-token-file", "tab", "s3\tcret\n", "the secret must be one line without commas"},
		{"--admin-token-file", "esc", "s3\x1b[2Jcret", "the secret must be one line without commas"},
		{"--auth-token-file", "big", strings.Repeat("x", 1<<20+1), "larger than 1 MiB"},
		{"--auth-token-file", "empty", " \n", "the file is empty"},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runBin(t, "--listen", "127.0.0.1:0", tc.flag, p)
		want := "tnl-server: " + tc.flag + ` "` + p + `": ` + tc.want
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if code != 2 || stdout != "" || lines[len(lines)-1] != want || strings.Contains(stderr, "listening") {
			t.Errorf("%s %s: status %d, stdout %q, stderr %q; want 2, nothing, %q", tc.flag, tc.name, code, stdout, stderr, want)
		}
	}
}
