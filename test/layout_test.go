package test

// The package map of README.md ("Architecture"), checked against the code's
// imports: what each layer may import, and what the client commands link.

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tnl-lock/tnl"

// mayImport lists, for each package of lib/ and cmd/internal/, the project
// packages it may import directly. A package missing here is a
// failure too: a new package takes its place in the map on purpose.
var mayImport = map[string][]string{
	"lib/protocol":         {},
	"lib/table":            {},
	"lib/table/tabletest":  {"lib/table"},
	"lib/lockd":            {"lib/table"},
	"lib/internal/sockopt": {},
	// The server works over the lock-table interface only, so that any
	// implementation (the embedded lockd, the etcd backend) plugs in.
	"lib/server": {"lib/protocol", "lib/table", "lib/internal/sockopt"},
	"lib/client": {"lib/protocol", "lib/internal/sockopt"},

	// What only the commands use. Only serve builds a server; the rest
	// build on the client.
	"cmd/internal/exitcode":  {},
	"cmd/internal/supervise": {"cmd/internal/exitcode"},
	"cmd/internal/security":  {"cmd/internal/exitcode", "lib/client"},
	"cmd/internal/cli":       {"cmd/internal/exitcode", "cmd/internal/security", "lib/client", "lib/protocol"},
	"cmd/internal/acquire":   {"cmd/internal/exitcode", "cmd/internal/security", "lib/client", "lib/protocol"},
	"cmd/internal/hold":      {"cmd/internal/acquire", "cmd/internal/exitcode", "cmd/internal/supervise", "lib/client"},
	"cmd/internal/withlock":  {"cmd/internal/acquire", "cmd/internal/exitcode", "cmd/internal/supervise", "lib/client"},
	"cmd/internal/stats":     {"cmd/internal/acquire", "cmd/internal/exitcode", "cmd/internal/security", "lib/client", "lib/protocol"},
	"cmd/internal/serve":     {"cmd/internal/cli", "cmd/internal/security", "lib/lockd", "lib/protocol", "lib/server"},
}

// clientCommands must not link the server's code (nor, later, its
// dependencies): a host that only takes locks carries none of it.
var clientCommands = []string{"cmd/tnl-do", "cmd/tnl-lock", "cmd/tnl-stats"}

// serverOnly are the packages the client commands must never link.
var serverOnly = []string{"lib/server", "lib/lockd", "lib/table"}

// thirdParty are the only modules outside the standard library that any
// command links (STYLE.md: kong and x/sys).
var thirdParty = []string{"github.com/alecthomas/kong", "golang.org/x/sys/"}

type pkgInfo struct {
	imports []string // direct, project-relative for project packages
	deps    []string // transitive, full paths
}

// goList runs `go list` over the module and returns what it says of each
// package, keyed by path relative to the module ("lib/client").
func goList(t *testing.T) map[string]pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-f",
		`{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}`, "./...")
	cmd.Dir = ".." // the module root: go test runs in test/
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]pkgInfo{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) != 3 {
			t.Fatalf("go list: odd line %q", sc.Text())
		}
		rel, ok := strings.CutPrefix(f[0], module+"/")
		if !ok {
			continue
		}
		var p pkgInfo
		for _, imp := range strings.Fields(f[1]) {
			if r, ok := strings.CutPrefix(imp, module+"/"); ok {
				p.imports = append(p.imports, r)
			}
		}
		p.deps = strings.Fields(f[2])
		pkgs[rel] = p
	}
	return pkgs
}

func TestPackageMap(t *testing.T) {
	pkgs := goList(t)
	for rel, p := range pkgs {
		switch {
		case strings.HasPrefix(rel, "lib/"), strings.HasPrefix(rel, "cmd/internal/"):
			allowed, ok := mayImport[rel]
			if !ok {
				t.Errorf("%s is not in the package map (test/layout_test.go and README.md, Architecture)", rel)
				continue
			}
			for _, imp := range p.imports {
				if !slices.Contains(allowed, imp) {
					t.Errorf("%s imports %s, which the package map does not allow", rel, imp)
				}
			}
		case strings.HasPrefix(rel, "cmd/"):
			// Commands and their internal packages build on lib/, never the
			// other way round (Go's internal rule already keeps lib/ out of
			// cmd/internal); a command never imports another command.
			for _, imp := range p.imports {
				if strings.HasPrefix(imp, "cmd/") && !strings.HasPrefix(imp, "cmd/internal/") {
					t.Errorf("%s imports the command %s", rel, imp)
				}
			}
		}
	}
	for rel := range mayImport {
		if _, ok := pkgs[rel]; !ok {
			t.Errorf("the package map names %s, which does not exist", rel)
		}
	}
}

func TestClientCommandsDoNotLinkTheServer(t *testing.T) {
	pkgs := goList(t)
	for _, c := range clientCommands {
		p, ok := pkgs[c]
		if !ok {
			t.Fatalf("no package %s", c)
		}
		for _, d := range p.deps {
			for _, s := range serverOnly {
				if d == module+"/"+s {
					t.Errorf("%s links %s", c, s)
				}
			}
		}
	}
}

func TestCommandsLinkOnlyKongAndXSys(t *testing.T) {
	pkgs := goList(t)
	for _, c := range append(slices.Clone(clientCommands), "cmd/tnl-server") {
		for _, d := range pkgs[c].deps {
			first, _, _ := strings.Cut(d, "/")
			if !strings.Contains(first, ".") || strings.HasPrefix(d, module+"/") {
				continue // standard library (no dot in the first element), or ours
			}
			if !slices.ContainsFunc(thirdParty, func(p string) bool { return strings.HasPrefix(d, p) }) {
				t.Errorf("%s links %s, outside kong and x/sys", c, d)
			}
		}
	}
}
