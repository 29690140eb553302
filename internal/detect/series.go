package detect

import (
	"regexp"
	"strconv"
	"strings"
)

// Series is one named series of numbers written in a prompt ("2022 (4, 6, 5)").
type Series struct {
	Name   string
	Values []float64
}

// maxSeries bounds the series taken from a prompt.
const maxSeries = 8

var (
	// xyPair is one "(22, 118)" point.
	xyPair = regexp.MustCompile(`\(\s*(` + num + `)\s*[,;]\s*(` + num + `)\s*\)`)
	// xThenY is "at days 1, 3, 5, 7: 520, 480, 430, 390": x values, a colon, y values.
	xThenY = regexp.MustCompile(`(?i)(?:\b(?:at|on|for|in|over|across)\s+)?(?:the\s+)?(\p{L}[\p{L} ]{0,20}?)\s+((?:` + num + `\s*(?:,|and)\s*)+` + num + `)\s*[:=]\s*((?:` + num + `%?\s*(?:,|;|and)\s*)+` + num + `%?)`)
	// namedList is "2022 (4, 6, 5)" or "arm A (3, 5, 4)": a name and two or more numbers
	// in parentheses.
	namedList = regexp.MustCompile(`([\p{L}\p{N}][\p{L}\p{N}'’.\- ]{0,40}?)\s*\(\s*((?:` + num + `%?\s*[,;]\s*)+` + num + `%?)\s*\)`)
	// colonList is "arm A: 3, 5, 4; arm B: 2, 3, 3": a name, a colon, a list.
	colonList = regexp.MustCompile(`([\p{L}][\p{L}\p{N}'’.\- ]{0,40}?)\s*:\s*((?:` + num + `%?\s*,\s*)+` + num + `%?)(?:\s*(?:;|\band\b|\.|$))`)
	// bareList is "Ward A 120, 125, 130", "clinic B = 9, 13, 16", "heights 150, 160, 170":
	// a name, an optional ":" or "=", and a list of two or more numbers with at least
	// one comma (so "Q1 20 and 35" stays a row of pairRow).
	bareList = regexp.MustCompile(`([\p{L}][\p{L}\p{N}'’.\-/+ ]{0,40}?)\s*[:=]?\s*((?:` + num + `%?\s*,\s*)+(?:` + num + `%?\s*,?\s+and\s+)?` + num + `%?)(?:\s*(?:;|,|\band\b|\.|$)|\s+(?:as|in|for|on|with)\b)`)
	// pairRow is "Q1 20 and 35": a category and one value per series.
	pairRow = regexp.MustCompile(`(\p{L}[\p{L}\p{N}]{0,15})\s*:?\s+(` + num + `)\s*(?:and|/|&|vs\.?)\s*(` + num + `)`)
	// twoNames is "inpatient and outpatient" before such rows.
	twoNames = regexp.MustCompile(`(?i)\b(\p{L}[\p{L}\p{N}\-]*)\s+(?:and|vs\.?|versus)\s+(\p{L}[\p{L}\p{N}\-]*)\b`)
	// nameLead strips joining and request words a series name can start with.
	nameLead = regexp.MustCompile(`(?i)^(?:(?:and|or|with|in|for|of|from|between|vs\.?|versus|plot|chart|show|compare|comparing|data|values)\s+)+`)
	numberIn = regexp.MustCompile(num)
)

