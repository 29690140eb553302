package artifacts

import (
	"html"
	"regexp"
	"sort"
	"strings"

	"github.com/aymerick/douceur/css"
	"github.com/aymerick/douceur/parser"
	"github.com/microcosm-cc/bluemonday"
)

// CSS in SVG (style attributes and <style> elements) is the one place where an SVG can
// still reach the network or run script-like constructs once elements and attributes
// are allow-listed: url(http://...), @import, expression(), -moz-binding, escapes that
// spell any of these. We sanitize declarations with bluemonday's style policy (it parses
// them with douceur and keeps only the properties we allow, each value checked by
// cssValueOK), then check bluemonday's output again with cssValueOK: bluemonday tests
// the value after decoding CSS escapes but emits the original text, so an escaped
// value could otherwise pass. Values containing a backslash are refused up front.

// cssProperties are the properties matplotlib (and hand-written chart SVG) uses.
var cssProperties = []string{
	"alignment-baseline", "baseline-shift", "clip-path", "clip-rule", "color",
	"display", "dominant-baseline", "fill", "fill-opacity", "fill-rule", "font",
	"font-family", "font-size", "font-stretch", "font-style", "font-variant",
	"font-weight", "image-rendering", "letter-spacing", "mix-blend-mode", "opacity",
	"paint-order", "shape-rendering", "stop-color", "stop-opacity", "stroke",
	"stroke-dasharray", "stroke-dashoffset", "stroke-linecap", "stroke-linejoin",
	"stroke-miterlimit", "stroke-opacity", "stroke-width", "text-anchor",
	"text-decoration", "text-rendering", "vector-effect", "visibility",
	"white-space", "word-spacing",
}

var cssPropertySet = func() map[string]bool {
	m := make(map[string]bool, len(cssProperties))
	for _, p := range cssProperties {
		m[p] = true
	}
	return m
}()

// stylePolicy is the bluemonday policy used to sanitize one declaration list, carried
// on a <span> (bluemonday only knows HTML elements; the element is a vehicle).
var stylePolicy = func() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements("span")
	p.AllowStyles(cssProperties...).MatchingHandler(cssValueOK).Globally()
	return p
}()

const maxCSSValueLen = 4096

// idRef matches the inside of url(...) that points into the same document.
var idRef = regexp.MustCompile(`^\s*(['"]?)#[A-Za-z_][A-Za-z0-9_.:\-]*(['"]?)\s*$`)

// cssFuncs are the CSS functions a value may call; url() is further limited to #id.
var cssFuncs = map[string]bool{"rgb": true, "rgba": true, "hsl": true, "hsla": true, "url": true}

// cssValueOK reports whether a CSS (or SVG presentation attribute) value is safe: ASCII,
// no escapes, comments, blocks, at-rules or colons (so no scheme such as javascript: or
// http: can appear), and functions limited to colours and url(#id).
func cssValueOK(v string) bool {
	if len(v) > maxCSSValueLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(" #.,%+-'\"()/!_", c) >= 0:
		default:
			return false
		}
	}
	if strings.Contains(v, "/*") {
		return false
	}
	// Check every function call: name(args).
	rest := v
	for {
		open := strings.IndexByte(rest, '(')
		if open < 0 {
			break
		}
		start := open
		for start > 0 && (isLetter(rest[start-1]) || rest[start-1] == '-') {
			start--
		}
		name := strings.ToLower(rest[start:open])
		if !cssFuncs[name] {
			return false
		}
		end := strings.IndexByte(rest[open:], ')')
		if end < 0 {
			return false
		}
		args := rest[open+1 : open+end]
		if strings.ContainsAny(args, "(") {
			return false
		}
		if name == "url" {
			m := idRef.FindStringSubmatch(args)
			if m == nil || m[1] != m[2] {
				return false
			}
		}
		rest = rest[open+end+1:]
	}
	return !strings.Contains(rest, ")")
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// sanitizeDeclarations returns the safe subset of a declaration list ("a: b; c: d"), or
// "" when nothing survives. removed collects the names of dropped properties.
func sanitizeDeclarations(decls string, removed map[string]bool) string {
	if strings.ContainsAny(decls, "\\<>") || !isASCII(decls) {
		removed["style (escape or non-ASCII)"] = true
		return ""
	}
	parsed, err := parser.ParseDeclarations(ensureSemicolon(decls))
	if err != nil {
		removed["style (unparseable)"] = true
		return ""
	}
	for _, d := range parsed {
		if !cssPropertySet[strings.ToLower(d.Property)] || !cssValueOK(d.Value) {
			removed["css "+d.Property] = true
		}
	}
	out := stylePolicy.Sanitize(`<span style="` + html.EscapeString(decls) + `">x</span>`)
	const prefix, suffix = `<span style="`, `">x</span>`
	if !strings.HasPrefix(out, prefix) || !strings.HasSuffix(out, suffix) {
		return ""
	}
	clean := html.UnescapeString(out[len(prefix) : len(out)-len(suffix)])
	// Re-check what bluemonday emitted (it validates decoded values, emits originals).
	var kept []string
	for _, d := range strings.Split(clean, "; ") {
		prop, val, ok := strings.Cut(d, ": ")
		if !ok || !cssPropertySet[strings.ToLower(prop)] || !cssValueOK(val) {
			removed["css "+prop] = true
			continue
		}
		kept = append(kept, strings.ToLower(prop)+": "+val)
	}
	return strings.Join(kept, "; ")
}

func ensureSemicolon(s string) string {
	s = strings.TrimRight(s, " \t\r\n")
	if s != "" && !strings.HasSuffix(s, ";") {
		s += ";"
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || (s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
			return false
		}
	}
	return true
}

// selectorOK allows type, class, id, universal and descendant/child selectors.
var selectorOK = regexp.MustCompile(`^[A-Za-z0-9_\-#.* >+~:,]{1,256}$`)

// sanitizeStylesheet keeps the plain rules of a <style> element (matplotlib writes
// "*{stroke-linejoin: round; stroke-linecap: butt}"), each declaration list sanitized
// as above. At-rules (@import, @font-face, @media, ...) are dropped.
func sanitizeStylesheet(text string, removed map[string]bool) string {
	if strings.ContainsAny(text, "\\<") || !isASCII(text) {
		removed["style (escape or non-ASCII)"] = true
		return ""
	}
	sheet, err := parser.Parse(text)
	if err != nil {
		removed["style (unparseable)"] = true
		return ""
	}
	var b strings.Builder
	for _, r := range sheet.Rules {
		if r.Kind != css.QualifiedRule {
			removed["css "+r.Name] = true
			continue
		}
		var sels []string
		for _, s := range r.Selectors {
			s = strings.TrimSpace(s)
			if selectorOK.MatchString(s) {
				sels = append(sels, s)
			} else {
				removed["css selector"] = true
			}
		}
		if len(sels) == 0 {
			continue
		}
		var decls []string
		for _, d := range r.Declarations {
			decls = append(decls, d.Property+": "+d.Value)
		}
		clean := sanitizeDeclarations(strings.Join(decls, "; "), removed)
		if clean == "" {
			continue
		}
		b.WriteString(strings.Join(sels, ", "))
		b.WriteString("{")
		b.WriteString(clean)
		b.WriteString("}\n")
	}
	return b.String()
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
