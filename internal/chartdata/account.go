package chartdata

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file is the independent check of a chart against the prompt's own words. It
// does not use detection's reading of the prompt (internal/detect), which produced the
// chart's data: whatever that parser missed, a check built on it would miss too. It
// scans the raw text with a few simple rules of its own and accounts for every number
// and every quoted or capitalised label:
//
//   - a number is plotted (a value, an x value, a box's statistics, a pie's share, a
//     histogram's range), or written in the chart's text (title, axis labels, series
//     names, categories: a year in a series name), or explained by its words: an
//     ordinal ("2nd"), part of a name ("Q1", "HbA1c", "COVID-19"), a count of the
//     chart's parts ("3 groups", "10 bins", "top 5"), a size ("300 dpi", "800x600"),
//     a time span without data ("over the last 12 months");
//   - a label (in quotes, or a capitalised word that does not start a sentence) is a
//     word of the chart's text.
//
// And, when the prompt gives numbers, every value the chart plots must be one of them:
// a chart of made-up numbers never passes.

// PromptNumber is one number as the prompt writes it.
type PromptNumber struct {
	Text    string  // as written ("1,200", "85%")
	Value   float64 // 1200, 85
	Percent bool
	// Parts are the two numbers a decimal comma may separate ("12,5" is 12.5 in
	// German and French, or 12 and 5 in a list): either reading accounts for it.
	Parts []float64
	// Explained says why the number is not data ("ordinal", "count", ...); empty for
	// data.
	Explained string
}

// PromptScan is what the scanner found in a prompt.
type PromptScan struct {
	Numbers []PromptNumber
	// Labels are quoted phrases and capitalised words (not starting a sentence).
	Labels []string
}

// Data are the numbers that are data (not explained).
func (p PromptScan) Data() []PromptNumber {
	var out []PromptNumber
	for _, n := range p.Numbers {
		if n.Explained == "" {
			out = append(out, n)
		}
	}
	return out
}

// Accounting is the outcome of Account.
type Accounting struct {
	Scan PromptScan
	// MissingNumbers are numbers of the prompt the chart neither plots nor writes.
	MissingNumbers []string
	// MissingLabels are labels of the prompt the chart's text does not contain.
	MissingLabels []string
	// Invented are values the chart plots that the prompt does not give.
	Invented []float64
}

// OK reports whether everything was accounted for.
func (a Accounting) OK() bool {
	return len(a.MissingNumbers) == 0 && len(a.MissingLabels) == 0 && len(a.Invented) == 0
}

// Message says what was not accounted for, naming the numbers and labels; empty when
// everything was.
func (a Accounting) Message() string {
	var parts []string
	if len(a.MissingNumbers) > 0 {
		parts = append(parts, fmt.Sprintf("the request gives %s, which the chart neither plots nor labels", strings.Join(cut(a.MissingNumbers), ", ")))
	}
	if len(a.MissingLabels) > 0 {
		parts = append(parts, fmt.Sprintf("the request names %s, which the chart does not show", quoteList(a.MissingLabels)))
	}
	if len(a.Invented) > 0 {
		parts = append(parts, fmt.Sprintf("the chart plots %s, which the request does not give", numList(a.Invented)))
	}
	return strings.Join(parts, "; ")
}

func cut(v []string) []string {
	if len(v) > 10 {
		return append(slices.Clone(v[:10]), fmt.Sprintf("… (%d more)", len(v)-10))
	}
	return v
}

// AccountOptions change what Account checks.
type AccountOptions struct {
	// Attached is set when the request attached data (spec.data): the chart's values
	// then come from it, and are not required to be the prompt's.
	Attached bool
}

