package artifacts

import (
	"errors"
	"fmt"
	"html"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// PlotlyJSFile is the name plotly.js is written under beside an HTML chart that loads
// it from a local file.
const PlotlyJSFile = "plotly.min.js"

// PlotlyJSSource is where a plotly page loads plotly.js from: exactly one of Inline (the
// library itself, embedded in the page), File (a file name relative to the page, such
// as PlotlyJSFile) or URL (an absolute http(s) URL).
type PlotlyJSSource struct {
	Inline []byte
	File   string
	URL    string
}

// PlotlyLoader is the script element of a plotly page that loads plotly.js.
type PlotlyLoader struct {
	// Src is the element's src; empty when plotly.js is inline.
	Src string
	// Version is plotly.js's version when the page says it (a CDN file name such as
	// plotly-2.6.3.min.js, or the license header of an inline copy), else "".
	Version    string
	start, end int
}

var (
	srcValue       = regexp.MustCompile(`(?is)\ssrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)
	plotlyHeader   = regexp.MustCompile(`^\s*/\*\*?\s*\*?\s*plotly\.js v([0-9][0-9A-Za-z.+-]*)`)
	plotlyFileName = regexp.MustCompile(`^plotly(?:-v?([0-9][0-9A-Za-z.+-]*?))?(?:\.min)?\.js$`)
	cspMeta        = regexp.MustCompile(`(?is)<meta\b[^>]*http-equiv\s*=\s*["']?content-security-policy["']?[^>]*>`)
)

// FindPlotlyJS finds the element of page that loads plotly.js: the first script element
// with a src (plotly.py writes exactly one, before the chart), else the first inline
// script that starts with plotly.js's license header.
func FindPlotlyJS(page []byte) (PlotlyLoader, bool) {
	var inline *PlotlyLoader
	off := 0
	for {
		m := scriptOpen.FindSubmatchIndex(page[off:])
		if m == nil {
			break
		}
		attrs := page[off+m[2] : off+m[3]]
		bodyStart := off + m[1]
		end := scriptClose.FindIndex(page[bodyStart:])
		if end == nil {
			break
		}
		bodyEnd := bodyStart + end[0]
		closeEnd := bodyStart + end[1]
		if gt := strings.IndexByte(string(page[closeEnd:]), '>'); gt >= 0 {
			closeEnd += gt + 1
		}
		if s := srcValue.FindSubmatch(attrs); s != nil {
			src := html.UnescapeString(string(s[1]) + string(s[2]) + string(s[3]))
			l := PlotlyLoader{Src: src, start: off + m[0], end: closeEnd}
			base := src
			if i := strings.IndexAny(base, "?#"); i >= 0 {
				base = base[:i]
			}
			if fm := plotlyFileName.FindStringSubmatch(path.Base(base)); fm != nil {
				l.Version = strings.TrimSuffix(fm[1], ".min")
			}
			return l, true
		}
		if inline == nil {
			head := page[bodyStart:min(bodyEnd, bodyStart+256)]
			if hm := plotlyHeader.FindSubmatch(head); hm != nil {
				inline = &PlotlyLoader{Version: string(hm[1]), start: off + m[0], end: closeEnd}
			}
		}
		off = closeEnd
	}
	if inline != nil {
		return *inline, true
	}
	return PlotlyLoader{}, false
}

// PlotlyJSVersion is the version in plotly.js's license header ("plotly.js v2.6.3"),
// or "".
func PlotlyJSVersion(lib []byte) string {
	if m := plotlyHeader.FindSubmatch(lib[:min(len(lib), 256)]); m != nil {
		return string(m[1])
	}
	return ""
}

// CDNPlotlyJS is plotly.js's URL on the public CDN for a version.
func CDNPlotlyJS(version string) string {
	return "https://cdn.plot.ly/plotly-" + version + ".min.js"
}

// SetPlotlyJS rewrites a plotly page so it loads plotly.js from src, and renews its
// Content-Security-Policy to match: the page's own inline scripts by hash (an inline
// plotly.js among them), plus 'self' for a local file or the URL's origin and path for
// a URL; nothing else may load or connect. A page without a plotly.js loader is
// returned unchanged with ok false.
func SetPlotlyJS(page []byte, src PlotlyJSSource) (out []byte, ok bool, err error) {
	l, found := FindPlotlyJS(page)
	if !found {
		return page, false, nil
	}
	var elem, csp string
	switch {
	case src.Inline != nil && src.File == "" && src.URL == "":
		if scriptClose.Match(src.Inline) {
			return nil, false, errors.New("artifacts: this plotly.js contains </script and cannot be inlined; use a local file or a URL")
		}
		elem = `<script type="text/javascript">` + string(src.Inline) + `</script>`
	case src.File != "" && src.Inline == nil && src.URL == "":
		if strings.ContainsAny(src.File, `/\"'<>&`) || CheckName(src.File) != nil {
			return nil, false, fmt.Errorf("artifacts: plotly.js file name %q must be a plain file name beside the page", src.File)
		}
		// 'self' is the page's own origin: the directory it was opened from (Chromium
		// matches file: siblings) or the server that serves it.
		elem, csp = `<script src="`+src.File+`" charset="utf-8"></script>`, "'self'"
	case src.URL != "" && src.Inline == nil && src.File == "":
		if csp, err = plotlyCSPSource(src.URL); err != nil || csp == "" {
			return nil, false, fmt.Errorf("artifacts: plotly.js URL %q must be an absolute http(s) URL", src.URL)
		}
		elem = `<script src="` + html.EscapeString(src.URL) + `" charset="utf-8"></script>`
	default:
		return nil, false, errors.New("artifacts: set exactly one of a plotly.js source's Inline, File and URL")
	}
	rewritten := make([]byte, 0, len(page)-(l.end-l.start)+len(elem))
	rewritten = append(rewritten, page[:l.start]...)
	rewritten = append(rewritten, elem...)
	rewritten = append(rewritten, page[l.end:]...)
	return withCSP(cspMeta.ReplaceAll(rewritten, nil), csp), true, nil
}

// LocalPlotlyJSPaths are where a local plotly installation keeps plotly.js: Debian's
// python3-plotly, then pip's plotly (system, /usr/local, the user's site-packages).
func LocalPlotlyJSPaths() []string {
	paths := []string{"/usr/share/python3-plotly/plotly.js", "/usr/lib/python3/dist-packages/plotly/package_data/plotly.min.js"}
	patterns := []string{
		"/usr/lib/python3*/*-packages/plotly/package_data/plotly.min.js",
		"/usr/local/lib/python3*/*-packages/plotly/package_data/plotly.min.js",
	}
	if home, err := os.UserHomeDir(); err == nil {
		patterns = append(patterns, filepath.Join(home, ".local/lib/python3*/site-packages/plotly/package_data/plotly.min.js"))
	}
	for _, p := range patterns {
		m, _ := filepath.Glob(p)
		paths = append(paths, m...)
	}
	return paths
}

// ReadLocalPlotlyJS reads plotly.js from file, or when file is empty from the first of
// LocalPlotlyJSPaths that exists. It returns the data and the path read.
func ReadLocalPlotlyJS(file string) ([]byte, string, error) {
	candidates := []string{file}
	if file == "" {
		candidates = LocalPlotlyJSPaths()
	}
	for _, p := range candidates {
		data, err := os.ReadFile(p)
		if err != nil {
			if file != "" || !errors.Is(err, os.ErrNotExist) {
				return nil, p, fmt.Errorf("reading plotly.js: %w", err)
			}
			continue
		}
		if len(data) == 0 {
			return nil, p, fmt.Errorf("plotly.js at %s is empty", p)
		}
		return data, p, nil
	}
	return nil, "", fmt.Errorf("no local plotly.js found (looked for %s): install Debian's python3-plotly or pip's plotly, or name the file", strings.Join(LocalPlotlyJSPaths()[:2], ", "))
}

// LocalizePlotly points every plotly page among files at PlotlyJSFile, written beside
// them, and appends that file (lib) once: the pages then display with no network.
// Pages are changed in copies; files without a plotly.js loader pass unchanged.
func LocalizePlotly(files []File, lib []byte) ([]File, error) {
	out := make([]File, 0, len(files)+1)
	localized := false
	for _, f := range files {
		if strings.HasSuffix(f.Name, "."+FormatHTML) {
			page, ok, err := SetPlotlyJS(f.Data, PlotlyJSSource{File: PlotlyJSFile})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			if ok {
				f.Data, localized = page, true
			}
		}
		out = append(out, f)
	}
	if localized {
		out = append(out, File{Name: PlotlyJSFile, Data: lib})
	}
	return out, nil
}
