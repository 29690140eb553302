package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/artifacts"
	"github.com/vizops/viz-operator/internal/sandbox"
)

const testPlotlyLib = "/**\n* plotly.js v2.6.3\n*/\nwindow.Plotly = {newPlot: function () {}};\n"

// plotlyHTML is a plotly page as the operator stores it (CSP for the CDN).
func plotlyHTML(loader string) []byte {
	page := `<html><head><meta charset="utf-8" /></head><body><div>` + loader +
		`<div id="c1"></div><script type="text/javascript">Plotly.newPlot("c1", [])</script></div></body></html>`
	src := "https://cdn.plot.ly/"
	if !strings.Contains(loader, "src=") {
		src = "inline"
	}
	arts, _, err := artifacts.Prepare([]sandbox.Artifact{{Name: "plotly_1.html", MIMEType: "text/html", Data: []byte(page), Figure: true}}, artifacts.Limits{MaxCount: 4, MaxTotalBytes: 1 << 20, MaxFileBytes: 1 << 20, PlotlyJSURL: src})
	if err != nil || len(arts) != 1 {
		panic(err)
	}
	return arts[0].Data
}

func TestPlotlyOptions(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "plotly.js")
	if err := os.WriteFile(lib, []byte(testPlotlyLib), 0o644); err != nil {
		t.Fatal(err)
	}
	cdnPage := plotlyHTML(`<script src="https://cdn.plot.ly/plotly-2.6.3.min.js"></script>`)
	inlinePage := plotlyHTML(`<script type="text/javascript">` + testPlotlyLib + `</script>`)
	png := artifacts.File{Name: "figure_1.png", Data: []byte("png")}

	type want struct {
		loader   string // in the HTML afterwards
		withFile bool   // plotly.min.js added
		warning  string
		err      string
	}
	tests := map[string]struct {
		flags []string
		page  []byte
		noLib bool // no local plotly installation
		want  want
	}{
		"local by default":            {page: cdnPage, flags: []string{"--plotly-js-file", lib}, want: want{loader: `<script src="plotly.min.js"`, withFile: true}},
		"inline":                      {page: cdnPage, flags: []string{"--plotly-js", "inline", "--plotly-js-file", lib}, want: want{loader: "window.Plotly = {newPlot"}},
		"cdn keeps the CDN":           {page: cdnPage, flags: []string{"--plotly-js", "cdn"}, want: want{loader: `<script src="https://cdn.plot.ly/plotly-2.6.3.min.js"></script>`}},
		"cdn from an inline page":     {page: inlinePage, flags: []string{"--plotly-js", "cdn"}, noLib: true, want: want{loader: `<script src="https://cdn.plot.ly/plotly-2.6.3.min.js" charset="utf-8">`}},
		"a URL":                       {page: cdnPage, flags: []string{"--plotly-js", "https://charts.example/plotly.min.js"}, want: want{loader: `<script src="https://charts.example/plotly.min.js" charset="utf-8">`}},
		"local from an inline page":   {page: inlinePage, flags: []string{"--plotly-js-file", lib}, want: want{loader: `<script src="plotly.min.js"`, withFile: true}},
		"no local plotly.js, default": {page: cdnPage, noLib: true, want: want{loader: `<script src="https://cdn.plot.ly/plotly-2.6.3.min.js"></script>`, warning: "plotly_1.html keeps loading plotly.js from https://cdn.plot.ly/plotly-2.6.3.min.js (no plotly here"}},
		"no local plotly.js, asked for local": {page: cdnPage, flags: []string{"--plotly-js", "local"}, noLib: true,
			want: want{err: "--plotly-js local: no plotly here; pass --plotly-js-file PATH, or --plotly-js cdn"}},
		"a --plotly-js-file that does not exist": {page: cdnPage, flags: []string{"--plotly-js-file", filepath.Join(dir, "nope.js")},
			want: want{err: "reading plotly.js"}},
		"not a plotly page": {page: []byte("<html>hello</html>"), flags: []string{"--plotly-js-file", lib}, want: want{loader: "hello"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var o plotlyOptions
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.addFlags(fs)
			if err := fs.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			if err := o.complete(fs); err != nil {
				t.Fatal(err)
			}
			if tc.noLib {
				o.libErr = errors.New("no plotly here")
			}
			in := []artifacts.File{png, {Name: "plotly_1.html", Data: tc.page}}
			out, warnings, err := o.apply(in)
			if tc.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want.err) {
					t.Fatalf("error %v, want %q", err, tc.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(in[1].Data, tc.page) {
				t.Error("apply changed its input")
			}
			if !bytes.Equal(out[0].Data, png.Data) || !strings.Contains(string(out[1].Data), tc.want.loader) {
				t.Errorf("the page lacks %q:\n%s", tc.want.loader, out[1].Data)
			}
			if got := len(out) == 3 && out[2].Name == artifacts.PlotlyJSFile && string(out[2].Data) == testPlotlyLib; got != tc.want.withFile {
				t.Errorf("plotly.min.js added: %v, want %v (%d files)", got, tc.want.withFile, len(out))
			}
			if w := strings.Join(warnings, "\n"); !strings.Contains(w, tc.want.warning) || (tc.want.warning == "" && w != "") {
				t.Errorf("warnings %q, want %q", w, tc.want.warning)
			}
		})
	}

	for _, bad := range []string{"offline", "ftp://x.example/p.js", "/usr/share/plotly.js", "https://"} {
		var o plotlyOptions
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o.addFlags(fs)
		_ = fs.Parse([]string{"--plotly-js", bad})
		if err := o.complete(fs); exitCode(err) != 2 {
			t.Errorf("--plotly-js %s: %v, want a usage error", bad, err)
		}
	}
}

