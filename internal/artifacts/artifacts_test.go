package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image/color"
	"math/rand"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// art is the Artifact Prepare should return for data.
func art(name, format, mimeType, data, note string) Artifact {
	sum := sha256.Sum256([]byte(data))
	return Artifact{Name: name, Format: format, MIMEType: mimeType, Data: []byte(data),
		SizeBytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Note: note}
}

func TestPrepare(t *testing.T) {
	pngData := string(makePNG(t, 4, 4, color.RGBA{31, 119, 180, 255}))
	bigPNG := string(makePNG(t, 300, 300, color.RGBA{1, 2, 3, 255})) // ~1 KiB compressed
	const svgIn = `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(1)</script><path d="M 0 0"/></svg>`
	// Every prepared SVG's root carries its artifact's id prefix (svg_test.go checks
	// the scoping itself).
	rootID := func(name, data string) string {
		return ` id="` + strings.TrimSuffix(svgPrefix(sandbox.Artifact{Name: name, Data: []byte(data)}), "-") + `"`
	}
	svgOut := svgOpen + rootID("chart.svg", svgIn) + `><path d="M 0 0"/></svg>`
	const html = "<html><body><script src=\"https://cdn.plot.ly/plotly-2.35.2.min.js\"></script><div class=\"plotly-graph-div\"></div></body></html>"
	const htmlOut = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src https://cdn.plot.ly/; style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'">` + html
	const plotly = `{"data":[{"type":"bar","x":["a"],"y":[1]}],"layout":{}}`
	def := DefaultLimits()

	tests := map[string]struct {
		files        []sandbox.Artifact
		limits       Limits
		want         []Artifact
		wantWarnings []string
		wantErr      bool
	}{
		"nothing": {limits: def},
		"every kept format, figures first then by name": {
			limits: def,
			files: []sandbox.Artifact{
				{Name: "out/table.csv", MIMEType: "text/csv", Data: []byte("a,b\n1,2\n")},
				{Name: "notes.txt", Data: []byte("hello\n")},
				{Name: "figure.json", MIMEType: "application/vnd.plotly.v1+json", Data: []byte(plotly)},
				{Name: "stats.json", Data: []byte(`{"n": 3}`)},
				{Name: "chart.html", MIMEType: "text/html", Data: []byte(html)},
				{Name: "chart.svg", MIMEType: "image/svg+xml", Data: []byte(svgIn)},
				{Name: "chart.png", MIMEType: "image/png", Data: []byte(pngData)},
			},
			want: []Artifact{
				art("chart.png", "png", "image/png", pngData, ""),
				art("chart.svg", "svg", "image/svg+xml", svgOut, "sanitized: removed <script>, onload"),
				art("chart.html", "html", "text/html; charset=utf-8", htmlOut, HTMLNote),
				art("figure.plotly.json", "plotly.json", "application/vnd.plotly.v1+json", plotly, ""),
				art("stats.json", "json", "application/json", `{"n": 3}`, ""),
				art("table.csv", "csv", "text/csv; charset=utf-8", "a,b\n1,2\n", ""),
				art("notes.txt", "txt", "text/plain; charset=utf-8", "hello\n", ""),
			},
			wantWarnings: []string{`"chart.svg": removed unsafe or unsupported SVG content: <script>, onload`},
		},
		"PNG without a signature is dropped, never passed through": {
			limits: def,
			files: []sandbox.Artifact{
				{Name: "chart.png", MIMEType: "image/png", Data: []byte("<html><script>alert(1)</script></html>")},
				{Name: "trunc.png", MIMEType: "image/png", Data: []byte(pngData[:30])},
			},
			wantWarnings: []string{
				`dropped "chart.png": claims to be PNG but is not a valid PNG (no PNG signature)`,
				`dropped "trunc.png": claims to be PNG but is not a valid PNG (truncated: chunk 0 claims 13 bytes, 10 remain)`,
			},
		},
		"bytes after IEND are removed": {
			limits: def,
			files:  []sandbox.Artifact{{Name: "a.png", Data: []byte(pngData + "<svg onload=alert(1)>")}},
			want:   []Artifact{art("a.png", "png", "image/png", pngData, "bytes after the PNG's IEND chunk were removed")},
			wantWarnings: []string{
				`"a.png": removed 21 bytes after the PNG's end`,
			},
		},
		"script-injected SVG cannot pass as SVG": {
			limits: def,
			files: []sandbox.Artifact{
				{Name: "x.svg", MIMEType: "image/svg+xml", Data: []byte(`<html><svg onload="alert(1)"></svg></html>`)},
				{Name: "y.svg", Data: []byte(`<svg onload="alert(1)"><script>alert(1)</script></svg>`)},
				{Name: "z.svg", MIMEType: "text/html", Data: []byte(`<svg onload="alert(1)"/>`)},
				{Name: "w.png", MIMEType: "image/svg+xml", Data: []byte(pngData)},
			},
			want: []Artifact{art("y.svg", "svg", "image/svg+xml", svgOpen+rootID("y.svg", `<svg onload="alert(1)"><script>alert(1)</script></svg>`)+`/>`, "sanitized: removed <script>, onload")},
			wantWarnings: []string{
				`dropped "w.png": its name says png but its MIME type "image/svg+xml" says svg`,
				`dropped "x.svg": not a safe SVG (root element is <html>, not <svg>)`,
				`"y.svg": removed unsafe or unsupported SVG content: <script>, onload`,
				`dropped "z.svg": its name says svg but its MIME type "text/html" says html`,
			},
		},
		"SVG bombs and bad encodings are dropped": {
			limits: def,
			files: []sandbox.Artifact{
				{Name: "laughs.svg", Data: []byte(`<!DOCTYPE svg [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>`)},
				{Name: "latin1.svg", Data: []byte("<svg xmlns=\"http://www.w3.org/2000/svg\"><text>caf\xe9</text></svg>")},
				{Name: "use.svg", Data: []byte(useBomb(7))},
			},
			wantWarnings: []string{
				`dropped "latin1.svg": not a safe SVG (not valid UTF-8)`,
				`dropped "laughs.svg": not a safe SVG (not well-formed XML: XML syntax error on line 1: invalid character entity &b;)`,
				`dropped "use.svg": not a safe SVG (<use> references expand to more than 1000000 elements)`,
			},
		},
		"unknown and binary types are dropped": {
			limits: def,
			files: []sandbox.Artifact{
				{Name: "model.pkl", MIMEType: "application/octet-stream", Data: []byte{0x80, 0x04}},
				{Name: "data.zip", MIMEType: "application/zip", Data: []byte("PK\x03\x04")},
				{Name: "photo.jpg", Data: []byte("\xff\xd8\xff")},
				{Name: "run.sh", MIMEType: "text/x-shellscript", Data: []byte("#!/bin/sh")},
				{Name: "weird", MIMEType: "image/png; x=\"", Data: []byte(pngData)},
				{Name: "bin.csv", Data: []byte("a,b\n\x00\x01")},
				{Name: "bad.txt", Data: []byte("caf\xe9")},
				{Name: "bad.json", Data: []byte(`{"a": `)},
				{Name: "page.html", Data: []byte("\xff\xfe<html>")},
			},
			wantWarnings: []string{
				`dropped "bad.json": not valid JSON`,
				`dropped "bad.txt": is not valid UTF-8`,
				`dropped "bin.csv": contains NUL bytes (binary)`,
				`dropped "data.zip": unsupported type "application/zip"`,
				`dropped "model.pkl": unknown type (MIME "application/octet-stream", no known extension); only png, svg, html, json, csv and txt are kept`,
				`dropped "page.html": HTML is not valid UTF-8`,
				`dropped "photo.jpg": unknown type (MIME "", no known extension); only png, svg, html, json, csv and txt are kept`,
				`dropped "run.sh": unsupported type "text/x-shellscript"`,
				`dropped "weird": unparseable MIME type "image/png; x=\""`,
			},
		},
		"names: no directories, no dot-dot, duplicates numbered": {
			limits: def,
			files: []sandbox.Artifact{
				{Name: "../../etc/passwd.txt", Data: []byte("a")},
				{Name: `C:\Users\x\chart.png`, Data: []byte(pngData)},
				{Name: "out/chart.png", Data: []byte(pngData)},
				{Name: "..", MIMEType: "text/plain", Data: []byte("b")},
				{Name: ".hidden..txt", Data: []byte("c")},
				{Name: "résumé café.csv", Data: []byte("d")},
				{Name: "no-extension", MIMEType: "text/csv", Data: []byte("e")},
			},
			want: []Artifact{
				art("chart-2.png", "png", "image/png", pngData, ""), // from out/chart.png: "C:\..." sorts first
				art("chart.png", "png", "image/png", pngData, ""),
				art("no-extension.csv", "csv", "text/csv; charset=utf-8", "e", ""),
				art("r_sum__caf_.csv", "csv", "text/csv; charset=utf-8", "d", ""),
				art("artifact.txt", "txt", "text/plain; charset=utf-8", "b", ""),
				art("hidden.txt", "txt", "text/plain; charset=utf-8", "c", ""),
				art("passwd.txt", "txt", "text/plain; charset=utf-8", "a", ""),
			},
		},
		"count cap keeps figures first": {
			limits: Limits{MaxCount: 2, MaxTotalBytes: 1 << 20, MaxFileBytes: 1 << 20},
			files: []sandbox.Artifact{
				{Name: "a.txt", Data: []byte("a")},
				{Name: "b.csv", Data: []byte("b")},
				{Name: "z.png", Data: []byte(pngData)},
			},
			want: []Artifact{
				art("z.png", "png", "image/png", pngData, ""),
				art("b.csv", "csv", "text/csv; charset=utf-8", "b", ""),
			},
			wantWarnings: []string{`dropped "a.txt": more than 2 artifacts`},
		},
		"total cap skips what does not fit, keeps what does": {
			limits: Limits{MaxCount: 10, MaxTotalBytes: int64(len(bigPNG)) + 1, MaxFileBytes: 1 << 20},
			files: []sandbox.Artifact{
				{Name: "big.png", Data: []byte(bigPNG)},
				{Name: "more.csv", Data: []byte("xy")},
				{Name: "one.txt", Data: []byte("1")},
			},
			want: []Artifact{
				art("big.png", "png", "image/png", bigPNG, ""),
				art("one.txt", "txt", "text/plain; charset=utf-8", "1", ""),
			},
			wantWarnings: []string{fmt.Sprintf(`dropped "more.csv" (2 B): the artifacts would total more than %s`, humanBytes(int64(len(bigPNG))+1))},
		},
		"per-file cap before parsing": {
			limits:       Limits{MaxCount: 10, MaxTotalBytes: 1 << 20, MaxFileBytes: 100},
			files:        []sandbox.Artifact{{Name: "huge.svg", Data: []byte(strings.Repeat("<g>", 1000))}},
			wantWarnings: []string{`dropped "huge.svg": it is 2.9 KiB, over the 100 B per-file limit`},
		},
		"per-file cap after sanitizing (escaping grows text)": {
			limits:       Limits{MaxCount: 10, MaxTotalBytes: 1 << 20, MaxFileBytes: 200},
			files:        []sandbox.Artifact{{Name: "amp.svg", Data: []byte(`<svg><text>` + strings.Repeat("&amp;", 35) + `</text></svg>`)}},
			wantWarnings: []string{`dropped "amp.svg": after sanitizing it is 292 B, over the 200 B per-file limit`},
		},
		"invalid limits": {limits: Limits{}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, warnings, err := Prepare(tc.files, tc.limits)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("artifacts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantWarnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPrepareDeterministic shuffles the input: the result must not change.
func TestPrepareDeterministic(t *testing.T) {
	pngData := makePNG(t, 4, 4, color.White)
	var files []sandbox.Artifact
	for i := 0; i < 12; i++ {
		files = append(files,
			sandbox.Artifact{Name: fmt.Sprintf("d/%d/chart.png", i%3), Data: pngData},
			sandbox.Artifact{Name: fmt.Sprintf("%d/%s.png", i, strings.Repeat("x", 200)), Data: pngData},
			sandbox.Artifact{Name: "t.txt", Data: []byte(fmt.Sprint(i))},
		)
	}
	limits := Limits{MaxCount: 30, MaxTotalBytes: 1 << 20, MaxFileBytes: 1 << 20}
	want, wantWarn, err := Prepare(files, limits)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		shuffled := append([]sandbox.Artifact(nil), files...)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		got, gotWarn, err := Prepare(shuffled, limits)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("order changed the result (-first +shuffled):\n%s", diff)
		}
		if diff := cmp.Diff(wantWarn, gotWarn); diff != "" {
			t.Fatalf("order changed the warnings:\n%s", diff)
		}
	}
	for _, a := range want {
		if errs := validation.IsConfigMapKey(a.Name); len(errs) > 0 || len(a.Name) > MaxNameLen {
			t.Errorf("name %q: %v", a.Name, errs)
		}
	}
	if files[0].Name != "d/0/chart.png" {
		t.Errorf("Prepare reordered its input slice")
	}
}

func TestSafeName(t *testing.T) {
	tests := map[string]struct{ name, format, want string }{
		"plain":               {"chart.png", "png", "chart.png"},
		"directories":         {"/tmp/out/chart.png", "png", "chart.png"},
		"windows directories": {`..\..\chart.png`, "png", "chart.png"},
		"dot-dot":             {"a..b.txt", "txt", "a_b.txt"},
		"only dots":           {"...", "txt", "artifact.txt"},
		"empty":               {"", "svg", "artifact.svg"},
		"hidden":              {".env", "txt", "env.txt"},
		"wrong extension":     {"chart.svg", "png", "chart.svg.png"},
		"case of extension":   {"CHART.PNG", "png", "CHART.png"},
		"htm":                 {"page.htm", "html", "page.html"},
		"plotly json":         {"fig.json", "plotly.json", "fig.plotly.json"},
		"spaces and unicode":  {"my chart ✓.png", "png", "my_chart__.png"},
		"control characters":  {"a\x00b\nc.txt", "txt", "a_b_c.txt"},
		"long":                {strings.Repeat("x", 500) + ".png", "png", strings.Repeat("x", MaxNameLen-len(".png")-3) + ".png"},
		"only underscores":    {"___", "csv", "artifact.csv"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := SafeName(tc.name, tc.format)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SafeName(%q) (-want +got):\n%s", tc.name, diff)
			}
			if errs := validation.IsConfigMapKey(got); len(errs) > 0 {
				t.Errorf("%q is not a ConfigMap key: %v", got, errs)
			}
			if len(got) > MaxNameLen {
				t.Errorf("%q is longer than %d", got, MaxNameLen)
			}
		})
	}
}
