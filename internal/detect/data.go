package detect

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// maxPoints bounds the data taken from a prompt (it lands in status and in code).
const maxPoints = 50

// maxLabel bounds one label's length.
const maxLabel = 40

// num is one number as people write it: optional sign and currency, thousands
// separators only in groups of three ("1,200" is one number, "3,2,4" three), decimals
// and an optional percent sign.
const num = `[-+]?[$€£]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?`

// label is a name before a value: it starts with a letter and stops at separators
// (commas, colons, parentheses), so a leftmost match starts right after the previous
// item.
const label = `(\p{L}[\p{L}\p{N}'’./&+\- ]{0,60}?)`

// unitLabel is a number (or a range) and a unit word, as a label: "10 mg",
// "0.5 mg/kg", "5 min", "18-30 years". unitPair drops a match whose "unit" is a
// joining word ("from 40 to 55").
const unitLabel = `(\d+(?:\.\d+)?(?:\s*[-–]\s*\d+(?:\.\d+)?)?\s*[\p{L}µμ°][\p{L}µμ°]{0,11}(?:/[\p{L}µμ]{1,6}){0,2})`

// notUnit are words that follow a number without being its unit.
var notUnit = map[string]bool{
	"in": true, "on": true, "at": true, "to": true, "and": true, "or": true, "of": true, "for": true, "by": true,
	"from": true, "with": true, "the": true, "a": true, "an": true, "per": true, "vs": true, "versus": true,
	"is": true, "are": true, "was": true, "were": true, "than": true, "then": true, "until": true, "till": true,
	"through": true, "every": true, "each": true, "x": true, "en": true, "y": true, "und": true, "et": true, "e": true,
	"bis": true, "de": true, "a.m": true, "st": true, "nd": true, "rd": true, "th": true,
}

// unitPair reports whether a label of unitLabel ends in a unit rather than a joining word.
func unitPair(lab string) bool {
	w := strings.Fields(strings.TrimLeft(lab, "0123456789.-– "))
	if len(w) == 0 {
		return false
	}
	u := strings.ToLower(w[len(w)-1])
	if i := strings.IndexAny(u, "0123456789"); i == 0 {
		return false
	}
	return !notUnit[u]
}

// afterNumber is text that ends with a number (and spaces).
var afterNumber = regexp.MustCompile(`\d[ \t]*$`)

// leadWord is the word before a unit label ("dose 10 mg").
var leadWord = regexp.MustCompile(`(\p{L}+)\s+$`)

// sharedLead widens unit labels to the word before each of them when every one has
// the same ("dose 10 mg 22%, dose 20 mg 35%" are labelled "dose 10 mg"), so the word
// is neither lost nor taken for the title.
func sharedLead(prompt string, m [][]int) [][]int {
	if len(m) < 2 {
		return m
	}
	word := ""
	for _, p := range m {
		w := leadWord.FindStringSubmatch(prompt[max(0, p[2]-30):p[2]])
		if w == nil || (word != "" && !strings.EqualFold(w[1], word)) {
			return m
		}
		word = w[1]
	}
	for _, p := range m {
		l := leadWord.FindStringIndex(prompt[max(0, p[2]-30):p[2]])
		p[2] = max(0, p[2]-30) + l[0]
		p[0] = min(p[0], p[2])
	}
	return m
}