// Account checks charts against the prompt's raw text (see the top of this file).
func Account(prompt string, charts []Chart, opt AccountOptions) Accounting {
	scan := ScanPrompt(prompt)
	acc := Accounting{Scan: scan}
	if len(charts) == 0 {
		for _, n := range scan.Data() {
			acc.MissingNumbers = append(acc.MissingNumbers, n.Text)
		}
		acc.MissingLabels = scan.Labels
		return acc
	}
	c := primary(charts)
	group := []Chart{c}
	if c.Type == TypePie {
		group = sameFigure(charts, c)
	}
	// Every text of every chart counts (a title may sit on another axes).
	words, textNums := chartText(charts)
	var main []Series
	for _, g := range group {
		main = append(main, g.mainSeries()...)
	}
	plotted := plottedValues(c.Type, main)

	data := scan.Data()
	used := make([]bool, len(data))
	shown := func(v float64, pct bool) bool {
		return containsNum(textNums, v, false) || containsNum(plotted, v, false) ||
			(pct && containsNum(plotted, v/100, false))
	}
	for i, n := range data {
		if shown(n.Value, n.Percent) || (len(n.Parts) == 2 && shown(n.Parts[0], false) && shown(n.Parts[1], n.Percent)) {
			used[i] = true
		}
	}
	switch c.Type {
	case TypePie:
		if c.Library == "matplotlib" {
			matchShares(group, data, used)
		}
	case TypeHistogram:
		matchRange(main, data, used, true)
	case TypeBox:
		matchRange(main, data, used, false)
	}
	for i, n := range data {
		if !used[i] {
			acc.MissingNumbers = append(acc.MissingNumbers, n.Text)
		}
	}
	for _, l := range scan.Labels {
		// A heatmap's row and column names are tick labels, which are not read back.
		if c.Type != TypeHeatmap && !labelShown(l, words) {
			acc.MissingLabels = append(acc.MissingLabels, l)
		}
	}
	if !opt.Attached && len(data) > 0 {
		acc.Invented = invented(c, main, scan.Numbers)
	}
	return acc
}

// plottedValues are the values a chart's marks show: y and x, a box's statistics.
func plottedValues(t Type, main []Series) []float64 {
	var out []float64
	for _, s := range main {
		if t == TypeHistogram {
			continue // counts and bin edges: see matchRange
		}
		out = append(out, s.Y...)
		out = append(out, s.X...)
		for _, b := range s.Boxes {
			out = append(out, b.Min, b.Q1, b.Median, b.Q3, b.Max)
		}
	}
	return out
}

// invented are the values of a bar, line, scatter, area or plotly pie chart that no
// number of the prompt gives (explained numbers count: a chart may plot a year).
// Histograms, boxes, heatmaps and matplotlib's pie shares are computed from the data
// and are not compared value by value.
func invented(c Chart, main []Series, nums []PromptNumber) []float64 {
	switch c.Type {
	case TypeHistogram, TypeBox, TypeHeatmap, TypeUnknown:
		return nil
	case TypePie:
		if c.Library == "matplotlib" {
			return nil
		}
	}
	var given []float64
	for _, n := range nums {
		given = append(given, n.Value)
		given = append(given, n.Parts...)
		if n.Percent {
			given = append(given, n.Value/100)
		}
	}
	var out []float64
	for _, s := range main {
		vals := slices.Clone(s.Y)
		if c.Type == TypeScatter {
			vals = append(vals, s.X...)
		}
		for _, v := range vals {
			if !containsNum(given, v, false) && !containsNum(out, v, false) {
				out = append(out, v)
			}
		}
	}
	return out
}

// matchShares accounts for a matplotlib pie's values, which the figure keeps only as
// shares: a run of consecutive prompt numbers whose shares are a pie's wedges.
func matchShares(pies []Chart, data []PromptNumber, used []bool) {
	for _, p := range pies {
		for _, s := range p.mainSeries() {
			k := len(s.Y)
			if k == 0 {
				continue
			}
			for start := 0; start+k <= len(data); start++ {
				sum := 0.0
				for _, n := range data[start : start+k] {
					sum += n.Value
				}
				if sum <= 0 {
					continue
				}
				ok := true
				for _, n := range data[start : start+k] {
					if !containsNum(s.Y, 100*n.Value/sum, true) {
						ok = false
						break
					}
				}
				if ok {
					for i := start; i < start+k; i++ {
						used[i] = true
					}
					break
				}
			}
		}
	}
}

// matchRange accounts for raw values summarised by a histogram (inside its bins, as
// many as it counts) or a box plot (inside its whiskers).
func matchRange(main []Series, data []PromptNumber, used []bool, hist bool) {
	lo, hi := math.Inf(1), math.Inf(-1)
	total := 0.0
	for _, s := range main {
		if hist {
			for i, x := range s.X {
				lo = math.Min(lo, x)
				w := 0.0
				if len(s.X) > 1 {
					w = math.Abs(s.X[1] - s.X[0])
				}
				hi = math.Max(hi, x+w)
				if i < len(s.Y) {
					total += s.Y[i]
				}
			}
			continue
		}
		for _, b := range s.Boxes {
			lo, hi = math.Min(lo, b.Min), math.Max(hi, b.Max)
		}
	}
	var idx []int
	for i, n := range data {
		if !used[i] && n.Value >= lo-tol(lo) && n.Value <= hi+tol(hi) {
			idx = append(idx, i)
		}
	}
	if hist && float64(len(idx)) > total+0.5 {
		return
	}
	for _, i := range idx {
		used[i] = true
	}
}

