package artifacts

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const svgOpen = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"`

func TestSanitizeSVG(t *testing.T) {
	tinyPNG := base64.StdEncoding.EncodeToString(makePNG(t, 2, 2, color.Black))
	tests := map[string]struct {
		in          string
		want        string
		wantRemoved []string
	}{
		"keeps case-sensitive names, namespaces and self-closing tags": {
			in: `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10">` +
				`<defs><clipPath id="c1"><rect x="0" y="0" width="5" height="5"/></clipPath><path id="m" d="M 0 0 L 1 1"/></defs>` +
				`<use xlink:href="#m" x="1" y="2" clip-path="url(#c1)"/><use href="#m"/></svg>`,
			want: svgOpen + ` viewBox="0 0 10 10"><defs><clipPath id="c1"><rect x="0" y="0" width="5" height="5"/></clipPath><path id="m" d="M 0 0 L 1 1"/></defs>` +
				`<use xlink:href="#m" x="1" y="2" clip-path="url(#c1)"/><use href="#m"/></svg>`,
		},
		"script element": {
			in:          `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><g/></svg>`,
			want:        svgOpen + `><g/></svg>`,
			wantRemoved: []string{"<script>"},
		},
		"script in the SVG namespace with a prefix": {
			in:          `<s:svg xmlns:s="http://www.w3.org/2000/svg"><s:script>alert(1)</s:script></s:svg>`,
			want:        svgOpen + `/>`,
			wantRemoved: []string{"<script>"},
		},
		"script with another case is not an allowed element either": {
			in:          `<svg xmlns="http://www.w3.org/2000/svg"><SCRIPT>alert(1)</SCRIPT></svg>`,
			want:        svgOpen + `/>`,
			wantRemoved: []string{"<SCRIPT>"},
		},
		"foreignObject with HTML": {
			in:          `<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><body xmlns="http://www.w3.org/1999/xhtml"><img src="x" onerror="alert(1)"/></body></foreignObject></svg>`,
			want:        svgOpen + `/>`,
			wantRemoved: []string{"<foreignObject>"},
		},
		"event handlers on every element": {
			in:          `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><g onclick="alert(2)" ONMOUSEOVER="x"><path d="M0 0" onfocusin="y"/></g></svg>`,
			want:        svgOpen + `><g><path d="M0 0"/></g></svg>`,
			wantRemoved: []string{"ONMOUSEOVER", "onclick", "onfocusin", "onload"},
		},
		"javascript, external and data URLs in href": {
			in: `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">` +
				`<use xlink:href="javascript:alert(1)"/><use href="http://evil.example/x.svg#a"/><use href="x.svg#a"/>` +
				`<image href="https://evil.example/track.png"/><image xlink:href="data:image/svg+xml;base64,PHN2Zy8+"/>` +
				`<image href="data:image/png;base64,AAAA"/><image href="#m"/></svg>`,
			want:        svgOpen + `><use/><use/><use/><image/><image/><image/><image/></svg>`,
			wantRemoved: []string{"href", "xlink:href"},
		},
		"embedded PNG image is kept": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><image width="2" height="2" xlink:href="data:image/png;base64,` + tinyPNG + `"/></svg>`,
			want: svgOpen + `><image width="2" height="2" xlink:href="data:image/png;base64,` + tinyPNG + `"/></svg>`,
		},
		"links, animation and set that rewrite href are dropped": {
			in: `<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"><rect width="1" height="1"/></a>` +
				`<use href="#x"><set attributeName="href" to="javascript:alert(1)"/></use>` +
				`<animate attributeName="href" values="javascript:alert(1)"/><iframe src="x"/><embed src="x"/></svg>`,
			want:        svgOpen + `><use href="#x"/></svg>`,
			wantRemoved: []string{"<a>", "<animate>", "<embed>", "<iframe>", "<set>"},
		},
		"external url() in style attribute and presentation attributes": {
			in: `<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill: url(https://evil.example/p#x); stroke: red" width="1"/>` +
				`<rect fill="url(http://evil.example/#g)" clip-path="url(#ok)" filter="url(#f)"/>` +
				`<rect style="background-image: url(x.png); behavior: url(x.htc); -moz-binding: url(x.xml)"/></svg>`,
			want:        svgOpen + `><rect style="stroke: red" width="1"/><rect clip-path="url(#ok)"/><rect/></svg>`,
			wantRemoved: []string{"css -moz-binding", "css background-image", "css behavior", "css fill", "fill", "filter"},
		},
		"CSS escapes, expressions and comments": {
			in: `<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill: u\72l(http://evil.example/)"/>` +
				`<rect style="width: expression(alert(1)); fill: red"/><rect style="fill: red/**/; stroke: javascript:alert(1)"/></svg>`,
			want:        svgOpen + `><rect/><rect style="fill: red"/><rect/></svg>`,
			wantRemoved: []string{"css fill", "css stroke", "css width", "style (escape or non-ASCII)"},
		},
		"style element: at-rules and external urls go, plain rules stay": {
			in: `<svg xmlns="http://www.w3.org/2000/svg"><style type="text/css"><![CDATA[@import url(https://evil.example/x.css); ` +
				`*{stroke-linejoin: round; stroke-linecap: butt} .a{fill: url(https://evil.example/); stroke: blue} ` +
				`@font-face{font-family: x; src: url(https://evil.example/f.woff)}]]></style></svg>`,
			want:        svgOpen + `><style type="text/css">*{stroke-linejoin: round; stroke-linecap: butt}` + "\n" + `.a{stroke: blue}` + "\n" + `</style></svg>`,
			wantRemoved: []string{"css @font-face", "css @import", "css fill"},
		},
		"style element that closes itself early for an HTML parser": {
			in:          `<svg xmlns="http://www.w3.org/2000/svg"><style>&lt;/style&gt;&lt;script&gt;alert(1)&lt;/script&gt;</style></svg>`,
			want:        svgOpen + `><style/></svg>`,
			wantRemoved: []string{"style (escape, comment or non-ASCII)"},
		},
		"style element of another type": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg"><style type="text/javascript">a{fill:red}</style></svg>`,
			want: "error",
		},
		"text is escaped, markup inside title is dropped": {
			in:          `<svg xmlns="http://www.w3.org/2000/svg"><title>a &lt;img src=x onerror=alert(1)&gt; <b>bold</b></title><text x="1">&lt;script&gt;<![CDATA[</text><script>alert(1)</script>]]></text></svg>`,
			want:        svgOpen + `><title>a &lt;img src=x onerror=alert(1)&gt; </title><text x="1">&lt;script&gt;&lt;/text&gt;&lt;script&gt;alert(1)&lt;/script&gt;</text></svg>`,
			wantRemoved: []string{"<b>"},
		},
		"comments, processing instructions and DOCTYPE are dropped": {
			in:   `<?xml-stylesheet href="https://evil.example/x.css"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"><!-- <script>alert(1)</script> --><svg xmlns="http://www.w3.org/2000/svg"><!--x--><g/></svg>`,
			want: svgOpen + `><g/></svg>`,
		},
		"attribute values are escaped and whitespace normalized": {
			in:   "<svg xmlns=\"http://www.w3.org/2000/svg\"><path d=\"M 0 0\nL 1 1\" font-family=\"'DejaVu Sans', &quot;Arial&quot;\"/></svg>",
			want: svgOpen + `><path d="M 0 0 L 1 1" font-family="'DejaVu Sans', &quot;Arial&quot;"/></svg>`,
		},
		"foreign attributes and namespaces": {
			in:          `<svg xmlns="http://www.w3.org/2000/svg" xmlns:ev="http://www.w3.org/2001/xml-events" xmlns:x="urn:x"><g ev:event="click" x:onload="a" xml:space="preserve" xml:base="http://evil.example/"/></svg>`,
			want:        svgOpen + `><g xml:space="preserve"/></svg>`,
			wantRemoved: []string{"event (foreign namespace)", "onload (foreign namespace)", "xml:base"},
		},
		"huge attribute is dropped, the rest kept": {
			in:          `<svg xmlns="http://www.w3.org/2000/svg"><path id="` + strings.Repeat("a", maxSmallAttr+1) + `" d="M 0 0"/><path d="` + strings.Repeat("L 1 1 ", maxBigAttr/6+1) + `"/></svg>`,
			want:        svgOpen + `><path d="M 0 0"/><path/></svg>`,
			wantRemoved: []string{"d (longer than limit)", "id (longer than limit)"},
		},
		"duplicate ids keep the first": {
			in:          `<svg xmlns="http://www.w3.org/2000/svg"><g id="a"/><g id="a"/></svg>`,
			want:        svgOpen + `><g id="a"/><g/></svg>`,
			wantRemoved: []string{"duplicate id"},
		},
		"svg without a namespace (as written for HTML) is accepted": {
			in:   `<svg viewBox="0 0 1 1"><circle cx="0.5" cy="0.5" r="0.5"/></svg>`,
			want: svgOpen + ` viewBox="0 0 1 1"><circle cx="0.5" cy="0.5" r="0.5"/></svg>`,
		},
		"billion laughs": {
			in: `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
				`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><svg xmlns="http://www.w3.org/2000/svg"><text>&lol3;</text></svg>`,
			want: "error",
		},
		"external entity": {
			in:   `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg"><text>&xxe;</text></svg>`,
			want: "error",
		},
		"use bomb": {
			in:   useBomb(9),
			want: "error",
		},
		"use cycle": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg"><g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g></svg>`,
			want: "error",
		},
		"use referencing its own ancestor": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg"><g id="a"><g><use href="#a"/></g></g></svg>`,
			want: "error",
		},
		"deep nesting": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg">` + strings.Repeat("<g>", maxSVGDepth+1) + strings.Repeat("</g>", maxSVGDepth+1) + `</svg>`,
			want: "error",
		},
		"not UTF-8": {
			in:   "<svg xmlns=\"http://www.w3.org/2000/svg\"><text>\xff\xfe</text></svg>",
			want: "error",
		},
		"declares another encoding": {
			in:   `<?xml version="1.0" encoding="ISO-8859-1"?><svg xmlns="http://www.w3.org/2000/svg"/>`,
			want: "error",
		},
		"HTML pretending to be SVG": {
			in:   `<html><body><svg onload="alert(1)"></svg><script>alert(1)</script></body></html>`,
			want: "error",
		},
		"HTML-style unclosed tags": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg"><g><path d="M0 0"></svg>`,
			want: "error",
		},
		"root in another namespace": {
			in:   `<svg xmlns="http://www.w3.org/1999/xhtml"/>`,
			want: "error",
		},
		"two roots": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg"/><svg xmlns="http://www.w3.org/2000/svg"/>`,
			want: "error",
		},
		"empty": {
			in:   ``,
			want: "error",
		},
		"truncated": {
			in:   `<svg xmlns="http://www.w3.org/2000/svg"><path d="M 0 0 L`,
			want: "error",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, removed, err := sanitizeSVG([]byte(tc.in))
			if tc.want == "error" {
				if err == nil {
					t.Fatalf("want an error, got %q", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRemoved, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			outline(t, got) // the output is well-formed XML
			assertNoActiveContent(t, got)
		})
	}
}

