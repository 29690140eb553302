package codegen

import (
	"errors"
	"regexp"
	"strings"
)

// ErrNoCode means a model's answer held nothing that looks like Python.
var ErrNoCode = errors.New("the answer contains no Python code")

var fence = regexp.MustCompile("(?m)^[ \t]*(```+|~~~+)[ \t]*([A-Za-z0-9_+.-]*)[^\n]*$")

type block struct {
	lang string
	code string
}

// Extract takes the Python program out of a model's answer. It copes with prose
// around the code, several fenced blocks (it takes the largest python-tagged one, else
// the largest untagged one, else the largest), an unterminated fence (a truncated
// answer), and no fences at all (it drops leading and trailing prose lines). It then
// adds the conventional imports (plt, np, pd, sns, px, go) that the code uses without
// importing.
func Extract(answer string) (string, error) {
	answer = strings.ReplaceAll(answer, "\r\n", "\n")
	blocks := fencedBlocks(answer)
	var code string
	if len(blocks) > 0 {
		code = pick(blocks)
	} else {
		code = stripProse(answer)
	}
	code = strings.Trim(code, "\n")
	if strings.TrimSpace(code) == "" || !looksLikePython(code) {
		return "", ErrNoCode
	}
	return addImports(dropNotebookLines(dedent(code))), nil
}

var notebookLine = regexp.MustCompile(`^\s*(%|!\s*(pip|conda)\s+install\b)`)