// extractSeries finds the richer shapes of data: x–y points, x values then y values,
// several named series. It reports false when the prompt has none of them.
func extractSeries(prompt string) (series, bool) {
	if s, ok := extractTrend(prompt); ok {
		return s, true
	}
	if m := xyPair.FindAllStringSubmatchIndex(prompt, maxPoints); len(m) >= 2 && !allNamed(prompt, m) {
		s := series{Start: m[0][0]}
		for _, p := range m {
			x, ok1 := parseNumber(prompt[p[2]:p[3]])
			y, ok2 := parseNumber(prompt[p[4]:p[5]])
			if ok1 && ok2 {
				s.X = append(s.X, x)
				s.Values = append(s.Values, y)
			}
		}
		if len(s.Values) >= 2 {
			return s, true
		}
	}
	if m := xThenY.FindStringSubmatchIndex(prompt); m != nil {
		xs := numbers(prompt[m[4]:m[5]])
		ys := numbers(prompt[m[6]:m[7]])
		if len(xs) == len(ys) && len(xs) >= 2 {
			s := series{Start: m[4], X: xs, Values: ys}
			if w := strings.Fields(prompt[m[2]:m[3]]); len(w) > 0 {
				s.XName = w[len(w)-1]
			}
			if strings.Contains(prompt[m[6]:m[7]], "%") {
				s.Unit = "%"
			}
			for _, x := range xs {
				s.Labels = append(s.Labels, xLabelOf(s.XName, x))
			}
			return s, true
		}
	}
	for _, re := range []*regexp.Regexp{namedList, colonList, bareList} {
		m := re.FindAllStringSubmatchIndex(prompt, maxSeries)
		if len(m) < 2 {
			continue
		}
		s := series{Start: -1}
		n := -1
		same := true
		for _, p := range m {
			name := seriesName(prompt[p[2]:p[3]])
			vals := numbers(prompt[p[4]:p[5]])
			if name == "" || len(vals) < 2 {
				continue
			}
			if s.Start < 0 {
				s.Start = p[2] + strings.Index(prompt[p[2]:p[3]], name)
			}
			if n >= 0 && len(vals) != n {
				same = false
			}
			n = len(vals)
			if strings.Contains(prompt[p[4]:p[5]], "%") {
				s.Unit = "%"
			}
			s.Series = append(s.Series, Series{Name: name, Values: vals})
		}
		if len(s.Series) >= 2 {
			if same {
				s.Labels = categories(prompt, n)
			}
			s.Values = s.Series[0].Values
			return s, true
		}
	}
	if m := pairRow.FindAllStringSubmatchIndex(prompt, maxPoints); len(m) >= 2 {
		a, b := Series{}, Series{}
		s := series{Start: m[0][0]}
		for _, p := range m {
			va, ok1 := parseNumber(prompt[p[4]:p[5]])
			vb, ok2 := parseNumber(prompt[p[6]:p[7]])
			if !ok1 || !ok2 {
				continue
			}
			s.Labels = append(s.Labels, cleanLabel(prompt[p[2]:p[3]]))
			a.Values = append(a.Values, va)
			b.Values = append(b.Values, vb)
		}
		a.Name, b.Name = "Series 1", "Series 2"
		if names := twoNames.FindAllStringSubmatch(prompt[:m[0][0]], -1); len(names) > 0 {
			last := names[len(names)-1]
			a.Name, b.Name = capitalize(last[1]), capitalize(last[2])
		}
		if len(a.Values) >= 2 {
			s.Series = []Series{a, b}
			s.Values = a.Values
			return s, true
		}
	}
	return series{Start: -1}, false
}

var joinWord = map[string]bool{"and": true, "or": true, "with": true, "in": true, "for": true, "of": true, "from": true,
	"between": true, "vs": true, "vs.": true, "versus": true, "comparing": true, "at": true, "on": true, "during": true}

// seriesName is the last few words before a series' numbers, without joining words.
func seriesName(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for {
		t := nameLead.ReplaceAllString(s, "")
		if t == s {
			break
		}
		s = t
	}
	// "pain scores for patient 1" → "patient 1", "visits in 2020" → "2020": keep what
	// follows the last joining word, at most three words.
	w := strings.Fields(s)
	for i := len(w) - 1; i >= 0; i-- {
		if joinWord[strings.ToLower(w[i])] && i < len(w)-1 {
			w = w[i+1:]
			break
		}
	}
	if len(w) > 3 {
		w = w[len(w)-2:]
	}
	s = strings.Join(w, " ")
	return truncate(strings.Trim(s, " .-'’"), maxLabel)
}

func numbers(s string) []float64 {
	var out []float64
	for _, m := range numberIn.FindAllString(s, maxPoints) {
		if v, ok := parseNumber(m); ok {
			out = append(out, v)
		}
	}
	return out
}

// xLabelOf names an x value with its axis word: ("days", 3) → "Day 3"; a year stays "2021".
func xLabelOf(word string, x float64) string {
	v := strconv.FormatFloat(x, 'f', -1, 64)
	w := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(word)), "s")
	if i := strings.LastIndexByte(w, ' '); i >= 0 {
		w = w[i+1:]
	}
	switch w {
	case "day", "week", "month", "visit", "cycle", "hour", "dose", "session", "quarter":
		return capitalize(w) + " " + v
	}
	return v
}

