// Package artifacts turns the files a sandbox job produced into artifacts that are safe
// to store and display: each is checked or sanitized for its format, named safely,
// sized and hashed, capped in number and bytes, and placed in the request's status or in
// a ConfigMap.
//
// Displays, and what each format must be safe for:
//   - png: shown in <img>. Must really be a PNG (signature, IHDR, chunk CRCs, IEND);
//     anything else claiming to be PNG is dropped.
//   - svg: inlined in a page. Parsed as XML and rebuilt from an allow-list (svg.go),
//     so no script, event handler, foreignObject or external reference survives.
//   - png: also bounded in pixels, per image and per call, and in how far its image
//     data may inflate (decompression bombs).
//   - svg: ids prefixed per artifact and <style> rules scoped to the image, so inlined
//     charts neither collide nor restyle the page.
//   - html: plotly pages, which are all script. Kept as written behind a
//     Content-Security-Policy meta element (only the configured plotly.js and the page's
//     own inline scripts may run, nothing may be fetched), and labelled for display only
//     in a sandboxed iframe (see docs/artifacts.md for why this is safe).
//   - json (plotly figure JSON), csv, txt: data. Checked to be what they claim (valid
//     JSON, UTF-8 text without NUL bytes) and capped; plotly JSON loses any __proto__,
//     constructor and prototype keys.
//
// Everything else is dropped with a warning.
package artifacts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Format names an artifact's format; it is also the file extension we give it.
const (
	FormatPNG    = "png"
	FormatSVG    = "svg"
	FormatHTML   = "html"
	FormatJSON   = "json"
	FormatCSV    = "csv"
	FormatText   = "txt"
	FormatPlotly = "plotly.json" // plotly figure JSON
)

// MIME types written on artifacts.
const (
	MIMEPNG    = "image/png"
	MIMESVG    = "image/svg+xml"
	MIMEHTML   = "text/html; charset=utf-8"
	MIMEPlotly = "application/vnd.plotly.v1+json"
	MIMEJSON   = "application/json"
	MIMECSV    = "text/csv; charset=utf-8"
	MIMEText   = "text/plain; charset=utf-8"
)

// HTMLNote labels every HTML artifact.
const HTMLNote = "display only in a sandboxed iframe (sandbox=\"allow-scripts\", never allow-same-origin): the page runs the chart's JavaScript"

// Artifact is one prepared artifact.
type Artifact struct {
	// Name is safe as a file name and a ConfigMap key: [-._a-zA-Z0-9], no leading dot,
	// at most MaxNameLen bytes, unique within one Prepare result, ending in the
	// format's extension.
	Name string
	// Format is one of png, svg, html, json, plotly.json, csv, txt.
	Format string
	// MIMEType is the type to serve the data with.
	MIMEType string
	// Data is the (sanitized) content.
	Data []byte
	// SizeBytes is len(Data).
	SizeBytes int64
	// SHA256 is the hex SHA-256 of Data.
	SHA256 string
	// Note tells a display how to show the artifact (set for HTML), or what was changed.
	Note string
}

// Limits caps what Prepare keeps.
type Limits struct {
	// MaxCount is the most artifacts kept.
	MaxCount int
	// MaxTotalBytes caps the sum of the kept artifacts' sizes.
	MaxTotalBytes int64
	// MaxFileBytes caps each file, before and after sanitizing.
	MaxFileBytes int64
	// MaxPNGPixels caps one PNG's width×height, MaxTotalPNGPixels the PNGs of one call
	// together, and MaxPNGRatio the ratio of a PNG's decoded scanlines to its compressed
	// image data. Zero means DefaultMaxPNGPixels, DefaultMaxTotalPNGPixels and
	// DefaultMaxPNGRatio.
	MaxPNGPixels, MaxTotalPNGPixels, MaxPNGRatio int64
	// PlotlyJSURL is where plotly HTML may load plotly.js from: the pool's plotlyJSURL.
	// Empty means the public CDN (https://cdn.plot.ly/); "inline" means nowhere (the
	// page embeds it). It goes into each HTML artifact's Content-Security-Policy.
	PlotlyJSURL string
}

