package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// plotlyPage is shaped like plotly.io.to_html(fig, include_plotlyjs=URL, full_html=True).
func plotlyPage(loader string) string {
	return `<html>
<head><meta charset="utf-8" /></head>
<body>
    <div>                        <script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
        ` + loader + `                <div id="c1" class="plotly-graph-div" style="height:100%; width:100%;"></div>            <script type="text/javascript">                                    window.PLOTLYENV=window.PLOTLYENV || {};                                    if (document.getElementById("c1")) {                    Plotly.newPlot("c1", [{"type": "bar", "x": ["a", "b"], "y": [1, 2]}], {}, {"responsive": true})                };                            </script>        </div>
</body>
</html>`
}

const fakeLib = "/**\n* plotly.js v2.6.3\n* Copyright 2012-2021, Plotly, Inc.\n*/\nwindow.Plotly = {newPlot: function () {}};\n"

func TestFindPlotlyJS(t *testing.T) {
	tests := map[string]struct {
		page         string
		found        bool
		src, version string
	}{
		"the CDN":             {page: plotlyPage(`<script src="https://cdn.plot.ly/plotly-2.6.3.min.js"></script>`), found: true, src: "https://cdn.plot.ly/plotly-2.6.3.min.js", version: "2.6.3"},
		"a pool's URL":        {page: plotlyPage(`<script src='https://static.example/js/pl.js?v=1'></script>`), found: true, src: "https://static.example/js/pl.js?v=1"},
		"a local file":        {page: plotlyPage(`<script src="plotly.min.js" charset="utf-8"></script>`), found: true, src: "plotly.min.js"},
		"an escaped src":      {page: plotlyPage(`<script src="https://x.example/plotly-2.0.0.min.js?a=1&amp;b=2"></script>`), found: true, src: "https://x.example/plotly-2.0.0.min.js?a=1&b=2", version: "2.0.0"},
		"inline":              {page: plotlyPage(`<script type="text/javascript">` + fakeLib + `</script>`), found: true, version: "2.6.3"},
		"no plotly.js at all": {page: plotlyPage(``)},
		"not a page":          {page: "plain text"},
		"an unterminated tag": {page: `<script src="x.js">`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l, found := FindPlotlyJS([]byte(tc.page))
			if found != tc.found || l.Src != tc.src || l.Version != tc.version {
				t.Errorf("got %v %q %q, want %v %q %q", found, l.Src, l.Version, tc.found, tc.src, tc.version)
			}
		})
	}
}

