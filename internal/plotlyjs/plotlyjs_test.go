package plotlyjs

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vizops/viz-operator/internal/artifacts"
)

func fakeBundle(t *testing.T, banner string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plotly.js")
	body := banner + "\n(function(){/* plotly */})();" + strings.Repeat(" ", 2048)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	good := fakeBundle(t, "/**\n* plotly.js v2.6.3\n*/")
	noVersion := fakeBundle(t, "/* a plotly build */")
	tiny := filepath.Join(t.TempDir(), "tiny.js")
	if err := os.WriteFile(tiny, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.js")
	tests := map[string]struct {
		file     string
		wantName string
		errText  string
	}{
		"versioned":               {file: good, wantName: "plotly-2.6.3.min.js"},
		"no version: unversioned": {file: noVersion, wantName: "plotly.min.js"},
		"missing file":            {file: missing, errText: missing},
		"not plotly.js":           {file: tiny, errText: "does not look like plotly.js"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := Load(tc.file)
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("Load: error %v, want one naming %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Path != tc.file || b.FileName() != tc.wantName {
				t.Errorf("got %s as %s, want %s as %s", b.Path, b.FileName(), tc.file, tc.wantName)
			}
		})
	}
}

func TestHandler(t *testing.T) {
	b, err := Load(fakeBundle(t, "/**\n* plotly.js v2.6.3\n*/"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	tests := map[string]struct {
		method, path, ifNoneMatch string
		wantCode                  int
		wantCache                 string
		wantBody                  bool
	}{
		"versioned: immutable":       {method: "GET", path: "/plotly-2.6.3.min.js", wantCode: 200, wantCache: "immutable", wantBody: true},
		"unversioned: revalidated":   {method: "GET", path: "/plotly.min.js", wantCode: 200, wantCache: "must-revalidate", wantBody: true},
		"conditional: not modified":  {method: "GET", path: "/plotly-2.6.3.min.js", ifNoneMatch: b.ETag, wantCode: 304, wantCache: "immutable"},
		"stale etag: full answer":    {method: "GET", path: "/plotly-2.6.3.min.js", ifNoneMatch: `"other"`, wantCode: 200, wantCache: "immutable", wantBody: true},
		"head":                       {method: "HEAD", path: "/plotly.min.js", wantCode: 200, wantCache: "must-revalidate"},
		"another version: not found": {method: "GET", path: "/plotly-1.0.0.min.js", wantCode: 404},
		"traversal: not found":       {method: "GET", path: "/../../etc/passwd", wantCode: 404},
		"post: method not allowed":   {method: "POST", path: "/plotly.min.js", wantCode: 405},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.ifNoneMatch != "" {
				req.Header.Set("If-None-Match", tc.ifNoneMatch)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantCode)
			}
			if got := resp.Header.Get("Cache-Control"); !strings.Contains(got, tc.wantCache) {
				t.Errorf("Cache-Control %q, want it to contain %q", got, tc.wantCache)
			}
			if tc.wantCode != 200 {
				return
			}
			if got := resp.Header.Get("ETag"); got != b.ETag {
				t.Errorf("ETag %q, want %q", got, b.ETag)
			}
			if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/javascript") {
				t.Errorf("Content-Type %q", got)
			}
			body := make([]byte, len(b.Data)+1)
			n, _ := resp.Body.Read(body)
			for n < len(b.Data) {
				m, err := resp.Body.Read(body[n:])
				n += m
				if err != nil {
					break
				}
			}
			if tc.wantBody != (n == len(b.Data)) {
				t.Errorf("read %d bytes of %d", n, len(b.Data))
			}
		})
	}
}

// The real file, where the machine has Debian's python3-plotly.
func TestLoadInstalled(t *testing.T) {
	if _, err := os.Stat(artifacts.LocalPlotlyJSPaths()[0]); err != nil {
		t.Skip("no Debian python3-plotly here")
	}
	b, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if b.Version == "" {
		t.Errorf("%s: no version read from its header", b.Path)
	}
}
