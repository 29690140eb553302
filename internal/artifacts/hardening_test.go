package artifacts

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image/color"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Tests for issue 10 (an adversarial review), findings 6, 7 and 11.

// headerPNG builds a structurally valid PNG (signature, IHDR, one IDAT, IEND, right
// CRCs) whose IHDR claims w×h RGB pixels and whose IDAT holds idatBytes of deflated
// zeros: the shape of a decompression bomb, without the memory to decode it.
func headerPNG(t *testing.T, w, h uint32, idatBytes int) []byte {
	t.Helper()
	chunk := func(buf *bytes.Buffer, typ string, body []byte) {
		_ = binary.Write(buf, binary.BigEndian, uint32(len(body)))
		buf.WriteString(typ)
		buf.Write(body)
		_ = binary.Write(buf, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), body...)))
	}
	var idat bytes.Buffer
	zw := zlib.NewWriter(&idat)
	_, _ = zw.Write(make([]byte, 1<<20))
	_ = zw.Close()
	data := idat.Bytes()
	for len(data) < idatBytes { // pad with stored bytes up to the wanted size
		data = append(data, 0)
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	var buf bytes.Buffer
	buf.Write(pngSignature)
	chunk(&buf, "IHDR", ihdr)
	chunk(&buf, "IDAT", data)
	chunk(&buf, "IEND", nil)
	return buf.Bytes()
}

// Finding 7: a 97 KB PNG declaring 10000×10000 pixels was accepted.
func TestPreparePNGLimits(t *testing.T) {
	small := makePNG(t, 8, 8, color.RGBA{1, 2, 3, 255})
	chart := makePNG(t, 300, 300, color.RGBA{1, 2, 3, 255})
	tests := map[string]struct {
		files     []sandbox.Artifact
		limits    Limits
		wantKept  []string
		wantWarns []string // substrings, one per warning
	}{
		"the reviewer's bomb: 97 KB declaring 10000×10000": {
			files:     []sandbox.Artifact{{Name: "bomb.png", Data: headerPNG(t, 10000, 10000, 97<<10)}},
			limits:    DefaultLimits(),
			wantWarns: []string{`dropped "bomb.png": the PNG is 10000×10000, 100000000 pixels, more than the 40000000 allowed per image`},
		},
		"within the pixel limit but inflating more than 1000:1": {
			files:     []sandbox.Artifact{{Name: "ratio.png", Data: headerPNG(t, 6000, 6000, 20<<10)}},
			limits:    DefaultLimits(),
			wantWarns: []string{`dropped "ratio.png": the PNG's 20480 bytes of image data claim 6000×6000 pixels (108006000 bytes decoded), more than 1000:1`},
		},
		"a real, highly compressible chart is kept": {
			files:    []sandbox.Artifact{{Name: "chart.png", Data: chart}},
			limits:   DefaultLimits(),
			wantKept: []string{"chart.png"},
		},
		"pixels are capped per request too": {
			files: []sandbox.Artifact{{Name: "a.png", Data: small}, {Name: "b.png", Data: small}, {Name: "c.png", Data: small}},
			limits: Limits{MaxCount: 10, MaxTotalBytes: 1 << 20, MaxFileBytes: 1 << 20,
				MaxTotalPNGPixels: 150},
			wantKept:  []string{"a.png", "b.png"},
			wantWarns: []string{`dropped "c.png": its 64 pixels would bring this request's PNGs over 150 pixels in total`},
		},
		"a per-image limit from Limits": {
			files:     []sandbox.Artifact{{Name: "a.png", Data: small}},
			limits:    Limits{MaxCount: 10, MaxTotalBytes: 1 << 20, MaxFileBytes: 1 << 20, MaxPNGPixels: 63},
			wantWarns: []string{`dropped "a.png": the PNG is 8×8, 64 pixels, more than the 63 allowed per image`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			arts, warns, err := Prepare(tc.files, tc.limits)
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, a := range arts {
				kept = append(kept, a.Name)
			}
			if diff := cmp.Diff(tc.wantKept, kept); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if len(warns) != len(tc.wantWarns) {
				t.Fatalf("warnings %q, want %d", warns, len(tc.wantWarns))
			}
			for i, w := range tc.wantWarns {
				if !strings.Contains(warns[i], w) {
					t.Errorf("warning %q does not contain %q", warns[i], w)
				}
			}
		})
	}
}