// chartText is the words (lower case) and numbers of every text of the charts. A
// number counts from a series name or a category ("Bed 1", "2022"), but from a title
// or an axis label only as a year ("Admissions 2023"): a title that repeats the
// prompt's numbers ("LDH fell from 520 to 480") does not plot them.
func chartText(charts []Chart) (map[string]bool, []float64) {
	var names, titles []string
	for _, c := range charts {
		titles = append(titles, c.Title, c.XLabel, c.YLabel, c.XUnit, c.YUnit)
		for _, s := range c.Series {
			names = append(names, s.Name)
			names = append(names, s.Labels...)
			for _, b := range s.Boxes {
				names = append(names, b.Label)
			}
		}
	}
	words := map[string]bool{}
	var nums []float64
	for i, t := range append(names, titles...) {
		t = foldWidth(t)
		for _, w := range splitWords(t) {
			words[strings.ToLower(w)] = true
		}
		for _, n := range scanNumbers(t) {
			if i < len(names) || isYear(n) {
				nums = append(nums, n.Value)
			}
		}
	}
	return words, nums
}

func isYear(n PromptNumber) bool {
	return !n.Percent && n.Value == math.Trunc(n.Value) && n.Value >= 1900 && n.Value <= 2100 && !strings.ContainsAny(n.Text, ".,")
}

// labelShown reports whether every word of label is a word of the chart's text.
func labelShown(label string, words map[string]bool) bool {
	ws := splitWords(foldWidth(label))
	if len(ws) == 0 {
		return true
	}
	for _, w := range ws {
		if !words[strings.ToLower(w)] {
			return false
		}
	}
	return true
}

// splitWords splits s into words: runs of letters and digits; a CJK character is a
// word of its own.
func splitWords(s string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	for _, r := range s {
		switch {
		case isCJK(r):
			flush()
			out = append(out, string(r))
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		default:
			flush()
		}
	}
	flush()
	return out
}

func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// foldWidth maps full-width ASCII (ＡＢ１２：，) and CJK punctuation to ASCII, and the
// minus sign to a hyphen.
func foldWidth(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			return r - 0xFEE0
		case r == 0x3000:
			return ' '
		case r == '、':
			return ','
		case r == '。':
			return ' '
		case r == '−' || r == '–':
			return '-'
		}
		return r
	}, s)
}

// ScanPrompt finds the numbers and labels of a prompt with the rules at the top of
// this file.
func ScanPrompt(prompt string) PromptScan {
	text := foldWidth(prompt)
	return PromptScan{Numbers: scanNumbers(text), Labels: scanLabels(text)}
}

// countWords after a number make it a count of the chart's parts, a size or a span.
var countWords = map[string]string{
	"group": "count", "groups": "count", "series": "count", "chart": "count", "charts": "count",
	"bar": "count", "bars": "count", "line": "count", "lines": "count", "panel": "count", "panels": "count",
	"column": "count", "columns": "count", "row": "count", "rows": "count", "category": "count", "categories": "count",
	"bin": "count", "bins": "count", "decimal": "count", "decimals": "count", "subplot": "count", "subplots": "count",
	"pie": "count", "pies": "count", "box": "count", "boxes": "count", "slice": "count", "slices": "count",
	"color": "count", "colors": "count", "colour": "count", "colours": "count", "values": "count", "numbers": "count",
	"dpi": "size", "px": "size", "pixels": "size", "pixel": "size", "inches": "size", "inch": "size", "pt": "size",
	"digits": "count", "significant": "count",
}

// spanWords are time units: "last 12 months" is a span, not data.
var spanWords = map[string]bool{
	"day": true, "days": true, "week": true, "weeks": true, "month": true, "months": true,
	"year": true, "years": true, "hour": true, "hours": true, "quarter": true, "quarters": true,
	"minute": true, "minutes": true,
}

// leadWords before a number make it a count or a size ("top 5", "dpi 300").
var leadWords = map[string]string{
	"top": "count", "bottom": "count", "dpi": "size", "figsize": "size", "size": "size", "width": "size", "height": "size",
}

// spanLeads before "N <time unit>" make it a span ("over the last 12 months").
var spanLeads = map[string]bool{"last": true, "past": true, "next": true, "first": true, "over": true, "previous": true}