// DefaultLimits protect the operator's memory and CPU (an SVG is parsed in memory).
// They are looser than what storage holds on purpose: an artifact that is too large to
// store should reach Place, which fails with an actionable ArtifactTooLarge message,
// rather than vanish here with only a warning.
func DefaultLimits() Limits {
	return Limits{MaxCount: 16, MaxTotalBytes: 16 << 20, MaxFileBytes: 8 << 20}
}

// MaxNameLen bounds artifact names (ConfigMap keys allow 253).
const MaxNameLen = 100

// rank orders formats in the result and decides who is kept first under the caps:
// figures before data.
var rank = map[string]int{FormatPNG: 0, FormatSVG: 1, FormatHTML: 2, FormatPlotly: 3, FormatJSON: 4, FormatCSV: 5, FormatText: 6}

// Prepare checks, sanitizes, names, sizes and hashes files. It never passes through a
// file that fails its format's check; such files, unknown types and files over the caps
// are dropped, each with a warning saying why. The result is in a deterministic order
// (figures first, then by name) whatever the order of files. The error is reserved for
// invalid limits.
func Prepare(files []sandbox.Artifact, limits Limits) ([]Artifact, []string, error) {
	if limits.MaxCount <= 0 || limits.MaxTotalBytes <= 0 || limits.MaxFileBytes <= 0 {
		return nil, nil, fmt.Errorf("artifacts: limits must be positive, got %+v", limits)
	}
	var warnings []string
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
	maxPixels, maxTotalPixels, maxRatio := limits.MaxPNGPixels, limits.MaxTotalPNGPixels, limits.MaxPNGRatio
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPNGPixels
	}
	if maxTotalPixels <= 0 {
		maxTotalPixels = DefaultMaxTotalPNGPixels
	}
	if maxRatio <= 0 {
		maxRatio = DefaultMaxPNGRatio
	}
	var totalPixels int64
	csp, err := plotlyCSPSource(limits.PlotlyJSURL)
	if err != nil {
		return nil, nil, err
	}

	// Work on a copy sorted by (name, content) so names, dedup and caps do not depend
	// on the order the sandbox listed its files in.
	in := make([]sandbox.Artifact, len(files))
	copy(in, files)
	sort.SliceStable(in, func(i, j int) bool {
		if in[i].Name != in[j].Name {
			return in[i].Name < in[j].Name
		}
		if in[i].MIMEType != in[j].MIMEType {
			return in[i].MIMEType < in[j].MIMEType
		}
		return bytes.Compare(in[i].Data, in[j].Data) < 0
	})

	var out []Artifact
	for _, f := range in {
		label := quoteName(f.Name)
		if int64(len(f.Data)) > limits.MaxFileBytes {
			warn("dropped %s: it is %s, over the %s per-file limit", label, humanBytes(int64(len(f.Data))), humanBytes(limits.MaxFileBytes))
			continue
		}
		format, err := classify(f.Name, f.MIMEType)
		if err != nil {
			warn("dropped %s: %v", label, err)
			continue
		}
		a := Artifact{Format: format}
		switch format {
		case FormatPNG:
			clean, trimmed, info, err := inspectPNG(f.Data)
			if err != nil {
				warn("dropped %s: claims to be PNG but is not a valid PNG (%v)", label, err)
				continue
			}
			if err := pngWithinLimits(info, maxPixels, maxRatio); err != nil {
				warn("dropped %s: %v", label, err)
				continue
			}
			if totalPixels+info.pixels() > maxTotalPixels {
				warn("dropped %s: its %d pixels would bring this request's PNGs over %d pixels in total", label, info.pixels(), maxTotalPixels)
				continue
			}
			totalPixels += info.pixels()
			if trimmed {
				warn("%s: removed %d bytes after the PNG's end", label, len(f.Data)-len(clean))
				a.Note = "bytes after the PNG's IEND chunk were removed"
			}
			a.Data, a.MIMEType = clean, MIMEPNG
		case FormatSVG:
			clean, removed, err := sanitizeSVGScoped(f.Data, svgPrefix(f))
			if err != nil {
				warn("dropped %s: not a safe SVG (%v)", label, err)
				continue
			}
			if len(removed) > 0 {
				warn("%s: removed unsafe or unsupported SVG content: %s", label, strings.Join(removed, ", "))
				a.Note = "sanitized: removed " + strings.Join(removed, ", ")
			}
			a.Data, a.MIMEType = clean, MIMESVG
		case FormatHTML:
			if err := checkText(f.Data); err != nil {
				warn("dropped %s: HTML %v", label, err)
				continue
			}
			a.Data, a.MIMEType, a.Note = withCSP(f.Data, csp), MIMEHTML, HTMLNote
		case FormatJSON, FormatPlotly:
			if !json.Valid(f.Data) {
				warn("dropped %s: not valid JSON", label)
				continue
			}
			a.Data, a.MIMEType = f.Data, MIMEJSON
			if format == FormatPlotly {
				a.MIMEType = MIMEPlotly
				clean, removed, err := sanitizePlotlyJSON(f.Data)
				if err != nil {
					warn("dropped %s: %v", label, err)
					continue
				}
				if removed > 0 {
					warn("%s: removed %d __proto__, constructor or prototype keys", label, removed)
					a.Note = "sanitized: removed __proto__, constructor and prototype keys"
				}
				a.Data = clean
			}
		case FormatCSV, FormatText:
			if err := checkText(f.Data); err != nil {
				warn("dropped %s: %v", label, err)
				continue
			}
			a.Data, a.MIMEType = f.Data, MIMECSV
			if format == FormatText {
				a.MIMEType = MIMEText
			}
		}
		if int64(len(a.Data)) > limits.MaxFileBytes {
			warn("dropped %s: after sanitizing it is %s, over the %s per-file limit", label, humanBytes(int64(len(a.Data))), humanBytes(limits.MaxFileBytes))
			continue
		}
		a.Name = SafeName(f.Name, format)
		a.SizeBytes = int64(len(a.Data))
		sum := sha256.Sum256(a.Data)
		a.SHA256 = hex.EncodeToString(sum[:])
		out = append(out, a)
	}

	uniqueNames(out)
	sort.SliceStable(out, func(i, j int) bool {
		if rank[out[i].Format] != rank[out[j].Format] {
			return rank[out[i].Format] < rank[out[j].Format]
		}
		return out[i].Name < out[j].Name
	})

	// Caps, in priority order: a file that does not fit the total is skipped and
	// smaller later ones may still fit.
	kept := out[:0]
	var total int64
	for _, a := range out {
		switch {
		case len(kept) >= limits.MaxCount:
			warn("dropped %s: more than %d artifacts", quoteName(a.Name), limits.MaxCount)
		case total+a.SizeBytes > limits.MaxTotalBytes:
			warn("dropped %s (%s): the artifacts would total more than %s", quoteName(a.Name), humanBytes(a.SizeBytes), humanBytes(limits.MaxTotalBytes))
		default:
			total += a.SizeBytes
			kept = append(kept, a)
		}
	}
	return kept, warnings, nil
}