var (
	monthNames = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	monthIndex = func() map[string]int {
		m := map[string]int{}
		full := []string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}
		for i, f := range full {
			m[f] = i
			m[f[:3]] = i
		}
		m["sept"] = 8
		return m
	}()
	catName     = `\p{L}[\p{L}\p{N}'’\-]*(?:\s\p{L}[\p{L}\p{N}'’\-]*){0,2}`
	monthWord   = `(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)`
	monthRange  = regexp.MustCompile(`(?i)\b` + monthWord + `\s*(?:to|through|until|-|–)\s*` + monthWord + `\b`)
	quarterRng  = regexp.MustCompile(`(?i)\bq([1-4])\s*(?:to|through|-|–)\s*q([1-4])\b`)
	yearRange   = regexp.MustCompile(`\b((?:19|20)\d\d)\s*(?:to|through|until|-|–)\s*((?:19|20)\d\d)\b`)
	unitRange   = regexp.MustCompile(`(?i)\b(days?|weeks?|months?|visits?|cycles?|hours?|sessions?|years?)\s+(\d{1,3})\s*(?:to|through|-|–)\s*(\d{1,3})\b`)
	countedUnit = regexp.MustCompile(`(?i)\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\d{1,2})\s+(days|weeks|months|visits|cycles|hours|sessions|years|quarters|doses)\b`)
	// namedCats is a closing list of names: "for HbSS, HbSC and HbS-beta".
	namedCats   = regexp.MustCompile(`(?i)\b(?:for|across|by|among|in|over)\s+((?:` + catName + `\s*,\s*)+` + catName + `\s*,?\s+(?:and|&)\s+` + catName + `)\s*[.?!]?\s*$`)
	catSplit    = regexp.MustCompile(`(?i)\s*,\s*(?:and\s+|&\s+)?|\s+(?:and|&)\s+`)
	numberWords = map[string]int{"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
)

// categories names n values from a range written in the prompt: "Q1 to Q3",
// "January to June", "2019-2023", "visits 1 to 4", "over four visits". Nil when the
// prompt names no range of n items.
func categories(prompt string, n int) []string {
	if n < 2 {
		return nil
	}
	var out []string
	if m := quarterRng.FindStringSubmatch(prompt); m != nil {
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		for q := a; q <= b; q++ {
			out = append(out, "Q"+strconv.Itoa(q))
		}
		if len(out) == n {
			return out
		}
	}
	if m := monthRange.FindStringSubmatch(prompt); m != nil {
		a, b := monthIndex[strings.ToLower(m[1])], monthIndex[strings.ToLower(m[2])]
		out = nil
		for i := a; len(out) < 12; i = (i + 1) % 12 {
			out = append(out, monthNames[i])
			if i == b {
				break
			}
		}
		if len(out) == n {
			return out
		}
	}
	if m := yearRange.FindStringSubmatch(prompt); m != nil {
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		if b-a+1 == n {
			out = nil
			for y := a; y <= b; y++ {
				out = append(out, strconv.Itoa(y))
			}
			return out
		}
	}
	if m := unitRange.FindStringSubmatch(prompt); m != nil {
		a, _ := strconv.Atoi(m[2])
		b, _ := strconv.Atoi(m[3])
		if b-a+1 == n {
			out = nil
			for i := a; i <= b; i++ {
				out = append(out, xLabelOf(m[1], float64(i)))
			}
			return out
		}
	}
	if m := countedUnit.FindStringSubmatch(prompt); m != nil {
		k, ok := numberWords[strings.ToLower(m[1])]
		if !ok {
			k, _ = strconv.Atoi(m[1])
		}
		if k == n {
			out = nil
			for i := 1; i <= k; i++ {
				if strings.EqualFold(m[2], "quarters") {
					out = append(out, "Q"+strconv.Itoa(i))
				} else {
					out = append(out, xLabelOf(m[2], float64(i)))
				}
			}
			return out
		}
	}
	if m := namedCats.FindStringSubmatch(prompt); m != nil {
		out = nil
		for _, name := range catSplit.Split(m[1], -1) {
			if name = cleanLabel(name); name != "" {
				out = append(out, name)
			}
		}
		if len(out) == n {
			return out
		}
	}
	return nil
}