// Finding 11: plotly JSON passed through with __proto__ keys.
func TestSanitizePlotlyJSON(t *testing.T) {
	tests := map[string]struct {
		in, want    string
		wantRemoved int
		wantErr     bool
	}{
		"clean JSON is kept byte for byte": {
			in: `{"data": [{"type": "bar", "y": [1, 2.50]}], "layout": {}}`, want: `{"data": [{"type": "bar", "y": [1, 2.50]}], "layout": {}}`,
		},
		"prototype keys at every depth, arrays included": {
			in:          `{"__proto__": {"polluted": 1}, "data": [{"y": [1], "constructor": {"prototype": {"x": 1}}}], "layout": {"title": {"prototype": 1, "text": "t<b>"}}}`,
			want:        `{"data":[{"y":[1]}],"layout":{"title":{"text":"t\u003cb\u003e"}}}`,
			wantRemoved: 3,
		},
		"numbers keep their text": {
			in: `{"constructor": 1, "n": 12345678901234567890.5}`, want: `{"n":12345678901234567890.5}`, wantRemoved: 1,
		},
		"not JSON": {in: `{"a":`, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, removed, err := sanitizePlotlyJSON([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if string(got) != tc.want || removed != tc.wantRemoved {
				t.Errorf("got %s (%d removed), want %s (%d removed)", got, removed, tc.want, tc.wantRemoved)
			}
		})
	}
	// Through Prepare, with a warning.
	arts, warns, err := Prepare([]sandbox.Artifact{{Name: "fig.json", MIMEType: MIMEPlotly, Data: []byte(`{"__proto__": {"isAdmin": true}, "data": []}`)}}, DefaultLimits())
	if err != nil || len(arts) != 1 || string(arts[0].Data) != `{"data":[]}` || len(warns) != 1 {
		t.Errorf("Prepare: %v %q %v", arts, warns, err)
	}
}

// Finding 11: plotly HTML carried no Content-Security-Policy. (render_test.go checks
// in chromium that the policy is in force and the chart still draws.)
func TestWithCSP(t *testing.T) {
	const base = "default-src 'none'; script-src %s; style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
	meta := func(scripts string) string {
		return `<meta http-equiv="Content-Security-Policy" content="` + strings.Replace(base, "%s", scripts, 1) + `">`
	}
	// sha256 of "a()" and of "b()" (printf 'a()' | openssl dgst -sha256 -binary | base64).
	const hashA, hashB = "'sha256-qVpDBgj7bpq5hMAcGp3AOc79J3Y1Z4HvySTwKrWDoy4='", "'sha256-cf242PFc/kb7xD0Qzhsmd9vvRkc+cWFmbi+k+YvtdKc='"
	tests := map[string]struct {
		page, plotlyJS, want string
		wantErr              bool
	}{
		"default CDN, inline scripts by hash, after the doctype": {
			page:     `<!DOCTYPE html><html><script src="https://cdn.plot.ly/plotly-2.min.js"></script><script type="text/javascript">a()</script><SCRIPT>b()</SCRIPT></html>`,
			plotlyJS: "",
			want:     `<!DOCTYPE html>` + meta(hashA+" "+hashB+" https://cdn.plot.ly/") + `<html><script src="https://cdn.plot.ly/plotly-2.min.js"></script><script type="text/javascript">a()</script><SCRIPT>b()</SCRIPT></html>`,
		},
		"a configured URL, query dropped": {
			page: `<html><script>a()</script></html>`, plotlyJS: "https://static.example.org/js/plotly.min.js?v=2",
			want: meta(hashA+" https://static.example.org/js/plotly.min.js") + `<html><script>a()</script></html>`,
		},
		"inline plotly.js: hashes only": {
			page: `<html><script>a()</script><script>a()</script></html>`, plotlyJS: "inline",
			want: meta(hashA) + `<html><script>a()</script><script>a()</script></html>`,
		},
		"no script at all": {
			page: `<html></html>`, plotlyJS: "inline", want: meta("'none'") + `<html></html>`,
		},
		"a URL that would break out of the policy": {page: `<html></html>`, plotlyJS: "https://x.example/a.js; script-src *", wantErr: true},
		"not a URL": {page: `<html></html>`, plotlyJS: "javascript:alert(1)", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src, err := plotlyCSPSource(tc.plotlyJS)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if diff := cmp.Diff(tc.want, string(withCSP([]byte(tc.page), src))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// Finding 6: <style> rules reached the host page (*{display:none} hid it when the SVG
// was inlined), and ids were not prefixed (two inlined charts collided).
func TestSanitizeSVGScoped(t *testing.T) {
	const open = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" id="vtest">`
	tests := map[string]struct{ in, want string }{
		"page-wide selectors are scoped to the image": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg"><style>*{display: none} svg, text{fill: red}</style></svg>`,
			want: open + "<style>#vtest *{display: none}\n#vtest svg, #vtest text{fill: red}\n</style></svg>",
		},
		"ids, href, url() and #id selectors are prefixed; the root's own id is replaced": {
			in: `<svg xmlns="http://www.w3.org/2000/svg" id="own"><style>#a, g > #p{stroke: blue; fill: url(#a)}</style>` +
				`<defs><clipPath id="a"><rect width="1" height="1"/></clipPath></defs>` +
				`<path id="p" d="M 0 0" clip-path="url(#a)" style="fill: url('#a')"/><use href="#p"/><use xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="#p"/></svg>`,
			want: open + "<style>#vtest #vtest-a, #vtest g &gt; #vtest-p{stroke: blue; fill: url(#vtest-a)}\n</style>" +
				`<defs><clipPath id="vtest-a"><rect width="1" height="1"/></clipPath></defs>` +
				`<path id="vtest-p" d="M 0 0" clip-path="url(#vtest-a)" style="fill: url('#vtest-a')"/><use href="#vtest-p"/><use xlink:href="#vtest-p"/></svg>`,
		},
		"a DOM-clobbering id": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg"><g id="location"/></svg>`,
			want: open + `<g id="vtest-location"/></svg>`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, _, err := sanitizeSVGScoped([]byte(tc.in), "vtest-")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Two charts with the same ids get different prefixes through Prepare.
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg"><g id="axes_1"/></svg>`)
	arts, _, err := Prepare([]sandbox.Artifact{{Name: "a.svg", Data: svg}, {Name: "b.svg", Data: svg}}, DefaultLimits())
	if err != nil || len(arts) != 2 {
		t.Fatalf("Prepare: %v %v", arts, err)
	}
	if bytes.Contains(arts[0].Data, []byte(`id="axes_1"`)) || bytes.Equal(arts[0].Data, arts[1].Data) {
		t.Errorf("ids not prefixed per artifact:\n%s\n%s", arts[0].Data, arts[1].Data)
	}
}
