package artifacts

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Why not bluemonday alone: bluemonday parses with an HTML tokenizer, which lowercases
// names (viewBox becomes viewbox, clipPath becomes clippath: both stop working in an
// XML document), does not understand namespaces (xlink:href) and treats unknown
// elements' self-closing tags as opening tags. So the SVG is parsed with encoding/xml
// (strict, no DTD, no custom entities, no charset conversion), walked against an
// allow-list of elements and attributes with canonical case, and written out again by
// us. CSS (style attributes and <style> rules) goes through our checks and bluemonday's
// style policy (css.go). Nothing from the input is copied through as markup: every name we
// write comes from the allow-lists below and every value is escaped.

const (
	svgNS   = "http://www.w3.org/2000/svg"
	xlinkNS = "http://www.w3.org/1999/xlink"
	xmlNS   = "http://www.w3.org/XML/1998/namespace"

	maxSVGDepth    = 256
	maxSVGElements = 200_000
	// maxSVGRendered bounds elements after <use> expansion (a <use> bomb nests groups that
	// each use the previous one ten times: a few KiB that render as billions of paths).
	maxSVGRendered = 1_000_000
	maxBigAttr     = 2 << 20 // d, points, and image data: hrefs
	maxSmallAttr   = 16 << 10
)

// svgElements is the allow-list, keyed by canonical (case-sensitive) local name.
var svgElements = map[string]bool{
	"svg": true, "g": true, "path": true, "defs": true, "clipPath": true, "use": true,
	"style": true, "text": true, "tspan": true, "rect": true, "circle": true,
	"line": true, "polyline": true, "polygon": true, "ellipse": true, "image": true,
	"metadata": true, "title": true, "desc": true, "symbol": true,
	"linearGradient": true, "radialGradient": true, "stop": true, "pattern": true,
}

// textOnly are elements whose children may only be text. title and desc are HTML
// integration points when the SVG is inlined in a page, so no markup may appear there.
var textOnly = map[string]bool{"style": true, "title": true, "desc": true}

// keepText are elements whose non-whitespace text is content.
var keepText = map[string]bool{"text": true, "tspan": true, "style": true, "title": true, "desc": true}

type attrKind int

const (
	kindGeom  attrKind = iota // numbers, lengths, path data, transforms
	kindPaint                 // CSS-like values that may contain url(#id)
	kindToken                 // keywords
	kindFont                  // font-family: quoted names
	kindID                    // id
	kindClass                 // class
	kindStyle                 // style
	kindHref                  // href / xlink:href
)

var svgAttrs = map[string]attrKind{
	"id": kindID, "class": kindClass, "style": kindStyle,
	"x": kindGeom, "y": kindGeom, "x1": kindGeom, "y1": kindGeom, "x2": kindGeom, "y2": kindGeom,
	"cx": kindGeom, "cy": kindGeom, "r": kindGeom, "rx": kindGeom, "ry": kindGeom,
	"fx": kindGeom, "fy": kindGeom, "fr": kindGeom, "dx": kindGeom, "dy": kindGeom,
	"width": kindGeom, "height": kindGeom, "d": kindGeom, "points": kindGeom,
	"transform": kindGeom, "viewBox": kindGeom, "offset": kindGeom, "rotate": kindGeom,
	"gradientTransform": kindGeom, "patternTransform": kindGeom, "textLength": kindGeom,
	"font-size": kindGeom, "stroke-width": kindGeom, "stroke-dasharray": kindGeom,
	"stroke-dashoffset": kindGeom, "stroke-miterlimit": kindGeom, "opacity": kindGeom,
	"fill-opacity": kindGeom, "stroke-opacity": kindGeom, "stop-opacity": kindGeom,
	"letter-spacing": kindGeom, "word-spacing": kindGeom,
	"fill": kindPaint, "stroke": kindPaint, "clip-path": kindPaint, "color": kindPaint,
	"stop-color": kindPaint,
	"fill-rule":  kindToken, "clip-rule": kindToken, "stroke-linecap": kindToken,
	"stroke-linejoin": kindToken, "text-anchor": kindToken, "dominant-baseline": kindToken,
	"alignment-baseline": kindToken, "baseline-shift": kindToken, "font-style": kindToken,
	"font-weight": kindToken, "font-variant": kindToken, "visibility": kindToken,
	"display": kindToken, "preserveAspectRatio": kindToken, "version": kindToken,
	"clipPathUnits": kindToken, "gradientUnits": kindToken, "patternUnits": kindToken,
	"patternContentUnits": kindToken, "spreadMethod": kindToken, "lengthAdjust": kindToken,
	"image-rendering": kindToken, "shape-rendering": kindToken, "text-rendering": kindToken,
	"vector-effect": kindToken, "paint-order": kindToken, "overflow": kindToken,
	"type": kindToken, "font-family": kindFont, "href": kindHref,
}