// scanNumbers finds the numbers of an ASCII-folded text.
func scanNumbers(text string) []PromptNumber {
	var out []PromptNumber
	i := 0
	for i < len(text) {
		c := text[i]
		if c < '0' || c > '9' {
			i++
			continue
		}
		prev, _ := utf8.DecodeLastRuneInString(text[:i])
		// Digits inside a word or a decimal ("Q1", "HbA1c", ".5" handled below).
		if i > 0 && (unicode.IsLetter(prev) && !isCJK(prev) || prev == '_') {
			j := i
			for j < len(text) && (isDigit(text[j]) || isLetter(text[j])) {
				j++
			}
			out = append(out, PromptNumber{Text: text[i:j], Value: atof(text[i:j]), Explained: "name"})
			i = j
			continue
		}
		start := i
		j := i
		// Thousands separators only in groups of three: "1,200" is one number, "3,2,4"
		// three.
		for j < len(text) && isDigit(text[j]) {
			j++
		}
		if j-start <= 3 {
			for j+3 < len(text)+0 && text[j] == ',' && isDigit(text[j+1]) && isDigit(text[j+2]) && isDigit(text[j+3]) &&
				(j+4 >= len(text) || !isDigit(text[j+4])) {
				j += 4
			}
		}
		var parts []float64
		if j-start <= 3 && j+1 < len(text) && text[j] == ',' && isDigit(text[j+1]) && !strings.Contains(text[start:j], ",") {
			e := j + 1
			for e < len(text) && isDigit(text[e]) {
				e++
			}
			if e-j-1 != 3 {
				parts = []float64{atof(text[start:j]), atof(text[j+1 : e])}
				j = e
			}
		}
		if parts == nil && j+1 < len(text) && text[j] == '.' && isDigit(text[j+1]) {
			j++
			for j < len(text) && isDigit(text[j]) {
				j++
			}
		}
		raw := text[start:j]
		num := strings.ReplaceAll(raw, ",", "")
		if parts != nil {
			num = strings.Replace(raw, ",", ".", 1)
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			i = j
			continue
		}
		// A sign counts after a space, a bracket or a separator, not inside a word
		// ("HbS-beta", "COVID-19") or a range ("1-3").
		signed := raw
		if start > 0 && (text[start-1] == '-' || text[start-1] == '+') {
			before, _ := utf8.DecodeLastRuneInString(text[:start-1])
			switch {
			case start == 1 || strings.ContainsRune(" \t\n([{:=,;", before):
				if text[start-1] == '-' {
					v = -v
				}
				signed = text[start-1 : j]
			case unicode.IsLetter(before):
				// Part of a name: "COVID-19", "HbS-beta 2".
				out = append(out, PromptNumber{Text: text[start-1 : j], Value: v, Explained: "name"})
				i = j
				continue
			}
		}
		n := PromptNumber{Text: signed, Value: v, Parts: parts}
		k := j
		if k < len(text) && text[k] == '%' {
			n.Percent = true
			n.Text += "%"
			k++
		}
		// What follows: an ordinal, a size "800x600", a unit-like word.
		rest := text[k:]
		word := leadingWord(rest)
		lw := strings.ToLower(word)
		switch {
		case k == j && (lw == "st" || lw == "nd" || lw == "rd" || lw == "th"):
			n.Explained = "ordinal" // 2nd, 3rd: letters right after the digits
		case k == j && lw == "d":
			n.Explained = "name" // 2D, 3D
		case strings.HasPrefix(rest, "x") && len(rest) > 1 && isDigit(rest[1]):
			n.Explained = "size"
		case start > 0 && (text[start-1] == 'x' || text[start-1] == '*') && start > 1 && isDigit(text[start-2]):
			n.Explained = "size"
		}
		if n.Explained == "" {
			next := strings.ToLower(nextWord(rest))
			before := previousWords(text[:start], 2)
			switch {
			case countWords[next] != "":
				n.Explained = countWords[next]
			case len(before) > 0 && leadWords[before[len(before)-1]] != "":
				n.Explained = leadWords[before[len(before)-1]]
			case spanWords[next] && len(before) > 0 && spanLeads[before[len(before)-1]]:
				n.Explained = "span"
			}
		}
		out = append(out, n)
		i = k
	}
	return out
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func atof(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

// leadingWord is the ASCII letters at the start of s.
func leadingWord(s string) string {
	j := 0
	for j < len(s) && isLetter(s[j]) {
		j++
	}
	return s[:j]
}

// nextWord is the first word of s after spaces and a hyphen ("3 groups", "10-bin").
func nextWord(s string) string {
	s = strings.TrimLeft(s, " -")
	return leadingWord(s)
}

// previousWords are the last n words (lower case) before the end of s.
func previousWords(s string, n int) []string {
	f := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) })
	// Only words right before the number count: "top 5", not "top, 1, 2".
	trimmed := strings.TrimRightFunc(s, unicode.IsSpace)
	if trimmed != "" {
		last, _ := utf8.DecodeLastRuneInString(trimmed)
		if !unicode.IsLetter(last) {
			return nil
		}
	}
	if len(f) > n {
		f = f[len(f)-n:]
	}
	return f
}