var (
	// pairPatterns are the ways a labelled value is written. The kind with the most
	// matches wins, so a prompt mixing "values: 3" with a list is not read as pairs.
	pairPatterns = []*regexp.Regexp{
		// A label that is a number and its unit, then the value: "10 mg 20%",
		// "5 mL: 12", "0.5 mg/kg 10", "18-30 years 40%" (dose-response, timed
		// readings). First, so it wins a tie with "mg 20%" read as a word label.
		regexp.MustCompile(unitLabel + `\s*[:=]?\s*(` + num + `)\s*(%)?(?:\s*[,;]|[ \t]*(?:\r?\n|$)|\s+and\b|\s*\.(?:\s|$))`),
		regexp.MustCompile(label + `\s*\(\s*(` + num + `)\s*(%)?\s*\)`),                                      // Hydroxyurea (85%)
		regexp.MustCompile(label + `\s*[:=]\s*(` + num + `)\s*(%)?`),                                         // Jan: 3, HbF = 12
		regexp.MustCompile(label + `\s+(` + num + `)\s*(%)?(?:\s*[,;]|\s*[.?!]?[ \t]*(?:\r?\n|$)|\s+and\b)`), // North 120, Voxelotor 70%
		regexp.MustCompile(`\b((?:19|20)\d\d)\s*[:=]\s*(` + num + `)\s*(%)?`),                                // 2019: 3
		regexp.MustCompile(`\b((?:19|20)\d\d)\s+(` + num + `)\s*(%)?(?:\s*[,;]|\s*$|\s+and\b)`),              // 2021 30%
		// CJK names run into their values: "北区120，南区95".
		regexp.MustCompile(`([\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]+)\s*[:=]?\s*(` + num + `)\s*(%)?`),
	}
	// numberList is three or more numbers separated by commas or semicolons.
	numberList = regexp.MustCompile(`(?:` + num + `%?(?:\s*[,;]\s*|\s*,?\s+and\s+)){2,}` + num + `%?`)
	numberOne  = regexp.MustCompile(num + `(%)?`)
	// labelLead strips joining words a label match can start with.
	labelLead = regexp.MustCompile(`(?i)^(?:and|or|&|with|plus|then)\s+`)
)

// series is data found in a prompt.
type series struct {
	Labels []string
	Values []float64
	Unit   string
	// Start is where the data begins in the prompt (-1 when there is none), so the
	// title can stop before it.
	Start int
	// X are numeric x values, one per value (x–y points, "at days 1, 3: 5, 7").
	X []float64
	// XName is the word naming the x values ("days"), when the prompt gives one.
	XName string
	// Series are several named series; Values is then the first one's.
	Series []Series
}

// extractData finds labelled values ("Hydroxyurea (85%), Voxelotor (70%)",
// "Jan: 3, Feb: 2") or else a bare list of values ("3, 2, 4, 1") in the prompt.
func extractData(prompt string) series {
	prompt = decimalCommas(prompt)
	if s, ok := extractSeries(prompt); ok {
		return s
	}
	list := extractList(prompt)
	if len(list.Values) > 0 {
		list.Labels = categories(prompt, len(list.Values))
	}
	// Pairs that catch fewer values than a plain list are words between list items
	// ("values 1.5, -2 and 3.25"), not labels.
	if s, ok := extractPairs(prompt); ok && len(s.Values) >= len(list.Values) {
		return s
	}
	return list
}

func extractPairs(prompt string) (series, bool) {
	var best [][]int
	for i, re := range pairPatterns {
		m := re.FindAllStringSubmatchIndex(prompt, maxPoints)
		if i == 0 {
			m = slices.DeleteFunc(m, func(p []int) bool { return !unitPair(prompt[p[2]:p[3]]) })
			m = sharedLead(prompt, m)
		} else {
			// A word right after a number is that number's unit ("5 mL: 12"), not
			// a label of its own.
			m = slices.DeleteFunc(m, func(p []int) bool { return afterNumber.MatchString(prompt[:p[2]]) })
		}
		if len(m) > len(best) {
			best = m
		}
	}
	if len(best) < 2 {
		return series{Start: -1}, false
	}
	s := series{Start: best[0][0]}
	percent := 0
	for i, m := range best {
		lab := cleanLabel(prompt[m[2]:m[3]])
		if i == 0 {
			// The first label may carry the request ("Plot Jan: 3").
			if l := stripRequest(lab); l != "" {
				lab = l
			}
		}
		v, ok := parseNumber(prompt[m[4]:m[5]])
		if lab == "" || !ok {
			continue
		}
		if m[6] >= 0 {
			percent++
		}
		s.Labels = append(s.Labels, lab)
		s.Values = append(s.Values, v)
	}
	if len(s.Values) < 2 {
		return series{Start: -1}, false
	}
	if percent == len(s.Values) {
		s.Unit = "%"
	}
	// The first label may have swallowed the request ("Plot VOE per month Jan");
	// the data starts where the cleaned label does.
	if first := s.Labels[0]; first != "" {
		if i := strings.Index(prompt[best[0][0]:best[0][3]], first); i >= 0 {
			s.Start = best[0][0] + i
		}
	}
	return s, true
}