var (
	idRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:\-]{0,255}$`)
	hrefID = regexp.MustCompile(`^#([A-Za-z_][A-Za-z0-9_.:\-]{0,255})$`)
)

// Character sets for attribute kinds, checked byte by byte (path data can be MiBs).
const (
	geomChars  = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.,+- ()%"
	tokenChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.,+- %#/"
	classChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_- "
)

var geomSet, tokenSet, classSet = charSet(geomChars), charSet(tokenChars), charSet(classChars)

func charSet(chars string) (set [256]bool) {
	for i := 0; i < len(chars); i++ {
		set[chars[i]] = true
	}
	return set
}

func onlyChars(v string, set *[256]bool) bool {
	for i := 0; i < len(v); i++ {
		if !set[v[i]] {
			return false
		}
	}
	return true
}

type svgAttr struct{ name, value string }

type svgNode struct {
	name     string // "" for a text node
	text     string
	attrs    []svgAttr
	children []*svgNode
	useRef   string // id a <use> points at
}

// sanitizeSVG returns a sanitized copy of data, the names of what it removed (for the
// warning), or an error when the file is not a well-formed, UTF-8 SVG document.
func sanitizeSVG(data []byte) ([]byte, []string, error) { return sanitizeSVGScoped(data, "") }

// svgPrefix is the id prefix of one artifact: from its name and content, so two charts
// inlined in one page never share an id, and the same file always gets the same one.
func svgPrefix(f sandbox.Artifact) string {
	h := sha256.New()
	h.Write([]byte(f.Name))
	h.Write([]byte{0})
	h.Write(f.Data)
	return "v" + hex.EncodeToString(h.Sum(nil)[:4]) + "-"
}

// urlRef finds the start of a same-document url(#id) reference (the only kind that
// cssValueOK lets through).
var urlRef = regexp.MustCompile(`url\((\s*['"]?)#`)