// sentenceWords are capitalised words that say what to do, not what to plot.
var sentenceWords = map[string]bool{
	"i": true, "an": true, "the": true, "please": true, "plot": true, "chart": true, "graph": true,
	"create": true, "make": true, "show": true, "draw": true, "use": true, "can": true, "could": true, "would": true,
	"x": true, "y": true, "csv": true, "png": true, "svg": true, "html": true, "json": true, "pdf": true,
	"python": true, "plotly": true, "matplotlib": true, "seaborn": true, "pandas": true, "ok": true,
	"visualize": true, "visualise": true, "display": true, "generate": true, "give": true, "compare": true,
	"bar": true, "line": true, "pie": true, "scatter": true, "histogram": true, "heatmap": true, "box": true,
	"area": true, "stacked": true, "grouped": true, "horizontal": true, "title": true, "label": true,
	"and": true, "vs": true, "versus": true, "with": true, "of": true, "for": true, "by": true, "in": true, "on": true,
	"data": true, "values": true, "value": true, "now": true, "then": true, "also": true, "thanks": true,
}

// namesValue reports whether rest, the text after a word, starts with a value or a
// list of values the word names: "North 120", "Hydroxyurea (85%)", "June: 12".
func namesValue(rest string) bool {
	if strings.HasPrefix(rest, "-") {
		return false // a hyphenated name: "COVID-19"
	}
	rest = strings.TrimLeft(rest, " \t")
	if rest != "" && strings.ContainsRune(":=(", rune(rest[0])) {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	rest = strings.TrimLeft(rest, "-+$€£")
	return rest != "" && isDigit(rest[0])
}

// scanLabels finds quoted phrases, and capitalised words that do not start a
// sentence or a line and name a value (German capitalises every noun: only a word
// followed by its value is a label).
func scanLabels(text string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		s = strings.TrimSpace(s)
		k := strings.ToLower(s)
		if s == "" || seen[k] {
			return
		}
		seen[k] = true
		out = append(out, s)
	}
	// Quoted phrases; their words are not looked at again.
	quoted := make([]bool, len(text))
	for _, q := range [][2]string{{`"`, `"`}, {"“", "”"}, {"‘", "’"}, {"「", "」"}, {"『", "』"}, {"«", "»"}, {"'", "'"}} {
		from := 0
		for {
			i := strings.Index(text[from:], q[0])
			if i < 0 {
				break
			}
			i += from
			if q[0] == "'" && i > 0 {
				// An apostrophe ("patient's") is not a quote.
				before, _ := utf8.DecodeLastRuneInString(text[:i])
				if unicode.IsLetter(before) || unicode.IsDigit(before) {
					from = i + 1
					continue
				}
			}
			j := strings.Index(text[i+len(q[0]):], q[1])
			if j < 0 {
				break
			}
			j += i + len(q[0])
			if q[1] == "'" && j+1 < len(text) && isLetter(text[j+1]) {
				from = j + 1
				continue
			}
			inner := text[i+len(q[0]) : j]
			if strings.ContainsAny(inner, "\n") || len(inner) > 120 {
				from = i + len(q[0])
				continue
			}
			add(inner)
			for k := i; k < j+len(q[1]); k++ {
				quoted[k] = true
			}
			from = j + len(q[1])
		}
	}
	// Capitalised words.
	start := true
	i := 0
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		if !unicode.IsLetter(r) {
			if strings.ContainsRune(".!?\n", r) {
				// A decimal point is not a sentence's end.
				if !(r == '.' && i+1 < len(text) && isDigit(text[i+1])) {
					start = true
				}
			}
			i += size
			continue
		}
		j := i
		for j < len(text) {
			r2, s2 := utf8.DecodeRuneInString(text[j:])
			if !(unicode.IsLetter(r2) || unicode.IsDigit(r2)) || isCJK(r2) {
				break
			}
			j += s2
		}
		if j == i { // a CJK character
			i += size
			start = false
			continue
		}
		w := text[i:j]
		if !start && !quoted[i] && unicode.IsUpper(r) && !sentenceWords[strings.ToLower(w)] && namesValue(text[j:]) {
			add(w)
		}
		start = false
		i = j
	}
	return out
}
