package artifacts

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// These tests load artifacts in Debian's headless chromium the way UIs display them:
// HTML in a sandboxed iframe, SVG inlined into a page (as innerHTML would, through the
// HTML parser). What they do not cover: other browsers, and UIs that ignore the Note
// and give the iframe allow-same-origin.

const (
	chromiumPath = "/usr/bin/chromium"
	// plotlyJSPath is Debian python3-plotly's copy of plotly.js (dpkg -L python3-plotly).
	plotlyJSPath = "/usr/share/python3-plotly/plotly.js"
)

// browse runs headless chromium on url with extra flags (--dump-dom or --screenshot)
// and returns its stdout.
func browse(t *testing.T, url string, flags ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(),
		"--window-size=900,700", "--virtual-time-budget=15000",
	}, flags...)
	cmd := exec.CommandContext(ctx, chromiumPath, append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, lastLines(stderr.String(), 20))
	}
	return stdout.Bytes()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// screenshot loads url and returns the rendered page.
func screenshot(t *testing.T, url string) image.Image {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shot.png")
	browse(t, url, "--screenshot="+path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// countColour counts pixels within 12 of (r, g, b) on each channel.
func countColour(img image.Image, r, g, b int) int {
	near := func(a uint32, want int) bool { d := int(a>>8) - want; return d >= -12 && d <= 12 }
	n := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if near(cr, r) && near(cg, g) && near(cb, b) {
				n++
			}
		}
	}
	return n
}

const plotlyScript = `
import sys, plotly.graph_objects as go
fig = go.Figure(go.Bar(x=["Hydroxyurea", "Voxelotor", "Crizanlizumab"], y=[85, 70, 75]))
fig.update_layout(title="SCD treatment effectiveness", width=800, height=500)
fig.write_html(sys.argv[1], include_plotlyjs=sys.argv[2], full_html=True)
`