// useBomb nests levels of groups, each using the previous one ten times.
func useBomb(levels int) string {
	var b strings.Builder
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg"><defs><path id="l0" d="M0 0 L1 1"/>`)
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, `<g id="l%d">`, i)
		for j := 0; j < 10; j++ {
			fmt.Fprintf(&b, `<use href="#l%d"/>`, i-1)
		}
		b.WriteString(`</g>`)
	}
	fmt.Fprintf(&b, `</defs><use href="#l%d"/></svg>`, levels)
	return b.String()
}

// assertNoActiveContent checks sanitized output for anything that can run script or
// reach the network, independently of the sanitizer's own allow-lists.
func assertNoActiveContent(t *testing.T, out []byte) {
	t.Helper()
	for _, e := range outline(t, out) {
		switch strings.ToLower(e.Name) {
		case "script", "foreignobject", "iframe", "embed", "object", "a", "set", "animate", "handler", "listener":
			t.Errorf("active element <%s> survived", e.Name)
		}
		for k, v := range e.Attrs {
			lk, lv := strings.ToLower(k), strings.ToLower(v)
			if strings.HasPrefix(lk, "on") {
				t.Errorf("event handler %s survived", k)
			}
			if strings.HasPrefix(v, "data:image/png;base64,") {
				lv = "" // base64 may contain "//"; hrefOK checked it decodes to a PNG
			}
			if strings.Contains(lv, "javascript") || strings.Contains(lv, "http:") || strings.Contains(lv, "https:") || strings.Contains(lv, "//") {
				t.Errorf("URL survived in %s=%q", k, v)
			}
			if strings.Contains(lv, "url(") && !strings.Contains(lv, "url(#") {
				t.Errorf("external url() survived in %s=%q", k, v)
			}
			if strings.HasSuffix(lk, "href") && !strings.HasPrefix(v, "#") && !strings.HasPrefix(v, "data:image/png;base64,") {
				t.Errorf("href survived: %q", v)
			}
		}
		if strings.EqualFold(e.Name, "style") && (strings.Contains(e.Text, "@") || strings.Contains(e.Text, "url(h")) {
			t.Errorf("style survived: %q", e.Text)
		}
	}
}