// sanitizeSVGScoped is sanitizeSVG for a document that will be inlined next to others.
// With a prefix (ending in "-"), every id and every reference to one (href="#id",
// url(#id), #id in a selector) gets the prefix, so documents cannot collide or clobber
// a page's globals by id; the root <svg> gets the id prefix-without-dash (replacing its
// own), and every <style> rule is scoped under it ("*{...}" becomes
// "#<root id> *{...}"), so no rule reaches outside the image.
func sanitizeSVGScoped(data []byte, prefix string) ([]byte, []string, error) {
	if !utf8.Valid(data) {
		return nil, nil, errors.New("not valid UTF-8")
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	// No Entity map: only the five XML entities and character references resolve, so
	// entities declared in a DOCTYPE (billion laughs, external entities) are errors.
	dec.Entity = nil
	// No CharsetReader: a document declaring another encoding is refused.
	dec.CharsetReader = nil

	removed := map[string]bool{}
	styles := &styleCache{}
	var (
		root    *svgNode
		stack   []*svgNode
		ids     = map[string]*svgNode{}
		count   int
		sawRoot bool
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if sawRoot && len(stack) == 0 {
				return nil, nil, errors.New("more than one root element")
			}
			if len(stack) == 0 {
				sawRoot = true
				if t.Name.Local != "svg" || (t.Name.Space != svgNS && t.Name.Space != "") {
					return nil, nil, fmt.Errorf("root element is <%s>, not <svg>", t.Name.Local)
				}
			}
			if len(stack) >= maxSVGDepth {
				return nil, nil, fmt.Errorf("elements nest deeper than %d", maxSVGDepth)
			}
			if count++; count > maxSVGElements {
				return nil, nil, fmt.Errorf("more than %d elements", maxSVGElements)
			}
			parent := (*svgNode)(nil)
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			ok := (t.Name.Space == svgNS || t.Name.Space == "") && svgElements[t.Name.Local] &&
				(parent == nil || !textOnly[parent.name])
			if !ok {
				// matplotlib writes RDF (Dublin Core) inside <metadata>: drop it quietly.
				if parent == nil || parent.name != "metadata" {
					removed["<"+t.Name.Local+">"] = true
				}
				if err := dec.Skip(); err != nil {
					return nil, nil, fmt.Errorf("not well-formed XML: %w", err)
				}
				continue
			}
			n := &svgNode{name: t.Name.Local}
			for _, a := range t.Attr {
				name, value, ok := cleanAttr(n.name, a, styles, removed)
				if !ok {
					continue
				}
				if name == "id" {
					if _, dup := ids[value]; dup {
						removed["duplicate id"] = true
						continue
					}
					ids[value] = n
				}
				if n.name == "use" && (name == "href" || name == "xlink:href") {
					n.useRef = value[1:]
				}
				if prefix != "" {
					value = scopeValue(name, value, prefix)
				}
				n.attrs = append(n.attrs, svgAttr{name, value})
			}
			if parent == nil {
				root = n
			} else {
				parent.children = append(parent.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, nil, errors.New("unbalanced end tag")
			}
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if n.name == "style" {
				var css strings.Builder
				for _, c := range n.children {
					css.WriteString(c.text)
				}
				n.children = nil
				if clean := sanitizeStylesheet(css.String(), removed); clean != "" {
					if prefix != "" {
						clean = scopeStylesheet(clean, prefix)
					}
					n.children = []*svgNode{{text: clean}}
				}
				for _, a := range n.attrs {
					if a.name == "type" && a.value != "text/css" {
						return nil, nil, fmt.Errorf("<style type=%q> is not CSS", a.value)
					}
				}
			}
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, nil, errors.New("text outside the root element")
				}
				continue
			}
			parent := stack[len(stack)-1]
			if !keepText[parent.name] && len(bytes.TrimSpace(t)) > 0 {
				removed["text in <"+parent.name+">"] = true
				continue
			}
			parent.children = append(parent.children, &svgNode{text: string(t)})
		case xml.Comment, xml.ProcInst:
			// Dropped: comments can hide conditional markup for HTML parsers, and
			// processing instructions (xml-stylesheet) can load external resources.
		case xml.Directive:
			// <!DOCTYPE ...> and anything inside it (<!ENTITY ...>) is dropped; entity
			// references it would have defined fail to parse above.
			if bytes.Contains(t, []byte("ENTITY")) {
				removed["<!ENTITY>"] = true
			}
		}
	}
	if root == nil {
		return nil, nil, errors.New("no <svg> element")
	}
	if len(stack) != 0 {
		return nil, nil, errors.New("unclosed elements")
	}
	if n, err := renderedElements(root, ids); err != nil {
		return nil, nil, err
	} else if n > maxSVGRendered {
		return nil, nil, fmt.Errorf("<use> references expand to more than %d elements", maxSVGRendered)
	}
	if prefix != "" {
		// The root's id is the scope of every <style> rule; its own id, if any, goes
		// (nothing can usefully point at the root).
		attrs := []svgAttr{{"id", strings.TrimSuffix(prefix, "-")}}
		for _, a := range root.attrs {
			if a.name != "id" {
				attrs = append(attrs, a)
			}
		}
		root.attrs = attrs
	}
	var out bytes.Buffer
	out.Grow(len(data))
	writeSVG(&out, root, true)
	return out.Bytes(), sortedKeys(removed), nil
}