// dropNotebookLines removes IPython magics ("%matplotlib inline") and package installs
// ("!pip install seaborn"): the libraries are preinstalled and the runner is plain Python.
func dropNotebookLines(code string) string {
	lines := strings.Split(code, "\n")
	out := lines[:0]
	for _, l := range lines {
		if !notebookLine.MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func fencedBlocks(s string) []block {
	locs := fence.FindAllStringSubmatchIndex(s, -1)
	var out []block
	for i := 0; i < len(locs); i++ {
		open := locs[i]
		marker := s[open[2]:open[3]]
		lang := strings.ToLower(s[open[4]:open[5]])
		start := open[1] + 1
		if start > len(s) {
			start = len(s)
		}
		// The closing fence is the next fence line with the same marker kind and no tag.
		end, next := len(s), len(locs)
		for j := i + 1; j < len(locs); j++ {
			m := s[locs[j][2]:locs[j][3]]
			if m[0] == marker[0] && len(m) >= len(marker) && locs[j][4] == locs[j][5] {
				end, next = locs[j][0], j
				break
			}
		}
		out = append(out, block{lang: lang, code: s[start:end]})
		i = next
	}
	return out
}

func pick(blocks []block) string {
	best := func(ok func(block) bool) (string, bool) {
		found, code := false, ""
		for _, b := range blocks {
			if ok(b) && len(strings.TrimSpace(b.code)) > len(strings.TrimSpace(code)) {
				found, code = true, b.code
			}
		}
		return code, found
	}
	if c, ok := best(func(b block) bool { return b.lang == "python" || b.lang == "py" || b.lang == "python3" }); ok {
		return c
	}
	if c, ok := best(func(b block) bool { return b.lang == "" && looksLikePython(b.code) }); ok {
		return c
	}
	c, _ := best(func(b block) bool {
		return b.lang != "bash" && b.lang != "sh" && b.lang != "shell" && b.lang != "console" && b.lang != "json" && b.lang != "text"
	})
	return c
}

var codeLine = regexp.MustCompile(`^\s*(#|@|import\s|from\s+\S+\s+import\b|def\s|class\s|for\s|while\s|if\s|elif\s|else\s*:|try\s*:|except\b|finally\s*:|with\s|return\b|print\(|[A-Za-z_][A-Za-z0-9_.]*\s*(\[[^\]]*\]\s*)?(=|\+=|-=|\*=|/=)[^=]|[A-Za-z_][A-Za-z0-9_.]*\(|[)\]}],?\s*$|["'][^"']*["']\s*[:,]|[-0-9.]+,)`)

// looksLikeCode says whether a line reads as Python rather than prose.
func looksLikeCode(line string) bool {
	t := strings.TrimSpace(line)
	if t == "" {
		return false
	}
	if codeLine.MatchString(t) {
		// "Here is the code:" or "Note: this uses plt." are prose even if they start like code.
		return !proseLine(t)
	}
	return false
}

var proseWords = regexp.MustCompile(`^(Here|This|The|Note|Sure|I |I'|Below|Above|First|Then|Finally|It |You|We |Let|In this|To |Certainly|Of course)`)

func proseLine(t string) bool {
	if proseWords.MatchString(t) && !strings.ContainsAny(t, "=()[]") {
		return true
	}
	return strings.HasSuffix(t, ":") && !strings.ContainsAny(t, "()[]=") && strings.Count(t, " ") >= 2 &&
		!regexp.MustCompile(`^(def|class|for|while|if|elif|else|try|except|finally|with)\b`).MatchString(t)
}

// stripProse keeps the lines from the first code line to the last code line (indented
// and blank lines inside are kept).
func stripProse(s string) string {
	lines := strings.Split(s, "\n")
	first, last := -1, -1
	for i, l := range lines {
		if looksLikeCode(l) {
			if first < 0 {
				first = i
			}
			last = i
		} else if first >= 0 && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && strings.TrimSpace(l) != "" {
			last = i // a continuation or block body
		}
	}
	if first < 0 {
		return ""
	}
	return strings.Join(lines[first:last+1], "\n")
}

func looksLikePython(code string) bool {
	n := 0
	for _, l := range strings.Split(code, "\n") {
		if looksLikeCode(l) {
			n++
		}
	}
	return n > 0
}

// dedent removes indentation common to every non-blank line (code quoted inside a
// list item in the answer).
func dedent(code string) string {
	lines := strings.Split(code, "\n")
	prefix := ""
	first := true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		ind := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = ind, false
			continue
		}
		for !strings.HasPrefix(ind, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	if prefix == "" {
		return code
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, prefix)
	}
	return strings.Join(lines, "\n")
}

type conventionalImport struct {
	use     *regexp.Regexp // the alias in use
	has     *regexp.Regexp // an import that binds it
	import_ string
}

var conventionalImports = []conventionalImport{
	{regexp.MustCompile(`\bplt\.`), regexp.MustCompile(`(?m)^\s*(import\s+matplotlib\.pyplot\s+as\s+plt\b|from\s+matplotlib\s+import\s+.*\bpyplot\s+as\s+plt\b)`), "import matplotlib.pyplot as plt"},
	{regexp.MustCompile(`\bnp\.`), regexp.MustCompile(`(?m)^\s*import\s+numpy\s+as\s+np\b`), "import numpy as np"},
	{regexp.MustCompile(`\bpd\.`), regexp.MustCompile(`(?m)^\s*import\s+pandas\s+as\s+pd\b`), "import pandas as pd"},
	{regexp.MustCompile(`\bsns\.`), regexp.MustCompile(`(?m)^\s*import\s+seaborn\s+as\s+sns\b`), "import seaborn as sns"},
	{regexp.MustCompile(`\bpx\.`), regexp.MustCompile(`(?m)^\s*import\s+plotly\.express\s+as\s+px\b`), "import plotly.express as px"},
	{regexp.MustCompile(`\bgo\.(Figure|Bar|Scatter|Pie|Heatmap|Box|Histogram|Layout)\b`), regexp.MustCompile(`(?m)^\s*(import\s+plotly\.graph_objects\s+as\s+go\b|from\s+plotly\s+import\s+graph_objects\s+as\s+go\b)`), "import plotly.graph_objects as go"},
}

// addImports prepends the conventional imports the code uses but does not make. Uses
// inside strings and comments may add an unneeded import, which is harmless.
func addImports(code string) string {
	var add []string
	for _, ci := range conventionalImports {
		if ci.use.MatchString(code) && !ci.has.MatchString(code) {
			add = append(add, ci.import_)
		}
	}
	if len(add) == 0 {
		return code
	}
	return strings.Join(add, "\n") + "\n" + code
}