// matplotlibScript writes charts covering what matplotlib's SVG backend emits: text as
// paths (the default) and as <text>, markers via <use>, clip paths, hatches
// (<pattern>), embedded raster images, mathtext, legends, log axes.
const matplotlibScript = `
import sys, numpy as np, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out = sys.argv[1]
fig, ax = plt.subplots(figsize=(4, 3))
ax.bar(["Hydroxyurea", "Voxelotor", "Crizanlizumab"], [85, 70, 75], hatch="//", label="bars")
ax.plot([0, 1, 2], [60, 80, 65], marker="o", color="C1", label="line")
ax.set_title('Effect <&> "quoted" $\\alpha^2$')
ax.legend(); ax.grid(True)
fig.savefig(out + "/paths.svg")
plt.rcParams["svg.fonttype"] = "none"
fig, ax = plt.subplots(figsize=(4, 3))
x = np.arange(1, 13)
ax.plot(x, [3, 2, 4, 1, 2, 3, 2, 1, 2, 3, 4, 2], marker="s")
ax.fill_between(x, 0, 1, alpha=0.3)
ax.errorbar(x, np.ones(12) * 2, yerr=0.5, fmt="none")
ax.set_yscale("log"); ax.set_xlabel("Month"); ax.set_ylabel("VOE <episodes> & more")
ax.annotate("peak", xy=(3, 4), xytext=(5, 4), arrowprops=dict(arrowstyle="->"))
fig.savefig(out + "/text.svg")
fig, ax = plt.subplots(figsize=(3, 3))
im = ax.imshow(np.arange(100).reshape(10, 10)); fig.colorbar(im)
ax.pie([1, 2, 3]) if False else None
fig.savefig(out + "/image.svg")
fig, ax = plt.subplots(figsize=(3, 3))
ax.pie([1, 2, 3], labels=["a", "b", "c"], autopct="%1.0f%%")
fig.savefig(out + "/pie.svg")
`