// scopeValue prefixes an id, and the id an href or a url() reference points at.
func scopeValue(name, value, prefix string) string {
	switch kind := svgAttrs[name]; {
	case name == "id":
		return prefix + value
	case name == "href" || name == "xlink:href":
		if strings.HasPrefix(value, "#") {
			return "#" + prefix + value[1:]
		}
	case kind == kindPaint || kind == kindStyle:
		return urlRef.ReplaceAllString(value, "url(${1}#"+prefix)
	}
	return value
}

// selectorID finds #id in a selector.
var selectorID = regexp.MustCompile(`#([A-Za-z_][A-Za-z0-9_\-]*)`)

// scopeStylesheet rewrites the rules sanitizeStylesheet kept ("sel, sel{decls}\n"):
// each selector is scoped under the root's id and its #ids prefixed, and url(#id)
// references in the declarations follow the ids.
func scopeStylesheet(css, prefix string) string {
	root := "#" + strings.TrimSuffix(prefix, "-")
	var b strings.Builder
	for _, rule := range strings.Split(strings.TrimSuffix(css, "\n"), "\n") {
		sels, decls, ok := strings.Cut(rule, "{")
		if !ok {
			continue
		}
		var scoped []string
		for _, sel := range strings.Split(sels, ",") {
			sel = selectorID.ReplaceAllString(strings.TrimSpace(sel), "#"+prefix+"$1")
			scoped = append(scoped, root+" "+sel)
		}
		b.WriteString(strings.Join(scoped, ", "))
		b.WriteString("{")
		b.WriteString(urlRef.ReplaceAllString(decls, "url(${1}#"+prefix))
		b.WriteString("\n")
	}
	return b.String()
}

// cleanAttr maps an attribute to its canonical output name and checks its value.
func cleanAttr(elem string, a xml.Attr, styles *styleCache, removed map[string]bool) (string, string, bool) {
	var name string
	switch a.Name.Space {
	case "":
		if a.Name.Local == "xmlns" {
			return "", "", false // written by us on the root
		}
		name = a.Name.Local
	case xlinkNS:
		if a.Name.Local != "href" {
			removed["xlink:"+a.Name.Local] = true
			return "", "", false
		}
		name = "xlink:href"
	case xmlNS, "xml":
		if a.Name.Local == "space" && (a.Value == "preserve" || a.Value == "default") {
			return "xml:space", a.Value, true
		}
		removed["xml:"+a.Name.Local] = true
		return "", "", false
	case "xmlns":
		return "", "", false // namespace declarations: written by us on the root
	default:
		removed[a.Name.Local+" (foreign namespace)"] = true
		return "", "", false
	}
	kind, ok := svgAttrs[name]
	if name == "xlink:href" {
		kind, ok = kindHref, true
	}
	if !ok {
		removed[name] = true
		return "", "", false
	}
	// XML attribute-value normalization: whitespace characters become spaces.
	v := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, a.Value)
	limit := maxSmallAttr
	if name == "d" || name == "points" || kind == kindHref {
		limit = maxBigAttr
	}
	if len(v) > limit {
		removed[name+" (longer than limit)"] = true
		return "", "", false
	}
	good := false
	switch kind {
	case kindGeom:
		good = onlyChars(v, &geomSet) && !strings.Contains(strings.ToLower(v), "url")
	case kindToken:
		good = onlyChars(v, &tokenSet) && (name != "type" || elem == "style")
	case kindPaint, kindFont:
		good = cssValueOK(v)
	case kindID:
		good = idRe.MatchString(v)
	case kindClass:
		good = onlyChars(v, &classSet)
	case kindStyle:
		v = styles.sanitize(v, removed)
		good = v != ""
		if !good {
			return "", "", false
		}
	case kindHref:
		good = hrefOK(elem, v)
	}
	if !good {
		removed[name] = true
		return "", "", false
	}
	return name, v, true
}