// classify decides the format from the MIME type and the name's extension. When both
// say something, they must agree: a file named chart.svg sent as text/html is refused
// rather than guessed.
func classify(name, mimeType string) (string, error) {
	byExt := ""
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".plotly.json"):
		byExt = FormatPlotly
	default:
		switch path.Ext(strings.ReplaceAll(lower, `\`, "/")) {
		case ".png":
			byExt = FormatPNG
		case ".svg":
			byExt = FormatSVG
		case ".html", ".htm":
			byExt = FormatHTML
		case ".json":
			byExt = FormatJSON
		case ".csv":
			byExt = FormatCSV
		case ".txt":
			byExt = FormatText
		}
	}
	byMIME := ""
	mt, _, err := mime.ParseMediaType(mimeType)
	if mimeType != "" && err != nil {
		return "", fmt.Errorf("unparseable MIME type %q", mimeType)
	}
	switch mt {
	case "image/png":
		byMIME = FormatPNG
	case "image/svg+xml":
		byMIME = FormatSVG
	case "text/html":
		byMIME = FormatHTML
	case "application/vnd.plotly.v1+json":
		byMIME = FormatPlotly
	case "application/json":
		byMIME = FormatJSON
	case "text/csv":
		byMIME = FormatCSV
	case "text/plain":
		byMIME = FormatText
	case "", "application/octet-stream":
	default:
		return "", fmt.Errorf("unsupported type %q", mimeType)
	}
	switch {
	case byMIME == "" && byExt == "":
		return "", fmt.Errorf("unknown type (MIME %q, no known extension); only png, svg, html, json, csv and txt are kept", mimeType)
	case byMIME == "":
		return byExt, nil
	case byExt == "":
		return byMIME, nil
	case byMIME == byExt:
		return byMIME, nil
	case byMIME == FormatPlotly && byExt == FormatJSON, byMIME == FormatJSON && byExt == FormatPlotly:
		return FormatPlotly, nil
	case byMIME == FormatText && (byExt == FormatCSV):
		return byExt, nil
	default:
		return "", fmt.Errorf("its name says %s but its MIME type %q says %s", byExt, mimeType, byMIME)
	}
}

func checkText(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("is not valid UTF-8")
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return fmt.Errorf("contains NUL bytes (binary)")
	}
	return nil
}

// SafeName turns an untrusted file name into a safe artifact name for format: the base
// name only (no directories, no '..'), characters outside [-._a-zA-Z0-9] replaced by
// '_', no leading dot, at most MaxNameLen bytes, ending in the format's extension.
func SafeName(name, format string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	ext := "." + format
	if strings.HasSuffix(strings.ToLower(name), ext) {
		name = name[:len(name)-len(ext)]
	} else if format == FormatPlotly && strings.HasSuffix(strings.ToLower(name), ".json") {
		name = name[:len(name)-len(".json")]
	} else if format == FormatHTML && strings.HasSuffix(strings.ToLower(name), ".htm") {
		name = name[:len(name)-len(".htm")]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == '.':
			b.WriteByte('.')
		default:
			b.WriteByte('_')
		}
	}
	stem := b.String()
	for strings.Contains(stem, "..") {
		stem = strings.ReplaceAll(stem, "..", "_")
	}
	stem = strings.Trim(stem, ".")
	if stem == "" || strings.Trim(stem, "_") == "" {
		stem = "artifact"
	}
	if limit := MaxNameLen - len(ext) - len("-99"); len(stem) > limit {
		stem = stem[:limit]
	}
	return stem + ext
}

// uniqueNames renames duplicates name-2, name-3, ... in slice order.
func uniqueNames(arts []Artifact) {
	seen := map[string]bool{}
	for _, a := range arts {
		seen[a.Name] = true
	}
	used := map[string]bool{}
	for i := range arts {
		if !used[arts[i].Name] {
			used[arts[i].Name] = true
			continue
		}
		ext := "." + arts[i].Format
		stem := strings.TrimSuffix(arts[i].Name, ext)
		for n := 2; ; n++ {
			suffix := fmt.Sprintf("-%d%s", n, ext)
			s := stem
			if len(s)+len(suffix) > MaxNameLen {
				s = s[:MaxNameLen-len(suffix)]
			}
			cand := s + suffix
			if !used[cand] && !seen[cand] {
				arts[i].Name = cand
				used[cand] = true
				break
			}
		}
	}
}

func quoteName(name string) string {
	if len(name) > 120 {
		name = name[:120] + "..."
	}
	return fmt.Sprintf("%q", name)
}

// humanBytes formats n as "812 B", "12.5 KiB", "1.4 MiB"; whole values drop the ".0".
func humanBytes(n int64) string {
	f := func(v float64, unit string) string {
		s := fmt.Sprintf("%.1f", v)
		s = strings.TrimSuffix(s, ".0")
		return s + " " + unit
	}
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return f(float64(n)/(1<<10), "KiB")
	default:
		return f(float64(n)/(1<<20), "MiB")
	}
}