// get -o DIR writes an HTML chart that loads plotly.js from beside it, or inline.
func TestGetWritesPlotlyJS(t *testing.T) {
	ns := newTestNamespace(t)
	lib := filepath.Join(t.TempDir(), "plotly.js")
	if err := os.WriteFile(lib, []byte(testPlotlyLib), 0o644); err != nil {
		t.Fatal(err)
	}
	page := plotlyHTML(`<script src="https://cdn.plot.ly/plotly-2.6.3.min.js"></script>`)
	st := vizv1.VisualizationRequestStatus{}
	succeeded(inlineArtifact("plotly_1.html", "html", artifacts.MIMEHTML, page))(&st)
	makeRequest(t, ns, "interactive", st)

	tests := map[string]struct {
		args  []string
		files []string
		has   []string
		lacks []string
	}{
		"local": {args: []string{"--plotly-js-file", lib}, files: []string{"plotly.min.js", "plotly_1.html"},
			has: []string{`<script src="plotly.min.js" charset="utf-8"></script>`, "script-src 'sha256-"}, lacks: []string{"cdn.plot.ly"}},
		"inline": {args: []string{"--plotly-js", "inline", "--plotly-js-file", lib}, files: []string{"plotly_1.html"},
			has: []string{"window.Plotly = {newPlot"}, lacks: []string{"cdn.plot.ly", "plotly.min.js"}},
		"cdn": {args: []string{"--plotly-js", "cdn"}, files: []string{"plotly_1.html"},
			has: []string{`<script src="https://cdn.plot.ly/plotly-2.6.3.min.js"></script>`, " https://cdn.plot.ly/;"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			stdout, stderr, code := runCLI(t, append([]string{"get", "interactive", "--kubeconfig", kubeconfig, "-n", ns, "-o", out}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			entries, _ := os.ReadDir(out)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if strings.Join(names, ",") != strings.Join(tc.files, ",") {
				t.Errorf("files %v, want %v", names, tc.files)
			}
			html, _ := os.ReadFile(filepath.Join(out, "plotly_1.html"))
			for _, s := range tc.has {
				if !strings.Contains(string(html), s) {
					t.Errorf("the page lacks %q", s)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(string(html), s) {
					t.Errorf("the page still has %q", s)
				}
			}
			if strings.Count(stdout, "wrote ") != len(tc.files) {
				t.Errorf("stdout:\n%s", stdout)
			}
		})
	}
}