// hrefOK allows references into the same document on any element, and on <image>
// only an embedded PNG (data:image/png;base64,...) that is a valid PNG.
func hrefOK(elem, v string) bool {
	if hrefID.MatchString(v) {
		return elem != "image"
	}
	const prefix = "data:image/png;base64,"
	if elem != "image" || !strings.HasPrefix(v, prefix) {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(v[len(prefix):], " ", ""))
	if err != nil {
		return false
	}
	_, _, err = checkPNG(raw)
	return err == nil
}

// renderedElements counts elements after expanding <use> references, refusing cycles.
func renderedElements(root *svgNode, ids map[string]*svgNode) (int, error) {
	const visiting = -1
	memo := map[*svgNode]int{}
	var walk func(n *svgNode, depth int) (int, error)
	walk = func(n *svgNode, depth int) (int, error) {
		if v, ok := memo[n]; ok {
			if v == visiting {
				return 0, errors.New("<use> references form a cycle")
			}
			return v, nil
		}
		if depth > 2*maxSVGDepth {
			return 0, errors.New("<use> references nest too deeply")
		}
		memo[n] = visiting
		total := 1
		for _, c := range n.children {
			if c.name == "" {
				continue
			}
			k, err := walk(c, depth+1)
			if err != nil {
				return 0, err
			}
			total = satAdd(total, k)
		}
		if n.useRef != "" {
			if target, ok := ids[n.useRef]; ok {
				k, err := walk(target, depth+1)
				if err != nil {
					return 0, err
				}
				total = satAdd(total, k)
			}
		}
		memo[n] = total
		return total, nil
	}
	return walk(root, 0)
}

func satAdd(a, b int) int {
	if a > maxSVGRendered || b > maxSVGRendered {
		return maxSVGRendered + 1
	}
	return a + b
}

func writeSVG(w *bytes.Buffer, n *svgNode, root bool) {
	if n.name == "" {
		escapeText(w, n.text, false)
		return
	}
	w.WriteByte('<')
	w.WriteString(n.name)
	if root {
		w.WriteString(` xmlns="` + svgNS + `" xmlns:xlink="` + xlinkNS + `"`)
	}
	for _, a := range n.attrs {
		w.WriteByte(' ')
		w.WriteString(a.name)
		w.WriteString(`="`)
		escapeText(w, a.value, true)
		w.WriteByte('"')
	}
	if len(n.children) == 0 {
		w.WriteString("/>")
		return
	}
	w.WriteByte('>')
	for _, c := range n.children {
		writeSVG(w, c, false)
	}
	w.WriteString("</")
	w.WriteString(n.name)
	w.WriteByte('>')
}

func escapeText(w *bytes.Buffer, s string, attr bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			w.WriteString("&amp;")
		case '<':
			w.WriteString("&lt;")
		case '>':
			w.WriteString("&gt;")
		case '"':
			if attr {
				w.WriteString("&quot;")
			} else {
				w.WriteByte(c)
			}
		default:
			w.WriteByte(c)
		}
	}
}

// styleCache remembers sanitized style attributes within one document: matplotlib
// repeats the same few styles on thousands of elements.
type styleCache map[string]styleResult

type styleResult struct {
	clean   string
	removed []string
}

func (c *styleCache) sanitize(v string, removed map[string]bool) string {
	if *c == nil {
		*c = styleCache{}
	}
	if r, ok := (*c)[v]; ok {
		for _, k := range r.removed {
			removed[k] = true
		}
		return r.clean
	}
	local := map[string]bool{}
	clean := sanitizeDeclarations(v, local)
	for k := range local {
		removed[k] = true
	}
	if len(*c) < 4096 {
		(*c)[v] = styleResult{clean, sortedKeys(local)}
	}
	return clean
}