// TestPlotlyHTMLRendersInChromium: plotly HTML written by the Debian plotly package,
// through Prepare, still renders in chromium, directly and inside the sandboxed iframe
// the Note asks for. A copy whose plotly.js is missing is the control: no bars.
func TestPlotlyHTMLRendersInChromium(t *testing.T) {
	pages := map[string][]byte{}
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/plotly.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, plotlyJSPath)
	})
	mux.HandleFunc("/page/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		body, ok := pages[strings.TrimPrefix(r.URL.Path, "/page/")]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	dir := t.TempDir()
	runPython(t, plotlyScript, filepath.Join(dir, "chart.html"), srv.URL+"/plotly.js")
	runPython(t, plotlyScript, filepath.Join(dir, "broken.html"), srv.URL+"/missing-plotly.js")
	raw, err := os.ReadFile(filepath.Join(dir, "chart.html"))
	if err != nil {
		t.Fatal(err)
	}
	broken, err := os.ReadFile(filepath.Join(dir, "broken.html"))
	if err != nil {
		t.Fatal(err)
	}

	prepare := func(page []byte, plotlyJS string) []byte {
		limits := DefaultLimits()
		limits.PlotlyJSURL = plotlyJS
		arts, warnings, err := Prepare([]sandbox.Artifact{{Name: "chart.html", MIMEType: "text/html", Data: page}}, limits)
		if err != nil || len(arts) != 1 || len(warnings) != 0 {
			t.Fatalf("Prepare: %v %v %v", arts, warnings, err)
		}
		return arts[0].Data
	}
	arts, _, err := Prepare([]sandbox.Artifact{{Name: "chart.html", MIMEType: "text/html", Data: raw}}, Limits{MaxCount: 1, MaxTotalBytes: 1 << 30, MaxFileBytes: 1 << 30, PlotlyJSURL: srv.URL + "/plotly.js"})
	if err != nil || len(arts) != 1 {
		t.Fatalf("Prepare: %v %v", arts, err)
	}
	a := arts[0]
	// Issue 10, finding 11: the page gains a Content-Security-Policy, and nothing else.
	if a.Format != FormatHTML || a.MIMEType != MIMEHTML || a.Note != HTMLNote || !bytes.HasSuffix(a.Data, raw) ||
		!bytes.HasPrefix(a.Data, []byte(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'sha256-`)) {
		t.Fatalf("HTML artifact: format %q mime %q note %q, data starts %.300q", a.Format, a.MIMEType, a.Note, a.Data)
	}
	// The CSP is in force: the same page prepared for another plotly.js source cannot
	// load ours (no bars), and an event handler injected into the page does not run.
	pwn := `<img src="/nope" onerror="document.documentElement.setAttribute('data-x', 'p' + 'wned')">`
	injected := bytes.Replace(raw, []byte("</body>"), []byte(pwn+"</body>"), 1)
	if bytes.Equal(injected, raw) {
		t.Fatal("the plotly page has no </body> to inject before")
	}
	iframe := func(src string) []byte {
		return []byte(fmt.Sprintf(`<!DOCTYPE html><html><body style="margin:0">`+
			`<iframe sandbox="allow-scripts" src="%s" width="850" height="650" style="border:0"></iframe></body></html>`, src))
	}
	mu.Lock()
	pages["chart.html"] = a.Data
	pages["broken.html"] = broken
	pages["host.html"] = iframe("/page/chart.html")
	pages["broken-host.html"] = iframe("/page/broken.html")
	pages["other-source.html"] = prepare(raw, "https://cdn.example.org/plotly.min.js")
	pages["other-source-host.html"] = iframe("/page/other-source.html")
	pages["injected.html"] = prepare(injected, srv.URL+"/plotly.js")
	pages["injected-raw.html"] = injected
	mu.Unlock()

	if dom := browse(t, srv.URL+"/page/injected-raw.html", "--dump-dom"); !bytes.Contains(dom, []byte("pwned")) {
		t.Errorf("control: the injected handler did not run in the unprepared page")
	}
	if dom := browse(t, srv.URL+"/page/injected.html", "--dump-dom"); bytes.Contains(dom, []byte("pwned")) {
		t.Errorf("an event handler injected into the page ran despite the CSP")
	}
	if n := countColour(screenshot(t, srv.URL+"/page/other-source-host.html"), 0x63, 0x6e, 0xfa); n != 0 {
		t.Errorf("a page whose CSP allows another plotly.js source loaded ours: %d bar pixels, want 0", n)
	}

	dom := browse(t, srv.URL+"/page/chart.html", "--dump-dom")
	for _, want := range []string{`class="plot-container plotly"`, `class="main-svg"`, "SCD treatment effectiveness"} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("plotly did not render: the DOM has no %q", want)
		}
	}
	// plotly's first trace colour is #636efa.
	if n := countColour(screenshot(t, srv.URL+"/page/host.html"), 0x63, 0x6e, 0xfa); n < 2000 {
		t.Errorf("sandboxed iframe shows %d bar pixels, want a rendered bar chart", n)
	}
	if n := countColour(screenshot(t, srv.URL+"/page/broken-host.html"), 0x63, 0x6e, 0xfa); n != 0 {
		t.Errorf("control without plotly.js shows %d bar pixels, want 0", n)
	}
}

// svgAttacks each try to run script (which marks the page) or fetch /leak/<name>.
// The marker is built at run time so the page source never contains it.
var svgAttacks = map[string]string{
	"onload":        `<svg xmlns="http://www.w3.org/2000/svg" onload="MARK"/>`,
	"script":        `<svg xmlns="http://www.w3.org/2000/svg"><script>MARK</script></svg>`,
	"foreignObject": `<svg xmlns="http://www.w3.org/2000/svg"><foreignObject width="10" height="10"><img xmlns="http://www.w3.org/1999/xhtml" src="/nope" onerror="MARK"/></foreignObject></svg>`,
	"title-html":    `<svg xmlns="http://www.w3.org/2000/svg"><title><img xmlns="http://www.w3.org/1999/xhtml" src="/nope" onerror="MARK"/></title></svg>`,
	"image-onerror": `<svg xmlns="http://www.w3.org/2000/svg"><image href="/nope" onerror="MARK" width="5" height="5"/></svg>`,
	"animate":       `<svg xmlns="http://www.w3.org/2000/svg"><rect width="5" height="5"><animate attributeName="x" from="0" to="1" dur="0.1s" onbegin="MARK"/></rect></svg>`,
	"image-leak":    `<svg xmlns="http://www.w3.org/2000/svg"><image href="LEAK" width="5" height="5"/></svg>`,
	"use-leak":      `<svg xmlns="http://www.w3.org/2000/svg"><use href="LEAK#x"/></svg>`,
	"import-leak":   `<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(LEAK);</style></svg>`,
	"css-leak":      `<svg xmlns="http://www.w3.org/2000/svg" style="background-image: url(LEAK)" width="5" height="5"/>`,
}