var (
	stackedBars = regexp.MustCompile(`\bstacked (?:bar|column)s?\b|\bstacked (?:chart|graph)\b`)
	// titled is "titled 'X'", "title: X", "called "X"", "with the title "X"".
	titledQuoted = regexp.MustCompile(`(?i)\b(?:titled|entitled|called|named|title it|with (?:the )?title|title(?:d)?\s*[:=]?)\s*["“'‘«]([^"”'’»\n]{1,120})["”'’»]`)
	titledBare   = regexp.MustCompile(`(?i)\b(?:titled|entitled|title it|with (?:the )?title|title:)\s+([^"“'‘,.;:\n][^,.;\n]{0,80})`)
	anyQuoted    = regexp.MustCompile(`["“«]([^"”»\n]{3,120})["”»]`)
)

// axisQuoted is an axis label the prompt asks for in quotes: "label the y axis
// 'g/dL'", "x-axis label: "Hour"", "y axis as 'Dose (mg)'".
var axisQuoted = regexp.MustCompile(`(?i)\b(?:label (?:the )?([xy])[- ]?axis|([xy])[- ]?axis(?: label(?:led)?| title)?)(?: as| should be| to be)?\s*[:=]?\s*["“'‘]([^"”'’\n]{1,60})["”'’]`)

// axisLabels returns the axis labels the prompt asks for in quotes, and the prompt
// with those requests blanked (same length, so offsets stay) so they are not taken
// for a title.
func axisLabels(prompt string) (x, y, rest string) {
	b := []byte(prompt)
	for _, m := range axisQuoted.FindAllStringSubmatchIndex(prompt, 2) {
		axis := ""
		switch {
		case m[2] >= 0:
			axis = prompt[m[2]:m[3]]
		case m[4] >= 0:
			axis = prompt[m[4]:m[5]]
		}
		label := strings.TrimSpace(prompt[m[6]:m[7]])
		if strings.EqualFold(axis, "x") {
			x = label
		} else {
			y = label
		}
		for i := m[0]; i < m[1]; i++ {
			b[i] = ' '
		}
	}
	return x, y, string(b)
}

// quotedTitle is a title the prompt states: "titled 'Pain over time'", or a phrase in
// double quotes, and where that phrase is in the prompt. Empty when there is none.
func quotedTitle(prompt string) (title string, start, end int) {
	for _, re := range []*regexp.Regexp{titledQuoted, titledBare, anyQuoted} {
		if m := re.FindStringSubmatchIndex(prompt); m != nil {
			if t := strings.TrimSpace(prompt[m[2]:m[3]]); t != "" {
				return truncate(t, maxTitle), m[0], m[1]
			}
		}
	}
	return "", -1, -1
}

