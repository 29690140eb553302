package artifacts

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Plotly figure JSON is data that a page may parse and merge into its own objects:
// keys that name an object's prototype chain turn such a merge into prototype pollution.
var pollutingKeys = map[string]bool{"__proto__": true, "constructor": true, "prototype": true}

// sanitizePlotlyJSON removes __proto__, constructor and prototype keys at every depth.
// The document is decoded (numbers kept as written) and encoded again, which also
// escapes <, > and & so the JSON is safe inside a <script> element.
func sanitizePlotlyJSON(data []byte) ([]byte, int, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, 0, fmt.Errorf("not valid JSON: %w", err)
	}
	removed := 0
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				if pollutingKeys[k] {
					delete(t, k)
					removed++
					continue
				}
				walk(c)
			}
		case []any:
			for _, c := range t {
				walk(c)
			}
		}
	}
	walk(v)
	if removed == 0 {
		return data, 0, nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, 0, err
	}
	return out, removed, nil
}

// defaultPlotlySource is where plotly.py's HTML loads plotly.js from when the pool
// sets no plotlyJSURL.
const defaultPlotlySource = "https://cdn.plot.ly/"

// plotlyCSPSource is the CSP source expression for the configured plotly.js: "" for
// inline (no external script at all), else the URL without query or fragment.
func plotlyCSPSource(setting string) (string, error) {
	switch setting {
	case "":
		return defaultPlotlySource, nil
	case "inline":
		return "", nil
	}
	u, err := url.Parse(setting)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("artifacts: plotly.js URL %q must be an absolute http(s) URL or \"inline\"", setting)
	}
	u.RawQuery, u.Fragment = "", ""
	src := u.String()
	if strings.ContainsAny(src, " ;,'\"") {
		return "", fmt.Errorf("artifacts: plotly.js URL %q cannot appear in a Content-Security-Policy", setting)
	}
	return src, nil
}

var (
	scriptOpen  = regexp.MustCompile(`(?is)<script\b([^>]*)>`)
	scriptClose = regexp.MustCompile(`(?i)</script`)
	srcAttr     = regexp.MustCompile(`(?i)\ssrc\s*=`)
	doctype     = regexp.MustCompile(`(?is)^\s*<!doctype[^>]*>`)
)

// withCSP puts a Content-Security-Policy meta element at the top of a plotly page. It
// allows scripts only from src (the configured plotly.js) and the inline scripts the
// page holds now, by hash; event-handler attributes, javascript: URLs, other script
// origins and every kind of network request (fetch, images, fonts, frames, forms) are
// refused. Styles stay inline-only: plotly sets them from script. The meta goes first,
// before anything a browser could run.
func withCSP(page []byte, src string) []byte {
	var hashes []string
	seen := map[string]bool{}
	rest := page
	for {
		m := scriptOpen.FindSubmatchIndex(rest)
		if m == nil {
			break
		}
		body := rest[m[1]:]
		end := scriptClose.FindIndex(body)
		if end == nil {
			break
		}
		if !srcAttr.Match(rest[m[2]:m[3]]) {
			sum := sha256.Sum256(body[:end[0]])
			h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
			if !seen[h] {
				seen[h] = true
				hashes = append(hashes, h)
			}
		}
		rest = body[end[1]:]
	}
	scripts := strings.Join(hashes, " ")
	if src != "" {
		scripts = strings.TrimSpace(scripts + " " + src)
	}
	if scripts == "" {
		scripts = "'none'"
	}
	policy := "default-src 'none'; script-src " + scripts + "; style-src 'unsafe-inline'; img-src data: blob:; font-src data:; " +
		"connect-src 'none'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
	meta := []byte(`<meta http-equiv="Content-Security-Policy" content="` + policy + `">`)
	at := 0
	if m := doctype.FindIndex(page); m != nil {
		at = m[1]
	}
	out := make([]byte, 0, len(page)+len(meta))
	out = append(out, page[:at]...)
	out = append(out, meta...)
	return append(out, page[at:]...)
}
