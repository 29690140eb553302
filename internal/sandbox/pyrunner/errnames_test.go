package pyrunner

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// errorNameLiteral is an error the Python side names itself, as a dict literal:
// {"name": "Timeout", ...}. Names taken from an exception (type(e).__name__) are the
// user's code's and are not matched.
// Any string literal naming a limit ("MemoryLimitExceeded", kernel.py's limit hints)
// or the timeout is matched too.
var errorNameLiteral = regexp.MustCompile(`\{"name":\s*"([A-Za-z]+)"|"([A-Za-z]+LimitExceeded|Timeout)"`)

// vocabulary reads every ErrName* constant of package sandbox from its source, so a
// constant added there is covered here without editing this test.
func vocabulary(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../limits.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "ErrName") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", n.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out[v] = n.Name
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no ErrName constants found in ../limits.go")
	}
	return out
}

// TestPythonErrorNamesAreTheVocabulary ties the error names base.py and kernel.py
// write themselves to sandbox.ErrName*: a job's timeout or an overflowing report
// reaches the caller under the name the controller and every backend match on.
func TestPythonErrorNamesAreTheVocabulary(t *testing.T) {
	vocab := vocabulary(t)
	// The constants this package's Python must use, read through the Go names so a
	// renamed constant breaks the build, not just this test.
	for _, name := range []string{sandbox.ErrNameTimeout, sandbox.ErrNameCPUTimeLimitExceeded} {
		if _, ok := vocab[name]; !ok {
			t.Fatalf("%q is not in the vocabulary read from ../limits.go", name)
		}
	}
	used := map[string]bool{}
	for file, src := range map[string]string{"base.py": baseMain, "kernel.py": kernelMain} {
		for _, m := range errorNameLiteral.FindAllStringSubmatch(src, -1) {
			name := m[1] + m[2]
			used[name] = true
			if _, ok := vocab[name]; !ok {
				known := make([]string, 0, len(vocab))
				for v := range vocab {
					known = append(known, v)
				}
				sort.Strings(known)
				t.Errorf("%s names an error %q, which is not a sandbox.ErrName* constant (%s)", file, name, strings.Join(known, ", "))
			}
		}
	}
	// The kernel reports these itself; if it stopped, the Go side's mapping (or this
	// test's pattern) has drifted from it.
	for _, name := range []string{sandbox.ErrNameTimeout,
		sandbox.ErrNameMemoryLimitExceeded, sandbox.ErrNameScratchLimitExceeded, sandbox.ErrNameProcessLimitExceeded,
		sandbox.ErrNameCPUTimeLimitExceeded} {
		if !used[name] {
			t.Errorf("base.py and kernel.py no longer write the error name %q (%s): update the mapping or this test", name, vocab[name])
		}
	}
}
