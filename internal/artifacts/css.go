package artifacts

import (
	"html"
	"regexp"
	"sort"
	"strings"

	"github.com/microcosm-cc/bluemonday"
)

// CSS in SVG (style attributes and <style> elements) is the one place where an SVG can
// still reach the network or run script-like constructs once elements and attributes
// are allow-listed: url(http://...), @import, expression(), -moz-binding, escapes that
// spell any of these. Declarations are split and checked by us first (property
// allow-list, cssValueOK), then sanitized by bluemonday's style policy with the same
// rules (it parses them with douceur), then checked again: bluemonday tests a value
// after decoding CSS escapes but emits the original text, so an escaped value could
// otherwise pass. Anything containing a backslash is refused up front.

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
	// Quotes must pair up, so a value cannot open a string that swallows what follows.
	var quote byte
	for i := 0; i < len(v); i++ {
		switch {
		case quote == 0 && (v[i] == '\'' || v[i] == '"'):
			quote = v[i]
		case quote != 0 && v[i] == quote:
			quote = 0
		}
	}
	if quote != 0 {
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
//
// The list is first split and checked by us (split on ';', cut on the first ':', the
// property allow-listed, the value checked by cssValueOK), so bluemonday's parser only
// ever sees declarations of that simple shape; then bluemonday's style policy is
// applied to them, and its output is checked once more. A ';' inside a quoted value
// splits it into pieces that fail the checks: such declarations are dropped, never
// passed through.
func sanitizeDeclarations(decls string, removed map[string]bool) string {
	if strings.ContainsAny(decls, "\\<>{}") || !isASCII(decls) {
		removed["style (escape or non-ASCII)"] = true
		return ""
	}
	var pre []string
	for _, d := range strings.Split(decls, ";") {
		if strings.TrimSpace(d) == "" {
			continue
		}
		prop, val, ok := strings.Cut(d, ":")
		prop, val = strings.ToLower(strings.TrimSpace(prop)), strings.TrimSpace(val)
		if !ok || !cssPropertySet[prop] || !cssValueOK(val) {
			removed["css "+cssName(prop)] = true
			continue
		}
		pre = append(pre, prop+": "+val)
	}
	if len(pre) == 0 {
		return ""
	}
	out := stylePolicy.Sanitize(`<span style="` + html.EscapeString(strings.Join(pre, "; ")) + `">x</span>`)
	const prefix, suffix = `<span style="`, `">x</span>`
	if !strings.HasPrefix(out, prefix) || !strings.HasSuffix(out, suffix) {
		return ""
	}
	clean := html.UnescapeString(out[len(prefix) : len(out)-len(suffix)])
	// Re-check what bluemonday emitted (it validates decoded values, emits originals).
	var kept []string
	for _, d := range strings.Split(clean, "; ") {
		prop, val, ok := strings.Cut(d, ": ")
		if !ok || !cssPropertySet[prop] || !cssValueOK(val) {
			removed["css "+cssName(prop)] = true
			continue
		}
		kept = append(kept, prop+": "+val)
	}
	return strings.Join(kept, "; ")
}

// cssName bounds a property name quoted in a warning.
func cssName(p string) string {
	if len(p) > 40 || !isASCII(p) {
		return "(invalid property)"
	}
	return p
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
// as above. At-rules (@import, @font-face, @media, ...) and anything with nested or
// unbalanced braces are dropped. The stylesheet is split by us rather than parsed with
// douceur's stylesheet parser, which loops forever on some inputs (";*{fill: red}").
func sanitizeStylesheet(text string, removed map[string]bool) string {
	if strings.ContainsAny(text, "\\<") || !isASCII(text) || strings.Contains(text, "/*") {
		removed["style (escape, comment or non-ASCII)"] = true
		return ""
	}
	var b strings.Builder
	rest := text
	for {
		rest = strings.TrimLeft(rest, "; \t\r\n")
		if rest == "" {
			break
		}
		if rest[0] == '@' {
			name := rest
			if i := strings.IndexAny(name, " \t\r\n;{("); i >= 0 {
				name = name[:i]
			}
			removed["css "+cssName(name)] = true
			semi, brace := strings.IndexByte(rest, ';'), strings.IndexByte(rest, '{')
			if brace < 0 || (semi >= 0 && semi < brace) { // @import ...; @charset ...;
				if semi < 0 {
					break
				}
				rest = rest[semi+1:]
				continue
			}
			depth, i := 0, brace // @media ... { ... { ... } }: skip the balanced block
			for ; i < len(rest); i++ {
				if rest[i] == '{' {
					depth++
				} else if rest[i] == '}' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			if i >= len(rest) {
				removed["css (unbalanced braces)"] = true
				break
			}
			rest = rest[i+1:]
			continue
		}
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			removed["css (unbalanced braces)"] = true
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			removed["css (unbalanced braces)"] = true
			break
		}
		prelude, body := strings.TrimSpace(rest[:open]), rest[open+1:open+end]
		rest = rest[open+end+1:]
		if strings.Contains(body, "{") {
			removed["css (unbalanced braces)"] = true
			continue
		}
		var sels []string
		for _, sel := range strings.Split(prelude, ",") {
			sel = strings.TrimSpace(sel)
			if selectorOK.MatchString(sel) {
				sels = append(sels, sel)
			} else {
				removed["css selector"] = true
			}
		}
		if len(sels) == 0 {
			continue
		}
		clean := sanitizeDeclarations(body, removed)
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