var (
	cspContent  = regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`)
	scriptSrcOf = regexp.MustCompile(`script-src ([^;]*);`)
	inlineBody  = regexp.MustCompile(`(?s)<script type="text/javascript">(.*?)</script>`)
)

// scriptSources is what a page's CSP lets run, and what the page's scripts need: the
// hash of each inline script plus each src, computed independently of withCSP.
func scriptSources(t *testing.T, page string) (policy, needed []string) {
	t.Helper()
	metas := cspContent.FindAllStringSubmatch(page, -1)
	if len(metas) != 1 {
		t.Fatalf("%d CSP meta elements, want 1", len(metas))
	}
	policy = strings.Fields(scriptSrcOf.FindStringSubmatch(metas[0][1])[1])
	for _, m := range inlineBody.FindAllStringSubmatch(page, -1) {
		sum := sha256.Sum256([]byte(m[1]))
		h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !slices.Contains(needed, h) {
			needed = append(needed, h)
		}
	}
	slices.Sort(policy)
	slices.Sort(needed)
	return policy, needed
}

func TestSetPlotlyJS(t *testing.T) {
	// What Prepare stores: the page behind the CSP for the CDN.
	stored := func(loader string) []byte {
		return withCSP([]byte(plotlyPage(loader)), defaultPlotlySource)
	}
	cdnPage := stored(`<script src="https://cdn.plot.ly/plotly-2.6.3.min.js"></script>`)
	inlinePage := stored(`<script type="text/javascript">` + fakeLib + `</script>`)
	tests := map[string]struct {
		page       []byte
		src        PlotlyJSSource
		wantLoader string // in the page afterwards
		wantSource string // in script-src besides the inline hashes; "" for none
		wantErr    string
	}{
		"local, from the CDN":  {page: cdnPage, src: PlotlyJSSource{File: PlotlyJSFile}, wantLoader: `<script src="plotly.min.js" charset="utf-8"></script>`, wantSource: "'self'"},
		"inline, from the CDN": {page: cdnPage, src: PlotlyJSSource{Inline: []byte(fakeLib)}, wantLoader: `<script type="text/javascript">` + fakeLib + `</script>`},
		"a URL, from the CDN": {page: cdnPage, src: PlotlyJSSource{URL: "https://static.example/js/plotly.min.js?v=2&x=<y>"},
			wantLoader: `<script src="https://static.example/js/plotly.min.js?v=2&amp;x=&lt;y&gt;" charset="utf-8"></script>`, wantSource: "https://static.example/js/plotly.min.js"},
		"local, from inline":               {page: inlinePage, src: PlotlyJSSource{File: PlotlyJSFile}, wantLoader: `<script src="plotly.min.js" charset="utf-8"></script>`, wantSource: "'self'"},
		"the CDN, from inline":             {page: inlinePage, src: PlotlyJSSource{URL: CDNPlotlyJS("2.6.3")}, wantLoader: `<script src="https://cdn.plot.ly/plotly-2.6.3.min.js" charset="utf-8"></script>`, wantSource: "https://cdn.plot.ly/plotly-2.6.3.min.js"},
		"a library that closes its script": {page: cdnPage, src: PlotlyJSSource{Inline: []byte("x='</script><script>alert(1)//'")}, wantErr: "cannot be inlined"},
		"a file in another directory":      {page: cdnPage, src: PlotlyJSSource{File: "../plotly.min.js"}, wantErr: "plain file name"},
		"a file name that breaks the tag":  {page: cdnPage, src: PlotlyJSSource{File: `x" onload="alert(1)`}, wantErr: "plain file name"},
		"not an http(s) URL":               {page: cdnPage, src: PlotlyJSSource{URL: "javascript:alert(1)"}, wantErr: "absolute http(s) URL"},
		"two sources":                      {page: cdnPage, src: PlotlyJSSource{File: PlotlyJSFile, URL: "https://x.example/p.js"}, wantErr: "exactly one"},
		"no source":                        {page: cdnPage, wantErr: "exactly one"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, ok, err := SetPlotlyJS(tc.page, tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !ok {
				t.Fatalf("ok %v, error %v", ok, err)
			}
			page := string(out)
			if strings.Count(page, "<script") != 3 || !strings.Contains(page, tc.wantLoader) {
				t.Errorf("the loader is not %s:\n%s", tc.wantLoader, page)
			}
			if !strings.Contains(page, `Plotly.newPlot("c1"`) || !strings.Contains(page, "window.PlotlyConfig") {
				t.Errorf("the page's own scripts changed:\n%s", page)
			}
			policy, needed := scriptSources(t, page)
			if tc.wantSource != "" {
				needed = append(needed, tc.wantSource)
				slices.Sort(needed)
			}
			if diff := cmp.Diff(needed, policy); diff != "" {
				t.Errorf("script-src does not match the page's scripts (-needed +policy):\n%s", diff)
			}
			if !strings.Contains(page, "connect-src 'none'") || !strings.HasPrefix(page, `<meta http-equiv="Content-Security-Policy"`) {
				t.Errorf("the rest of the policy, or its place, changed:\n%.300s", page)
			}
		})
	}

	t.Run("a page without plotly.js is left alone", func(t *testing.T) {
		page := []byte("<html><body>no chart</body></html>")
		out, ok, err := SetPlotlyJS(page, PlotlyJSSource{File: PlotlyJSFile})
		if ok || err != nil || !bytes.Equal(out, page) {
			t.Errorf("ok %v, err %v, page %s", ok, err, out)
		}
	})
	t.Run("a second CSP meta in the page does not survive", func(t *testing.T) {
		page := append(bytes.Clone(cdnPage), []byte(`<META HTTP-EQUIV='content-security-policy' CONTENT="script-src *">`)...)
		out, _, err := SetPlotlyJS(page, PlotlyJSSource{File: PlotlyJSFile})
		if err != nil || strings.Contains(string(out), "script-src *") {
			t.Errorf("err %v:\n%s", err, out)
		}
	})
}

func TestReadLocalPlotlyJS(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "plotly.js")
	if err := os.WriteFile(lib, []byte(fakeLib), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.js")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if data, path, err := ReadLocalPlotlyJS(lib); err != nil || path != lib || PlotlyJSVersion(data) != "2.6.3" {
		t.Errorf("%s: %q %v, version %q", lib, path, err, PlotlyJSVersion(data))
	}
	if _, _, err := ReadLocalPlotlyJS(filepath.Join(dir, "missing.js")); err == nil {
		t.Error("a missing --plotly-js-file read without error")
	}
	if _, _, err := ReadLocalPlotlyJS(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty file: %v", err)
	}
	// The machine's own installation (Debian's python3-plotly on the build machines).
	if data, path, err := ReadLocalPlotlyJS(""); err != nil {
		t.Logf("no local plotly.js here: %v", err)
	} else if PlotlyJSVersion(data) == "" {
		t.Errorf("%s does not start with plotly.js's header", path)
	}
}

// A real plotly page (plotly.py under Debian's python), prepared as the operator
// prepares it, then pointed at a local or inline plotly.js, renders its chart in
// headless Chromium: the CSP lets the rewritten loader run, and nothing is fetched
// from the network. The page as stored (loading plotly.js from the CDN, which the
// build machines cannot reach) is the control: it must not render here.
func TestPlotlyJSRendersOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium three times (about a minute)")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed")
	}
	lib, _, err := ReadLocalPlotlyJS("")
	if err != nil {
		t.Skipf("no local plotly.js: %v", err)
	}
	dir := t.TempDir()
	runPython(t, `import sys, plotly.graph_objects as go, plotly.io as pio, plotly.offline
fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
open(sys.argv[1], "w").write(pio.to_html(fig, include_plotlyjs="https://cdn.plot.ly/plotly-%s.min.js" % plotly.offline.get_plotlyjs_version(), full_html=True))`, filepath.Join(dir, "raw.html"))
	raw, err := os.ReadFile(filepath.Join(dir, "raw.html"))
	if err != nil {
		t.Fatal(err)
	}
	arts, _, err := Prepare([]sandbox.Artifact{{Name: "plotly_1.html", MIMEType: "text/html", Data: raw, Figure: true}}, DefaultLimits())
	if err != nil || len(arts) != 1 {
		t.Fatalf("%v %v", arts, err)
	}
	rendered := func(t *testing.T, page string) bool {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--user-data-dir="+filepath.Join(t.TempDir(), "profile"), "--virtual-time-budget=10000", "--dump-dom", "file://"+page).Output()
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		return strings.Contains(string(out), "main-svg")
	}
	for name, src := range map[string]PlotlyJSSource{"local": {File: PlotlyJSFile}, "inline": {Inline: lib}} {
		t.Run(name, func(t *testing.T) {
			page, ok, err := SetPlotlyJS(arts[0].Data, src)
			if err != nil || !ok {
				t.Fatalf("ok %v, %v", ok, err)
			}
			out := filepath.Join(t.TempDir(), "out")
			files := []File{{Name: "chart.html", Data: page}}
			if src.File != "" {
				files = append(files, File{Name: PlotlyJSFile, Data: lib})
			}
			if _, err := WriteFiles(out, files, false); err != nil {
				t.Fatal(err)
			}
			if !rendered(t, filepath.Join(out, "chart.html")) {
				t.Errorf("the chart did not render")
			}
		})
	}
	t.Run("as stored, from the CDN", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "chart.html")
		if err := os.WriteFile(path, arts[0].Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if rendered(t, path) {
			t.Skip("the CDN is reachable from here: the control proves nothing")
		}
	})
}