// TestMatplotlibSVGSurvives generates real matplotlib SVGs and checks that
// sanitizing removes nothing from them: same elements in the same order, same
// attributes and values (modulo whitespace), same text, and valid XML.
func TestMatplotlibSVGSurvives(t *testing.T) {
	dir := t.TempDir()
	runPython(t, matplotlibScript, dir)
	for _, name := range []string{"paths.svg", "text.svg", "image.svg", "pie.svg"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			out, removed, err := sanitizeSVG(in)
			if err != nil {
				t.Fatalf("sanitizeSVG: %v", err)
			}
			if len(removed) != 0 {
				t.Errorf("removed %v from matplotlib's own output", removed)
			}
			want, got := outline(t, in), outline(t, out)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("matplotlib SVG changed (-in +out):\n%s", diff)
			}
			counts := map[string]int{}
			for _, e := range got {
				counts[e.Name]++
			}
			if counts["path"] == 0 {
				t.Errorf("no paths survived: %v", counts)
			}
			switch name {
			case "text.svg":
				if counts["text"] == 0 || !bytes.Contains(out, []byte("VOE &lt;episodes&gt; &amp; more")) {
					t.Errorf("text did not survive: %v", counts)
				}
			case "paths.svg":
				if counts["use"] == 0 || counts["clipPath"] == 0 || counts["pattern"] == 0 {
					t.Errorf("markers, clip paths or hatches missing: %v", counts)
				}
			case "image.svg":
				if counts["image"] == 0 || !bytes.Contains(out, []byte(`xlink:href="data:image/png;base64,`)) {
					t.Errorf("embedded image missing: %v", counts)
				}
			}
			assertNoActiveContent(t, out)
		})
	}
}

