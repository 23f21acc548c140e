package test

// Tests of `make install`, `make uninstall`, the systemd unit and the
// package contents of goreleaser.yaml.

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instExpected is what `make install PREFIX=/usr/local` puts under DESTDIR,
// with the mode of each file.
func instExpected() map[string]fs.FileMode {
	want := map[string]fs.FileMode{"usr/local/share/tnl/tnl.sh": 0o644}
	for _, c := range compCommands {
		want["usr/local/bin/"+c] = 0o755
		want["usr/local/share/man/man1/"+c+".1"] = 0o644
		want["usr/local/share/bash-completion/completions/"+c] = 0o644
		want["usr/local/share/zsh/site-functions/_"+c] = 0o644
		want["usr/local/share/fish/vendor_completions.d/"+c+".fish"] = 0o644
	}
	for _, p := range []string{"tnl.sh.7", "tnl-protocol.7"} {
		want["usr/local/share/man/man7/"+p] = 0o644
	}
	return want
}

func instFiles(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	got := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		got[filepath.ToSlash(rel)] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func instMake(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory", "-C", ".."}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestInstallUninstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	dest := t.TempDir()
	instMake(t, "install", "DESTDIR="+dest, "PREFIX=/usr/local")

	got, want := instFiles(t, dest), instExpected()
	for p, mode := range want {
		if m, ok := got[p]; !ok {
			t.Errorf("make install did not install %s", p)
		} else if m != mode {
			t.Errorf("%s has mode %v, want %v", p, m, mode)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("make install installed %s, which nobody expects", p)
		}
	}
	// What is installed is what the tree has.
	for src, dst := range map[string]string{
		"../man/tnl-do.1":              "usr/local/share/man/man1/tnl-do.1",
		"../completions/tnl-do.bash":   "usr/local/share/bash-completion/completions/tnl-do",
		"../completions/tnl-do.zsh":    "usr/local/share/zsh/site-functions/_tnl-do",
		"../completions/tnl-do.fish":   "usr/local/share/fish/vendor_completions.d/tnl-do.fish",
		"../shell/tnl.sh":              "usr/local/share/tnl/tnl.sh",
		"../man/tnl-protocol.7":        "usr/local/share/man/man7/tnl-protocol.7",
		"../completions/tnl-stats.zsh": "usr/local/share/zsh/site-functions/_tnl-stats",
	} {
		a, err1 := os.ReadFile(src)
		b, err2 := os.ReadFile(filepath.Join(dest, dst))
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Errorf("%s is not a copy of %s (%v, %v)", dst, src, err1, err2)
		}
	}
	// The installed binaries run.
	out, err := exec.Command(filepath.Join(dest, "usr/local/bin/tnl-do"), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tnl-do") {
		t.Errorf("installed tnl-do --version: %v: %q", err, out)
	}

	instMake(t, "uninstall", "DESTDIR="+dest, "PREFIX=/usr/local")
	if left := instFiles(t, dest); len(left) != 0 {
		t.Errorf("make uninstall left %v", left)
	}
}

// TestSystemdUnit checks the unit with systemd-analyze where it exists, and
// the settings the packages promise everywhere.
func TestSystemdUnit(t *testing.T) {
	const unit = "../cmd/tnl-server/tnl-server.service"
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, want := range []string{
		"ExecStart=/usr/bin/tnl-server --state-dir /var/lib/tnl\n",
		"DynamicUser=yes\n", "StateDirectory=tnl\n", "NoNewPrivileges=yes\n",
		"ProtectSystem=strict\n", "ProtectHome=yes\n", "PrivateTmp=yes\n",
		"CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_INET AF_INET6\n",
		"SystemCallFilter=@system-service\n", "Documentation=man:tnl-server(1) man:tnl-protocol(7)\n",
		"WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("tnl-server.service lacks %q", want)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	// Point ExecStart at a real tnl-server, which verify insists on.
	dir, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "tnl-server.service")
	src = strings.ReplaceAll(src, "/usr/bin/tnl-server", filepath.Join(dir, "tnl-server"))
	if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", "--threshold=20", tmp).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
	}
}

// TestGoreleaserContents: every file the packages ship exists, and the deb
// and rpm ship every man page, every completion, tnl.sh and the unit.
func TestGoreleaserContents(t *testing.T) {
	b, err := os.ReadFile("../goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	var srcs []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- src: (\S+)$`).FindAllStringSubmatch(cfg, -1) {
		srcs = append(srcs, m[1])
		if _, err := os.Stat(filepath.Join("..", m[1])); err != nil {
			t.Errorf("goreleaser.yaml packages %s: %v", m[1], err)
		}
	}
	want := []string{"shell/tnl.sh", "cmd/tnl-server/tnl-server.service"}
	for _, p := range manPages {
		want = append(want, "man/"+p)
	}
	for _, c := range compCommands {
		want = append(want, "completions/"+c+".bash", "completions/"+c+".zsh", "completions/"+c+".fish")
		if !strings.Contains(cfg, "main: ./cmd/"+c+"\n") {
			t.Errorf("goreleaser.yaml does not build ./cmd/%s", c)
		}
	}
	for _, w := range want {
		if !slices.Contains(srcs, w) {
			t.Errorf("goreleaser.yaml does not package %s", w)
		}
	}
	for _, w := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w -X main.version={{ .Version }}",
		"goos: [linux, darwin]", "goarch: [amd64, arm64]", "formats: [deb, rpm]", "version: 2\n"} {
		if !strings.Contains(cfg, w) {
			t.Errorf("goreleaser.yaml lacks %q", w)
		}
	}
}