func extractList(prompt string) series {
	var longest []int
	count := 0
	for _, loc := range numberList.FindAllStringIndex(prompt, -1) {
		if n := len(numberOne.FindAllStringIndex(prompt[loc[0]:loc[1]], -1)); n > count {
			longest, count = loc, n
		}
	}
	if longest == nil {
		return series{Start: -1}
	}
	s := series{Start: longest[0]}
	percent := 0
	for _, m := range numberOne.FindAllStringSubmatch(prompt[longest[0]:longest[1]], maxPoints) {
		v, ok := parseNumber(m[0])
		if !ok {
			continue
		}
		if m[1] != "" {
			percent++
		}
		s.Values = append(s.Values, v)
	}
	if len(s.Values) < 3 {
		return series{Start: -1}
	}
	if percent == len(s.Values) {
		s.Unit = "%"
	}
	return s
}

// cleanLabel trims a matched label to the item's own name: the text after the last
// colon-less request phrase, at most four words, no joining words.
func cleanLabel(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for {
		t := labelLead.ReplaceAllString(s, "")
		if t == s {
			break
		}
		s = t
	}
	// A first item can carry the request before it ("Plot VOE per month Jan"): keep
	// the last word when the label is too long to be a name.
	if w := strings.Fields(s); len(w) > 4 {
		s = w[len(w)-1]
	}
	s = strings.Trim(s, " .-'’/&+")
	return truncate(s, maxLabel)
}

// decimalCommas rewrites decimal commas as points ("12,5" → "12.5"), as Spanish,
// German, French, Portuguese and Italian write them, keeping every byte offset. A comma
// is decimal when it joins exactly two digit groups with nothing but non-digits around
// them and the second group is not a thousands group of three ("1,200" stays a
// thousand) or the first is 0 ("0,125"). Runs of several commas ("3,2,4") stay lists,
// and "(1,5)" stays an x–y point.
func decimalCommas(prompt string) string {
	b := []byte(prompt)
	isDigit := func(i int) bool { return i >= 0 && i < len(b) && b[i] >= '0' && b[i] <= '9' }
	for i := 0; i < len(b); {
		if !isDigit(i) || (i > 0 && (isDigit(i-1) || b[i-1] == ',' || b[i-1] == '.')) {
			i++
			continue
		}
		// A run of digit groups joined by commas, starting at i.
		start, commas, comma := i, 0, -1
		j := i
		for isDigit(j) {
			for isDigit(j) {
				j++
			}
			if j < len(b) && b[j] == ',' && isDigit(j+1) {
				commas++
				comma = j
				j++
				continue
			}
			break
		}
		if commas == 1 && !(j < len(b) && b[j] == '.') {
			first, second := string(b[start:comma]), string(b[comma+1:j])
			point := start > 0 && b[start-1] == '(' && j < len(b) && b[j] == ')'
			if !point && (len(second) != 3 || first == "0") {
				b[comma] = '.'
			}
		}
		i = j
	}
	return string(b)
}

// parseNumber reads one number written as num (with optional %), or reports false.
func parseNumber(s string) (float64, bool) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	s = strings.NewReplacer(",", "", "$", "", "€", "", "£", "", "+", "").Replace(s)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}