// TestCommittedMatplotlibFixture runs the sanitizer on a committed matplotlib SVG
// (testdata/matplotlib-bar.svg, made by matplotlib 3.6.3 with the script in
// testdata/README.md) so the check does not depend only on the installed version.
func TestCommittedMatplotlibFixture(t *testing.T) {
	in, err := os.ReadFile("testdata/matplotlib-bar.svg")
	if err != nil {
		t.Fatal(err)
	}
	out, removed, err := sanitizeSVG(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Errorf("removed %v", removed)
	}
	if diff := cmp.Diff(outline(t, in), outline(t, out)); diff != "" {
		t.Errorf("fixture changed (-in +out):\n%s", diff)
	}
	// Sanitizing is idempotent.
	again, removed, err := sanitizeSVG(out)
	if err != nil || len(removed) != 0 {
		t.Fatalf("second pass: %v %v", err, removed)
	}
	if diff := cmp.Diff(string(out), string(again)); diff != "" {
		t.Errorf("not idempotent:\n%s", diff)
	}
}

func TestCSSValueOK(t *testing.T) {
	tests := map[string]bool{
		"#1f77b4":                      true,
		"none":                         true,
		"rgba(31, 119, 180, 0.5)":      true,
		"url(#p0347bda5aa)":            true,
		"url('#a')":                    true,
		"10px 'DejaVu Sans'":           true,
		"0.8":                          true,
		"3.7, 1.6":                     true,
		"url(#a) none":                 true,
		"url(https://evil.example/)":   false,
		"url(x.png)":                   false,
		"url('#a\")":                   false,
		"url(#a":                       false,
		"#a)":                          false,
		"javascript:alert(1)":          false,
		"expression(alert(1))":         false,
		"red;background:url(x)":        false,
		"u\\72l(x)":                    false,
		"red /* x */":                  false,
		"var(--x)":                     false,
		"image-set('x.png' 1x)":        false,
		"rgb(calc(1), 2, 3)":           false,
		"red\x00":                      false,
		"ｕｒｌ(x)":                       false,
		strings.Repeat("a", 5000):      false,
		"@import":                      false,
		"red } a { fill: url(x)":       false,
		"attr(href)":                   false,
		"rgb(1,2,3) url(#a) url(#b)":   true,
		"url( #a )":                    true,
		"url(#a) url(//evil.example/)": false,
		"'a":                           false,
		"'DejaVu Sans\", serif":        false,
		"\"a'b\", 'c\"d'":              true,
	}
	for in, want := range tests {
		t.Run(in[:min(len(in), 40)], func(t *testing.T) {
			if got := cssValueOK(in); got != want {
				t.Errorf("cssValueOK(%q) = %v, want %v", in, got, want)
			}
		})
	}
}

func TestSanitizeStylesheet(t *testing.T) {
	tests := map[string]struct {
		in          string
		want        string
		wantRemoved []string
	}{
		"matplotlib": {in: "*{stroke-linejoin: round; stroke-linecap: butt}", want: "*{stroke-linejoin: round; stroke-linecap: butt}\n"},
		"leading semicolon (hung douceur's parser)": {in: ";*{fill: url(#a)} a{x:y}", want: "*{fill: url(#a)}\n", wantRemoved: []string{"css x"}},
		"import statement then a rule":              {in: "@import url(https://evil.example/); g{fill: red}", want: "g{fill: red}\n", wantRemoved: []string{"css @import"}},
		"import without semicolon":                  {in: "@import 'x.css'", wantRemoved: []string{"css @import"}},
		"nested at-rule block":                      {in: "@media screen { g { fill: url(https://evil.example/) } } text{fill: blue}", want: "text{fill: blue}\n", wantRemoved: []string{"css @media"}},
		"unbalanced open":                           {in: "g{fill: red", wantRemoved: []string{"css (unbalanced braces)"}},
		"unbalanced at-rule":                        {in: "@media x { g{fill: red}", wantRemoved: []string{"css (unbalanced braces)", "css @media"}},
		"nested braces in a rule":                   {in: "g{a{fill: red}} h{fill: blue}", want: "", wantRemoved: []string{"css (unbalanced braces)", "css selector"}},
		"attribute selector":                        {in: `a[href^="x"]{fill: red}`, wantRemoved: []string{"css selector"}},
		"comment":                                   {in: "g{fill: red}/* x */", wantRemoved: []string{"style (escape, comment or non-ASCII)"}},
		"semicolon in a quoted value":               {in: "text{font-family: 'a;b'; fill: red}", want: "text{fill: red}\n", wantRemoved: []string{"css b'", "css font-family"}},
		"escape":                                    {in: `g{fill: u\72l(x)}`, wantRemoved: []string{"style (escape, comment or non-ASCII)"}},
		"empty":                                     {in: "  "},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			removed := map[string]bool{}
			got := sanitizeStylesheet(tc.in, removed)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRemoved, sortedKeys(removed)); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
		})
	}
}