// TestSanitizedSVGInChromium inlines SVGs into a page as a UI would. Unsanitized, the
// attacks run script and fetch URLs (the control: the harness can see both). After
// Prepare, nothing runs, nothing is fetched, and the matplotlib chart still draws.
func TestSanitizedSVGInChromium(t *testing.T) {
	var mu sync.Mutex
	leaks := map[string]bool{}
	pages := map[string]string{}
	mux := http.NewServeMux()
	mux.HandleFunc("/leak/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaks[strings.TrimPrefix(r.URL.Path, "/leak/")] = true
		mu.Unlock()
		w.Header().Set("Content-Type", "image/svg+xml")
		fmt.Fprint(w, `<svg xmlns="http://www.w3.org/2000/svg"><g id="x"/></svg>`)
	})
	mux.HandleFunc("/page/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		body, ok := pages[strings.TrimPrefix(r.URL.Path, "/page/")]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, body)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	mark := func(name string) string {
		return `document.documentElement.setAttribute('data-` + strings.ToLower(name) + `', 'p' + 'wned')`
	}
	chart, err := os.ReadFile("testdata/matplotlib-bar.svg")
	if err != nil {
		t.Fatal(err)
	}
	var files []sandbox.Artifact
	var rawPage strings.Builder
	rawPage.WriteString("<!DOCTYPE html><html><body>")
	for name, svg := range svgAttacks {
		svg = strings.ReplaceAll(svg, "MARK", mark(name))
		svg = strings.ReplaceAll(svg, "LEAK", srv.URL+"/leak/"+name)
		rawPage.WriteString(svg)
		files = append(files, sandbox.Artifact{Name: name + ".svg", MIMEType: "image/svg+xml", Data: []byte(svg)})
	}
	rawPage.WriteString("</body></html>")
	files = append(files, sandbox.Artifact{Name: "chart.svg", MIMEType: "image/svg+xml", Data: chart})
	arts, _, err := Prepare(files, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	var cleanPage strings.Builder
	cleanPage.WriteString("<!DOCTYPE html><html><body style=\"margin:0\">")
	for _, a := range arts {
		cleanPage.Write(a.Data)
	}
	cleanPage.WriteString("</body></html>")
	mu.Lock()
	pages["raw.html"] = rawPage.String()
	pages["clean.html"] = cleanPage.String()
	mu.Unlock()

	// Control: unsanitized, script runs and resources are fetched.
	dom := browse(t, srv.URL+"/page/raw.html", "--dump-dom")
	for name, svg := range svgAttacks {
		ran := bytes.Contains(dom, []byte(`data-`+strings.ToLower(name)+`="pwned"`))
		if strings.Contains(svg, "MARK") && !ran {
			t.Errorf("control: attack %q did not run unsanitized, so the harness cannot tell whether sanitizing stops it", name)
		}
	}
	mu.Lock()
	for name, svg := range svgAttacks {
		if strings.Contains(svg, "LEAK") && !leaks[name] {
			t.Errorf("control: attack %q fetched nothing unsanitized, so the harness cannot tell whether sanitizing stops it", name)
		}
	}
	clear(leaks)
	mu.Unlock()

	dom = browse(t, srv.URL+"/page/clean.html", "--dump-dom")
	if bytes.Contains(dom, []byte("pwned")) {
		t.Errorf("script ran from a sanitized SVG")
	}
	img := screenshot(t, srv.URL+"/page/clean.html")
	mu.Lock()
	defer mu.Unlock()
	if len(leaks) != 0 {
		t.Errorf("sanitized SVGs fetched %v", leaks)
	}
	// matplotlib's first colour, #1f77b4, fills the bars.
	if n := countColour(img, 0x1f, 0x77, 0xb4); n < 1000 {
		t.Errorf("sanitized matplotlib chart shows %d bar pixels, want a rendered chart", n)
	}
}
