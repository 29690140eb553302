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
)

// runCLI runs the plugin's root command with args and returns stdout, stderr and the
// exit code main would use.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCommand()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
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

func TestArtifactPathStaysInDir(t *testing.T) {
	tests := map[string]struct {
		name string
		want string
		err  bool
	}{
		"plain":    {name: "figure_1.png", want: "out/figure_1.png"},
		"subdir":   {name: "outputs/a.txt", want: "out/outputs/a.txt"},
		"escape":   {name: "../../etc/passwd", err: true},
		"absolute": {name: "/etc/passwd", err: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := artifactPath("out", tc.name)
			if (err != nil) != tc.err || (!tc.err && got != tc.want) {
				t.Errorf("artifactPath(%q) = %q, %v; want %q, error %v", tc.name, got, err, tc.want, tc.err)
			}
		})
	}
}
