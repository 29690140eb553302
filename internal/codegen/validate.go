package codegen

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Validation of model-written Python happens in Go, before anything runs, with a
// tokenizer (not a parser): it finds unterminated strings and unbalanced brackets,
// reads every import statement, and flags forbidden names and calls anywhere in the
// code, including inside f-string replacement fields. It is deliberately conservative
// and syntactic: it is a first line that rejects obviously unwanted programs with a
// reason a model (or a person) can act on. The sandbox (no network, a scratch working
// directory, resource limits) remains the security boundary; validation does not try to
// catch obfuscation such as getattr with computed strings. Python itself is never run
// to check code before execution. Full syntax errors (bad indentation, a missing
// colon) are left to the interpreter and come back as a traceback for repair.

// AllowedModules are the top-level modules model code may import. The third-party ones
// must also be installed in the pool (Input.Packages) when that list is given.
var AllowedModules = []string{
	// Third-party, as preinstalled in the sandbox image.
	"matplotlib", "numpy", "pandas", "seaborn", "plotly", "mpl_toolkits",
	// Standard library, computation only.
	"math", "statistics", "datetime", "collections", "itertools", "json", "re", "random",
	"textwrap", "typing", "dataclasses", "functools",
	// Also allowed: pure computation, commonly written by models.
	"warnings", "calendar", "string", "operator", "copy", "decimal", "fractions", "enum",
}

var thirdParty = map[string]string{
	"matplotlib": "matplotlib", "mpl_toolkits": "matplotlib", "numpy": "numpy",
	"pandas": "pandas", "seaborn": "seaborn", "plotly": "plotly",
}

// forbiddenNames may not appear anywhere as a name (calls, attributes, references).
var forbiddenNames = map[string]string{
	"eval": "evaluates strings as code", "exec": "runs strings as code", "compile": "compiles strings to code",
	"execfile": "runs files as code", "__import__": "imports modules dynamically", "breakpoint": "starts a debugger",
	"globals": "exposes the interpreter's globals", "input": "reads from stdin, which the sandbox does not provide",
	"__builtins__": "reaches the builtins", "__loader__": "reaches the import system", "__spec__": "reaches the import system",
	"__subclasses__": "walks the class hierarchy (a sandbox-escape pattern)", "__globals__": "reaches a function's globals",
	"__code__": "reaches code objects", "__bases__": "walks the class hierarchy", "__mro__": "walks the class hierarchy",
	"__getattribute__": "bypasses attribute access", "__reduce__": "is pickle machinery", "__reduce_ex__": "is pickle machinery",
	"__class__": "walks the class hierarchy", "__dict__": "reaches object internals",
	"system": "runs shell commands", "popen": "runs shell commands", "Popen": "runs processes",
	"subprocess": "runs processes", "socket": "opens network connections", "os": "reaches the operating system",
	"sys": "reaches the interpreter", "shutil": "manipulates files", "ctypes": "calls native code",
	"importlib": "imports modules dynamically", "pickle": "deserializes code", "marshal": "deserializes code",
	"urllib": "reaches the network", "urllib3": "reaches the network", "requests": "reaches the network",
	"httpx": "reaches the network", "aiohttp": "reaches the network", "pathlib": "manipulates files",
}

// loaders read a path given as their first argument: only the data file is allowed.
var loaders = map[string]bool{
	"open": true, "read_csv": true, "read_table": true, "read_excel": true, "read_json": true,
	"read_parquet": true, "read_html": true, "read_pickle": true, "read_sql": true, "read_fwf": true,
	"read_xml": true, "read_feather": true, "read_hdf": true, "read_orc": true, "read_sas": true,
	"read_stata": true, "loadtxt": true, "genfromtxt": true, "fromfile": true, "load": true,
}

// Problem is one reason code was rejected.
type Problem struct {
	Line      int    // 1-based
	Construct string // the offending code, e.g. "import subprocess", "open(", "eval"
	Reason    string
}

// ValidationError lists why code was rejected before running.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var parts []string
	for i, p := range e.Problems {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(e.Problems)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("line %d: %s: %s", p.Line, p.Construct, p.Reason))
	}
	return "the code was rejected before running: " + strings.Join(parts, "; ")
}

// Validate checks code before it runs; packages are the pool's installed libraries
// (nil: not checked). It returns nil or a *ValidationError.
func Validate(code string, packages []string) error {
	if strings.TrimSpace(code) == "" {
		return &ValidationError{Problems: []Problem{{Line: 1, Construct: "(empty)", Reason: "there is no code"}}}
	}
	toks, problems := tokenize(code, 1)
	v := &validator{packages: packages}
	v.problems = problems
	v.check(toks)
	if len(v.problems) == 0 {
		return nil
	}
	sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].Line < v.problems[j].Line })
	return &ValidationError{Problems: v.problems}
}

