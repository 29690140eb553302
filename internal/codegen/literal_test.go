package codegen

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPyStrRoundTrip has Python evaluate the literals pyStr writes: each must read
// back as the original text (invalid UTF-8 as U+FFFD), whatever it contains.
func TestPyStrRoundTrip(t *testing.T) {
	inputs := []string{
		"", "plain", `"`, `'`, `\`, `\\"`, `"""`, `'''`, "\n", "\r\n", "\t", "\x00", "\x7f", "\x1b[31m",
		"{{ .Title }}", "{{", "}}", "%s %d {0}", "$x^2$", "é", "血红蛋白", "🩸", "\u2028\u2029",
		"a\"); import os; os.system(\"id\"); (\"", "\\N{BULLET}", "\\u0041", "\xff\xfe", "a\xc3",
		strings.Repeat("x", 5000),
	}
	var src strings.Builder
	src.WriteString("import json\nvalues = [\n")
	for _, in := range inputs {
		src.WriteString("    " + pyStr(in) + ",\n")
	}
	src.WriteString("]\nprint(json.dumps(values))\n")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lit.py"), []byte(src.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := execPython(t, dir, "lit.py")
	if err != nil {
		t.Fatalf("python: %v\n%s\n%s", err, stderr, src.String())
	}
	var got []string
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	want := make([]string, len(inputs))
	for i, in := range inputs {
		want[i] = strings.ToValidUTF8(in, "\ufffd")
	}
	// Each invalid byte becomes its own U+FFFD in pyStr; ToValidUTF8 merges runs.
	want[len(want)-3] = "\ufffd\ufffd"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	for _, in := range inputs {
		lit := pyStr(in)
		if strings.ContainsAny(lit[1:len(lit)-1], "\n\r\x00") {
			t.Errorf("pyStr(%q) = %q holds a raw control character", in, lit)
		}
	}
}