// allNamed reports whether every parenthesized pair follows a name ("2020 (30, 28)
// and 2021 (35, 33)" are two series of two values, not two points).
func allNamed(prompt string, pairs [][]int) bool {
	for _, p := range pairs {
		before := strings.TrimRight(prompt[:p[0]], " \t")
		if before == "" {
			return false
		}
		r := before[len(before)-1]
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// A narrative trend gives each value with its time or place: "rose from 40 in
// January to 55 in February and 70 in March", "fell from 11.2 on Monday to 9.8 on
// Wednesday", "went from 35 in week 1 to 42 in week 2", "subieron de 40 en enero a
// 55 en febrero y 70 en marzo".
const (
	// trendAt is "40 in January", "2.5% in Q1", "82 kg in January", "35 in week 1":
	// a value, an optional unit word, a preposition and the period or place.
	trendAt = `(` + num + `)\s*(%)?(?:\s*[\p{L}µμ°/]{1,12})?\s+(?:in|on|at|by|during|for|en|em|im|am|au|no|na|nel|nella)\s+` +
		`((?:the\s+)?(?:(?:week|day|month|visit|cycle|hour|quarter|year|session|phase|wave|round|stage|shift|semana|d[ií]a|woche|tag|semaine|jour)s?\s+\d{1,4}|(?:19|20)\d\d|\p{L}[\p{L}\p{N}'’\-]*(?:\s+(?:(?:19|20)\d\d|(?-i:\p{Lu})\b))?))`
	// trendJoin joins two of them: "to", ", then", "and then to", "before falling to".
	trendJoin = `\s*,?\s*(?:(?:and|then|to|before|after|but|back|again|finally|eventually|up|down|y|e|et|und|a|à|auf|bis|hasta|até|\p{L}{2,}(?:ing|ed))\s+){0,4}`
)

var (
	// trendChain is "from" (or "de", "von", ...) and two or more values with their
	// periods.
	trendChain = regexp.MustCompile(`(?i)\b(?:from|de|desde|von|depuis|da|were|was|stood at)\s+` + trendAt + `(?:` + trendJoin + trendAt + `)+`)
	trendItem  = regexp.MustCompile(`(?i)` + trendAt)
	// periodFirst is the same narrative with the period first: "in January
	// admissions were 40, in February 55 and in March 70".
	periodFirst     = `\b(?:in|on|at|during|for|en|im|am)\s+((?:the\s+)?(?:(?:week|day|month|visit|cycle|hour|quarter|year|session|shift)s?\s+\d{1,4}|(?:19|20)\d\d|\p{L}[\p{L}\p{N}'’\-]*(?:\s+(?:(?:19|20)\d\d|(?-i:\p{Lu})\b))?))\s*,?\s+(?:\p{L}+\s+){0,3}?(` + num + `)\s*(%)?`
	periodChain     = regexp.MustCompile(`(?i)` + periodFirst + `(?:\s*(?:,|;|\band\b|\bthen\b)\s*(?:(?:and|then)\s+)?` + periodFirst + `)+`)
	periodFirstItem = regexp.MustCompile(`(?i)` + periodFirst)
	// trendLead is the verb phrase before the values ("that rose", ", which
	// dropped"): the data, and not the title, starts there.
	trendLead = regexp.MustCompile(`(?i)(?:,?\s*\b(?:that|which|who)\s+)?(?:\b(?:has|have|had)\s+)?\b(?:rose|risen|rising|rises|rise|increased|increasing|increases|grew|grown|growing|climbed|climbing|jumped|went(?:\s+(?:up|down))?|gone|going|fell|fallen|falling|falls|dropped|dropping|drops|declined|declining|decreased|decreasing|dipped|improved|worsened|changed|moved|shifted|subieron|subi[óo]|bajaron|baj[óo]|aumentaron|aument[óo]|cayeron|cay[óo]|stieg(?:en)?|sank(?:en)?|fiel(?:en)?|augment[ée]|baiss[ée]|pass[ée])?\s*$`)
)

// extractTrend reads a narrative trend: its values, labelled by their periods.
func extractTrend(prompt string) (series, bool) {
	// Groups of an item: value, percent, period; the period comes first in
	// periodFirst.
	item, value, pct, per := trendItem, 2, 4, 6
	loc := trendChain.FindStringIndex(prompt)
	if loc == nil {
		if loc = periodChain.FindStringIndex(prompt); loc == nil {
			return series{Start: -1}, false
		}
		item, value, pct, per = periodFirstItem, 4, 6, 2
	}
	s := series{Start: loc[0]}
	if l := trendLead.FindStringIndex(prompt[:loc[0]]); l != nil && l[0] < l[1] {
		s.Start = l[0]
	}
	percent := 0
	for _, m := range item.FindAllStringSubmatchIndex(prompt[loc[0]:loc[1]], maxPoints) {
		v, ok := parseNumber(prompt[loc[0]+m[value] : loc[0]+m[value+1]])
		if !ok {
			continue
		}
		if m[pct] >= 0 {
			percent++
		}
		period := leadArticle.ReplaceAllString(prompt[loc[0]+m[per]:loc[0]+m[per+1]], "")
		s.Labels = append(s.Labels, capitalize(truncate(period, maxLabel)))
		s.Values = append(s.Values, v)
	}
	if len(s.Values) < 2 {
		return series{Start: -1}, false
	}
	if percent == len(s.Values) {
		s.Unit = "%"
	}
	return s, true
}