type tokKind int

const (
	tName tokKind = iota
	tNumber
	tString
	tOp
	tNewline // end of a logical line
)

type token struct {
	kind    tokKind
	text    string // the source text (for strings: including prefix and quotes)
	value   string // for strings: the content between the quotes
	fstring bool
	line    int
}

// tokenize splits Python source into tokens, reporting unterminated strings,
// unbalanced brackets and characters Python does not allow.
func tokenize(src string, firstLine int) ([]token, []Problem) {
	var toks []token
	var probs []Problem
	type open struct {
		ch   byte
		line int
	}
	var stack []open
	line := firstLine
	emitNewline := func() {
		if len(stack) == 0 && len(toks) > 0 && toks[len(toks)-1].kind != tNewline {
			toks = append(toks, token{kind: tNewline, line: line})
		}
	}
	atLineStart := true
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			emitNewline()
			line++
			i++
			atLineStart = true
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f':
			i++
			continue
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case c == '\\':
			if i+1 < len(src) && src[i+1] == '\n' {
				i += 2
				line++
				continue
			}
			if i+2 < len(src) && src[i+1] == '\r' && src[i+2] == '\n' {
				i += 3
				line++
				continue
			}
			probs = append(probs, Problem{line, `\`, "a backslash outside a string must end the line"})
			i++
			continue
		}
		wasLineStart := atLineStart
		atLineStart = false
		// Names, keywords, and string prefixes.
		r, size := utf8.DecodeRuneInString(src[i:])
		if r == '_' || unicode.IsLetter(r) {
			j := i + size
			for j < len(src) {
				r2, s2 := utf8.DecodeRuneInString(src[j:])
				if r2 != '_' && !unicode.IsLetter(r2) && !unicode.IsDigit(r2) {
					break
				}
				j += s2
			}
			word := src[i:j]
			if j < len(src) && (src[j] == '"' || src[j] == '\'') && isStringPrefix(word) {
				t, end, lines, p := scanString(src, i, j, line)
				if p != nil {
					probs = append(probs, *p)
				}
				toks = append(toks, t)
				line += lines
				i = end
				continue
			}
			toks = append(toks, token{kind: tName, text: word, line: line})
			i = j
			continue
		}
		if c == '"' || c == '\'' {
			t, end, lines, p := scanString(src, i, i, line)
			if p != nil {
				probs = append(probs, *p)
			}
			toks = append(toks, t)
			line += lines
			i = end
			continue
		}
		if c >= '0' && c <= '9' || (c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9') {
			j := i + 1
			for j < len(src) {
				d := src[j]
				if d == '_' || d == '.' || (d >= '0' && d <= '9') || (d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') {
					j++
					continue
				}
				if (d == '+' || d == '-') && (src[j-1] == 'e' || src[j-1] == 'E') && !strings.ContainsAny(src[i:j], "xX") {
					j++
					continue
				}
				break
			}
			toks = append(toks, token{kind: tNumber, text: src[i:j], line: line})
			i = j
			continue
		}
		switch c {
		case '(', '[', '{':
			stack = append(stack, open{c, line})
		case ')', ']', '}':
			want := map[byte]byte{')': '(', ']': '[', '}': '{'}[c]
			if len(stack) == 0 {
				probs = append(probs, Problem{line, string(c), "closes a bracket that was never opened"})
			} else if top := stack[len(stack)-1]; top.ch != want {
				probs = append(probs, Problem{line, string(c), fmt.Sprintf("does not match the %q opened on line %d", string(top.ch), top.line)})
				stack = stack[:len(stack)-1]
			} else {
				stack = stack[:len(stack)-1]
			}
		case '!':
			if wasLineStart {
				end := strings.IndexByte(src[i:], '\n')
				if end < 0 {
					end = len(src) - i
				}
				probs = append(probs, Problem{line, strings.TrimSpace(src[i : i+end]), "shell commands (IPython '!') are not allowed; the libraries are already installed"})
				i += end
				continue
			}
			if i+1 >= len(src) || src[i+1] != '=' {
				probs = append(probs, Problem{line, "!", "is not valid Python here"})
			}
		case '$', '?', '`':
			probs = append(probs, Problem{line, string(c), "is not valid Python outside a string"})
		}
		if r >= utf8.RuneSelf {
			probs = append(probs, Problem{line, string(r), "is not valid Python outside a string"})
			i += size
			continue
		}
		toks = append(toks, token{kind: tOp, text: string(c), line: line})
		i++
	}
	emitNewline()
	for _, o := range stack {
		probs = append(probs, Problem{o.line, string(o.ch), "is never closed"})
	}
	return toks, probs
}

func isStringPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "r", "u", "b", "f", "br", "rb", "fr", "rf", "t", "tr", "rt":
		return true
	}
	return false
}

// scanString reads a string literal whose prefix starts at start and quote at q.
// It returns the token, the end offset, the newlines inside and a problem if any.
func scanString(src string, start, q, line int) (token, int, int, *Problem) {
	prefix := strings.ToLower(src[start:q])
	raw := strings.Contains(prefix, "r")
	quote := src[q]
	triple := strings.HasPrefix(src[q:], strings.Repeat(string(quote), 3))
	open := 1
	if triple {
		open = 3
	}
	i := q + open
	lines := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\\':
			if i+1 < len(src) && src[i+1] == '\n' {
				lines++
			}
			i += 2
			_ = raw // a backslash escapes the quote even in raw strings
			continue
		case c == '\n':
			if !triple {
				return token{kind: tString, text: src[start:i], line: line},
					i, lines, &Problem{line, shorten(src[start:i]), "this string is never closed on its line"}
			}
			lines++
		case c == quote:
			if !triple {
				return token{kind: tString, text: src[start : i+1], value: src[q+1 : i], fstring: strings.ContainsAny(prefix, "ft"), line: line}, i + 1, lines, nil
			}
			if strings.HasPrefix(src[i:], strings.Repeat(string(quote), 3)) {
				return token{kind: tString, text: src[start : i+3], value: src[q+3 : i], fstring: strings.ContainsAny(prefix, "ft"), line: line}, i + 3, lines, nil
			}
		}
		i++
	}
	return token{kind: tString, text: src[start:], line: line}, len(src), lines,
		&Problem{line, shorten(src[start:]), "this string is never closed"}
}

