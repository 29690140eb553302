// Package plotlyjs finds the plotly.js that ships with the local plotly installation
// and serves it, so interactive charts display where the public CDN is out of reach
// (air-gapped and self-hosted clusters, a laptop offline).
//
// Debian's python3-plotly carries it at /usr/share/python3-plotly/plotly.js; a pip
// installation carries plotly/package_data/plotly.min.js. The manager's image and the
// sandbox image both have Debian's package, so the manager can serve the same version
// its sandboxes' HTML was written for.
package plotlyjs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"time"
)

// DefaultPaths are where plotly.js is looked for, in order.
var DefaultPaths = []string{
	"/usr/share/python3-plotly/plotly.js",
	"/usr/lib/python3/dist-packages/plotly/package_data/plotly.min.js",
	"/usr/local/lib/python3/dist-packages/plotly/package_data/plotly.min.js",
}

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

// ErrNotFound says no plotly.js was found; its message names where it looked.
var ErrNotFound = errors.New("plotly.js not found")

// versionPattern finds the version plotly.js declares near its start: its banner
// ("plotly.js v2.6.3") or its exported version field (version:"2.6.3").
var versionPattern = regexp.MustCompile(`(?:plotly\.js v|version\s*:\s*["'])(\d+\.\d+\.\d+)`)

// Load reads the first of paths that exists (DefaultPaths when none are given).
func Load(paths ...string) (*Bundle, error) {
	if len(paths) == 0 {
		paths = DefaultPaths
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("plotly.js: %w", err)
		}
		return newBundle(p, data)
	}
	return nil, fmt.Errorf("%w: looked in %s; install plotly (Debian: python3-plotly) or name the file", ErrNotFound, strings.Join(paths, ", "))
}

func newBundle(p string, data []byte) (*Bundle, error) {
	if len(data) < 1024 || !bytes.Contains(data[:min(len(data), 1<<20)], []byte("plotly")) {
		return nil, fmt.Errorf("plotly.js: %s does not look like plotly.js (%d bytes)", p, len(data))
	}
	sum := sha256.Sum256(data)
	b := &Bundle{Path: p, Data: data, ETag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	if m := versionPattern.FindSubmatch(data[:min(len(data), 64<<10)]); m != nil {
		b.Version = string(m[1])
	}
	if fi, err := os.Stat(p); err == nil {
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
