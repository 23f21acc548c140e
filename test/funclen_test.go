package test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines bounds a function of the commands (cmd/, tests aside): a
// main parses and makes one call, and what a command does is read in steps
// of a screen or so. The aim is 60; over 80 fails.
const maxFuncLines = 80

// TestCommandFunctionLength fails for a function in cmd/ (not in a test
// file) longer than maxFuncLines, from its func line to its closing brace.
func TestCommandFunctionLength(t *testing.T) {
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir(filepath.Join("..", "cmd"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			n++
			start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
			if lines := end.Line - start.Line + 1; lines > maxFuncLines {
				t.Errorf("%s:%d: func %s is %d lines long; split it (at most %d)", path, start.Line, fd.Name.Name, lines, maxFuncLines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("found only %d functions under cmd/: is the walk looking in the right place?", n)
	}
}