func shorten(s string) string {
	s = strings.SplitN(s, "\n", 2)[0]
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

type validator struct {
	packages []string
	problems []Problem
}

func (v *validator) add(line int, construct, reason string) {
	v.problems = append(v.problems, Problem{Line: line, Construct: construct, Reason: reason})
}

func (v *validator) check(toks []token) {
	// Statements: logical lines split at ';' and after a compound header's ':'.
	var stmt []token
	flush := func() {
		if len(stmt) > 0 {
			v.statement(stmt)
		}
		stmt = nil
	}
	depth := 0
	for _, t := range toks {
		switch {
		case t.kind == tNewline:
			flush()
			depth = 0
			continue
		case t.kind == tOp && strings.Contains("([{", t.text):
			depth++
		case t.kind == tOp && strings.Contains(")]}", t.text):
			depth--
		case t.kind == tOp && t.text == ";" && depth == 0:
			flush()
			continue
		case t.kind == tOp && t.text == ":" && depth == 0 && len(stmt) > 0 && isCompound(stmt[0].text):
			stmt = append(stmt, t)
			flush()
			continue
		}
		stmt = append(stmt, t)
	}
	flush()
	for i, t := range toks {
		switch t.kind {
		case tName:
			attr := i > 0 && toks[i-1].text == "."
			if why, bad := forbiddenNames[t.text]; bad && !(attr && t.text == "compile") { // re.compile is fine
				// Keyword arguments and attributes of our own objects named like these
				// (e.g. ax.set(title=...)) are fine; the names above are not chart vocabulary.
				if !(i+1 < len(toks) && toks[i+1].text == "=" && !(i+2 < len(toks) && toks[i+2].text == "=")) {
					v.add(t.line, t.text, "is not allowed: it "+why)
				}
			}
			if loaders[t.text] && i+1 < len(toks) && toks[i+1].text == "(" {
				v.loader(toks, i)
			}
		case tString:
			if t.fstring {
				v.fstring(t)
			}
			if i > 0 && toks[i-1].text == "(" && isURL(t.value) {
				v.add(t.line, shorten(t.text), "reads from the network, which the sandbox does not have; use the data in `df`")
			}
		}
	}
}

func isCompound(w string) bool {
	switch w {
	case "if", "elif", "else", "try", "except", "finally", "for", "while", "with", "def", "class", "async":
		return true
	}
	return false
}

func (v *validator) statement(s []token) {
	if s[0].kind != tName {
		return
	}
	switch s[0].text {
	case "import":
		// import a.b as c, d
		expectName := true
		for i := 1; i < len(s); i++ {
			t := s[i]
			if t.kind == tName && expectName {
				v.module(t.line, "import "+dotted(s[i:]), t.text)
				expectName = false
				continue
			}
			if t.text == "," {
				expectName = true
			}
		}
	case "from":
		if len(s) < 2 || s[1].kind != tName {
			dots := ""
			for _, t := range s[1:] {
				if t.text != "." {
					break
				}
				dots += "."
			}
			v.add(s[0].line, "from "+dots, "relative imports are not allowed")
			return
		}
		v.module(s[1].line, "from "+dotted(s[1:])+" import", s[1].text)
	default:
		for _, t := range s[1:] {
			if t.kind == tName && t.text == "import" {
				v.add(t.line, "import", "is not allowed in this position; put imports at the start of a line")
			}
		}
	}
}

// dotted reads "a.b.c" at the start of s.
func dotted(s []token) string {
	var b strings.Builder
	wantName := true
	for _, t := range s {
		switch {
		case wantName && t.kind == tName:
			b.WriteString(t.text)
			wantName = false
		case !wantName && t.text == ".":
			b.WriteString(".")
			wantName = true
		default:
			return b.String()
		}
	}
	return b.String()
}

func (v *validator) module(line int, construct, top string) {
	if !slices.Contains(AllowedModules, top) {
		v.add(line, construct, fmt.Sprintf("module %q is not allowed; use matplotlib, numpy, pandas, seaborn or plotly and the standard modules %s",
			top, strings.Join(AllowedModules[6:], ", ")))
		return
	}
	if pkg, ok := thirdParty[top]; ok && len(v.packages) > 0 && !slices.Contains(v.packages, pkg) {
		v.add(line, construct, fmt.Sprintf("%s is not installed in this sandbox pool (installed: %s)", pkg, strings.Join(v.packages, ", ")))
	}
}

// loader checks the first argument of open(), read_csv() and similar.
func (v *validator) loader(toks []token, i int) {
	name := toks[i].text
	if i > 0 && toks[i-1].text == "." && name == "open" {
		v.add(toks[i].line, "."+name+"(", "is not allowed: only the built-in open() of "+DataFile+" may read files")
		return
	}
	if name == "load" && !(i > 1 && toks[i-1].text == "." && toks[i-2].text == "np") {
		return // json.load(f) and other loads of objects, not paths
	}
	if i > 0 && toks[i-1].text != "." && name != "open" {
		return // a user function named like a loader
	}
	if i+2 >= len(toks) {
		return
	}
	arg := toks[i+2]
	if arg.kind == tString {
		if !isDataFile(arg.value) {
			v.add(arg.line, name+"("+shorten(arg.text), fmt.Sprintf("only %s can be read; the request's data is already loaded as `df`", DataFile))
		}
	} else if name == "open" && !(arg.kind == tName && arg.text == "DATA_PATH" && i+3 < len(toks) && (toks[i+3].text == ")" || toks[i+3].text == ",")) {
		// DATA_PATH is the runner's name for the data file's path.
		v.add(toks[i].line, "open(", fmt.Sprintf("open() must name %q (or DATA_PATH) literally; the data is already loaded as `df`", DataFile))
	}
	if name == "open" {
		v.openMode(toks, i)
	}
}

// openMode rejects open(..., "w") and the like.
func (v *validator) openMode(toks []token, i int) {
	depth := 0
	args := 0
	for j := i + 1; j < len(toks); j++ {
		t := toks[j]
		switch {
		case t.kind == tOp && strings.Contains("([{", t.text):
			depth++
		case t.kind == tOp && strings.Contains(")]}", t.text):
			depth--
			if depth == 0 {
				return
			}
		case t.kind == tOp && t.text == "," && depth == 1:
			args++
		case t.kind == tString && depth == 1 && (args == 1 || (j >= 2 && toks[j-1].text == "=" && toks[j-2].text == "mode")):
			if strings.ContainsAny(t.value, "wax+") {
				v.add(t.line, "open(..., "+t.text+")", "files may only be opened for reading")
			}
		}
	}
}

func isDataFile(p string) bool {
	p = strings.TrimPrefix(strings.TrimSpace(p), "./")
	return p == DataFile
}

func isURL(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, scheme := range []string{"http://", "https://", "ftp://", "file://", "s3://", "gs://", "gcs://", "az://", "hdfs://"} {
		if strings.HasPrefix(s, scheme) {
			return true
		}
	}
	return false
}

// fstring checks the replacement fields of an f-string like code.
func (v *validator) fstring(t token) {
	s := t.value
	for i := 0; i < len(s); i++ {
		if s[i] != '{' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '{' {
			i++
			continue
		}
		depth, j := 1, i+1
		for ; j < len(s) && depth > 0; j++ {
			switch s[j] {
			case '{':
				depth++
			case '}':
				depth--
			}
		}
		inner := s[i+1 : max(i+1, j-1)]
		line := t.line + strings.Count(t.text[:strings.Index(t.text, s)+i], "\n")
		toks, _ := tokenize(inner, line)
		sub := &validator{packages: v.packages}
		sub.check(toks)
		v.problems = append(v.problems, sub.problems...)
		i = j - 1
	}
}
