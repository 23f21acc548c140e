package test

// lib/ is the project's public Go API (STYLE.md): every package there says
// what it is for, and every exported name has a doc comment.

import (
	"go/ast"
	"go/build"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublicAPIIsDocumented(t *testing.T) {
	dirs := map[string]bool{}
	err := filepath.WalkDir("../lib", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			dirs[filepath.Dir(p)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 5 {
		t.Fatalf("found %d packages under lib/, want the whole public API", len(dirs))
	}
	for dir := range dirs {
		// go/build picks the files this platform compiles (build tags
		// included), as the go command would.
		bp, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		fset := token.NewFileSet()
		files := make([]*ast.File, 0, len(bp.GoFiles))
		for _, name := range bp.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
			if err != nil {
				t.Fatalf("%s: %v", dir, err)
			}
			files = append(files, f)
		}
		p, err := doc.NewFromFiles(fset, files, "x/"+dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		undocumented(t, dir, p)
	}
}

// wellKnown methods implement a standard interface and say nothing a
// reader needs beyond it.
var wellKnown = map[string]bool{"Error": true, "String": true, "Unwrap": true, "Is": true, "As": true}

func undocumented(t *testing.T, dir string, p *doc.Package) {
	t.Helper()
	rel := strings.TrimPrefix(dir, "../")
	if strings.TrimSpace(p.Doc) == "" {
		t.Errorf("%s: no package doc", rel)
	}
	values := func(vs []*doc.Value) {
		for _, v := range vs {
			if v.Doc != "" {
				continue // a documented group covers its names
			}
			for _, s := range v.Decl.Specs {
				vs := s.(*ast.ValueSpec)
				if vs.Doc == nil && vs.Comment == nil {
					for _, n := range vs.Names {
						if n.IsExported() {
							t.Errorf("%s: %s has no doc comment", rel, n.Name)
						}
					}
				}
			}
		}
	}
	funcs := func(recv string, fs []*doc.Func) {
		for _, f := range fs {
			if f.Doc == "" && ast.IsExported(f.Name) && !(recv != "" && wellKnown[f.Name]) {
				t.Errorf("%s: %s%s has no doc comment", rel, recv, f.Name)
			}
		}
	}
	values(p.Consts)
	values(p.Vars)
	funcs("", p.Funcs)
	for _, ty := range p.Types {
		if ty.Doc == "" {
			t.Errorf("%s: type %s has no doc comment", rel, ty.Name)
		}
		values(ty.Consts)
		values(ty.Vars)
		funcs("", ty.Funcs)
		funcs(ty.Name+".", ty.Methods)
	}
}
