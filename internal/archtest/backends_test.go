package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// backendPackages are the packages of the backends: their pure packages and their
// adapters. The controllers reach a backend only through internal/backends's
// interfaces, registered in cmd/main.go.
var backendPackages = []string{
	module + "/internal/sandbox/local", module + "/internal/sandbox/kubernetes", module + "/internal/sandbox/e2b",
	module + "/internal/backends/local", module + "/internal/backends/kubernetes", module + "/internal/backends/e2b",
}

// backendNames reports where src (one Go file) names a backend: an import of a
// backend's package, or one of the API's Backend constants (BackendLocal, ...).
func backendNames(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if slices.Contains(backendPackages, path) || strings.HasPrefix(path, module+"/internal/backends/") {
			out = append(out, fset.Position(imp.Pos()).String()+": imports "+path)
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && strings.HasPrefix(sel.Sel.Name, "Backend") {
			switch sel.Sel.Name {
			case "BackendLocal", "BackendKubernetes", "BackendE2B":
				out = append(out, fset.Position(sel.Pos()).String()+": names "+sel.Sel.Name)
			}
		}
		return true
	})
	return out, nil
}

// TestControllerNamesNoBackend: the controllers (internal/controller, tests aside)
// import no backend's package and name no backend; a backend plugs in through
// internal/backends alone.
func TestControllerNamesNoBackend(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "controller", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files of internal/controller found (%v)", err)
	}
	fset := token.NewFileSet()
	seen := false
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		seen = seen || filepath.Base(name) == "sandboxpool_controller.go"
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		found, err := backendNames(fset, name, src)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Error(f)
		}
	}
	if !seen {
		t.Fatal("sandboxpool_controller.go is not among the files checked: the check reads the wrong tree")
	}
}

// TestBackendNamesFindsThem: the check finds an import of a backend and a backend's
// name, and passes the neutral code around them.
func TestBackendNamesFindsThem(t *testing.T) {
	src := `package controller

import (
	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
	kube "github.com/vizops/viz-operator/internal/backends/kubernetes"
)

var _ = e2b.Config{}
var _ backends.Backend = kube.Backend{}
var kubernetes = vizv1.BackendKubernetes
var backend vizv1.Backend
`
	got, err := backendNames(token.NewFileSet(), "x.go", src)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, g := range got {
		kinds = append(kinds, g[strings.Index(g, ": ")+2:])
	}
	want := []string{
		"imports " + module + "/internal/sandbox/e2b",
		"imports " + module + "/internal/backends/kubernetes",
		"names BackendKubernetes",
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("found %q, want %q", kinds, want)
	}
}
