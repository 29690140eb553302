// Package plotlyjs finds the plotly.js that ships with the local plotly installation
// and serves it, so interactive charts display where the public CDN is out of reach
// (air-gapped and self-hosted clusters, a laptop offline).
//
// The manager's image and the sandbox image both carry Debian's python3-plotly, so the
// manager serves the same version its sandboxes' HTML was written for.
package plotlyjs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path"
	"time"

	"github.com/vizops/viz-operator/internal/artifacts"
)

// Bundle is one plotly.js file held in memory.
type Bundle struct {
	// Path is where it was read from.
	Path string
	// Version is plotly.js's own version ("2.6.3"), read from the file's header.
	Version string
	// Data is the script.
	Data []byte
	// ETag is a strong validator of Data.
	ETag string
	// ModTime is the file's modification time.
	ModTime time.Time
}

// Load reads plotly.js from file, or when file is empty from the local plotly
// installation (artifacts.LocalPlotlyJSPaths: Debian's python3-plotly, then pip's).
func Load(file string) (*Bundle, error) {
	data, path, err := artifacts.ReadLocalPlotlyJS(file)
	if err != nil {
		return nil, err
	}
	if len(data) < 1024 || !bytes.Contains(data[:min(len(data), 1<<20)], []byte("plotly")) {
		return nil, fmt.Errorf("plotly.js: %s does not look like plotly.js (%d bytes)", path, len(data))
	}
	sum := sha256.Sum256(data)
	b := &Bundle{Path: path, Data: data, ETag: `"` + hex.EncodeToString(sum[:16]) + `"`, Version: artifacts.PlotlyJSVersion(data)}
	if fi, err := os.Stat(path); err == nil {
		b.ModTime = fi.ModTime()
	}
	return b, nil
}

// FileName is the name the bundle is served and written under: versioned when the
// version is known, so a long cache lifetime is safe.
func (b *Bundle) FileName() string {
	if b.Version == "" {
		return "plotly.min.js"
	}
	return "plotly-" + b.Version + ".min.js"
}

// Handler serves the bundle at /<FileName> with a year-long immutable cache (the name
// carries the version) and at /plotly.min.js with revalidation (its content changes
// when the image does). Both answer conditional requests by ETag.
func (b *Bundle) Handler() http.Handler {
	versioned := "/" + b.FileName()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch path.Clean(r.URL.Path) {
		case versioned:
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		case "/plotly.min.js", "/plotly.js":
			w.Header().Set("Cache-Control", "public, max-age=300, must-revalidate")
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("ETag", b.ETag)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		// Pages of any origin load it with <script src>; CORS lets them use SRI too.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		http.ServeContent(w, r, b.FileName(), b.ModTime, bytes.NewReader(b.Data))
	})
}

// Serve serves Handler on addr until ctx ends.
func (b *Bundle) Serve(ctx context.Context, addr string) error {
	srv := &http.Server{Addr: addr, Handler: b.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("plotly.js server on %s: %w", addr, err)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}
