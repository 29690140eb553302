package detect

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxTitle and maxAxisLabel bound text taken from the prompt: it ends up in a figure
// and in status.
const (
	maxTitle     = 80
	maxAxisLabel = 40
)

type chartCue struct {
	re    *regexp.Regexp
	chart ChartType
}

// explicitCues name a chart type; they win over implied ones ("a bar chart of the
// share of patients" is a bar chart). Order matters: more specific names first.
var explicitCues = []chartCue{
	{regexp.MustCompile(`\bstacked (?:area|line)\b|\bstackplot\b|堆叠面积图`), ChartStackedArea},
	// Chinese chart names.
	{regexp.MustCompile(`柱状图|条形图|條形圖|棒グラフ`), ChartBar},
	{regexp.MustCompile(`折线图|折線圖|折れ線`), ChartLine},
	{regexp.MustCompile(`饼图|餅圖|円グラフ`), ChartPie},
	{regexp.MustCompile(`散点图|散點圖|散布図`), ChartScatter},
	{regexp.MustCompile(`直方图|直方圖|ヒストグラム`), ChartHistogram},
	{regexp.MustCompile(`箱线图|箱形图|箱ひげ図`), ChartBox},
	{regexp.MustCompile(`热力图|熱力圖|ヒートマップ`), ChartHeatmap},
	{regexp.MustCompile(`面积图|面積圖`), ChartArea},
	// Spanish, German, French, Portuguese and Italian chart names.
	{regexp.MustCompile(`\bbalkendiagramm\w*\b|\bs[äa]ulendiagramm\w*\b|\bde barras\b|\ben barres\b|\b(?:a|di) barre\b|\bà barres\b|\bhistogramme en barres\b`), ChartBar},
	{regexp.MustCompile(`\b(?:kreis|torten)diagramm\w*\b|\bcircular\b|\bde (?:pastel|torta|pizza|setores)\b|\bcamembert\b|\ba torta\b|\bsectoriel\b|\bcirculaire\b`), ChartPie},
	{regexp.MustCompile(`\bliniendiagramm\w*\b|\bkurvendiagramm\w*\b|\bde l[íi]neas?\b|\bde linhas?\b|\ba linee\b|\bcourbe\b|\ben ligne\b|\blin[ée]aire\b`), ChartLine},
	{regexp.MustCompile(`\bstreudiagramm\w*\b|\bde dispersi[óo]n\b|\bde dispers[ãa]o\b|\b(?:a|di) dispersione\b|\bnuage de points\b`), ChartScatter},
	{regexp.MustCompile(`\bhistogramm\w*\b|\bhistogramas?\b|\bhistogrammes?\b|\bistogramm[ai]\b`), ChartHistogram},
	{regexp.MustCompile(`\bdiagrama de caja\b|\bbo[îi]te à moustaches\b|\bdiagrama de caixa\b|\bbox ?plot\b`), ChartBox},
	{regexp.MustCompile(`\bhorizontal (?:bar|column)s?\b|\bbarh\b|\bbar chart,? horizontal\b`), ChartBarH},
	{regexp.MustCompile(`\bheat ?maps?\b|\bcorrelation matri(?:x|ces)\b`), ChartHeatmap},
	{regexp.MustCompile(`\bbox ?plots?\b|\bbox-and-whisker\b|\bwhisker plots?\b|\bbox (?:chart|graph)s?\b`), ChartBox},
	{regexp.MustCompile(`\bhistograms?\b`), ChartHistogram},
	{regexp.MustCompile(`\bpie\b|\bdonut\b|\bdoughnut\b`), ChartPie},
	{regexp.MustCompile(`\bscatter ?(?:plot|chart|graph|diagram)?s?\b|\bbubble chart\b`), ChartScatter},
	{regexp.MustCompile(`\barea (?:chart|graph|plot)s?\b`), ChartArea},
	{regexp.MustCompile(`\bline (?:chart|graph|plot)s?\b|\btime[- ]series\b|\bline\b`), ChartLine},
	{regexp.MustCompile(`\b(?:bar|column) (?:chart|graph|plot)s?\b|\bbars?\b`), ChartBar},
}

// impliedCues describe the data instead of naming a chart.
var impliedCues = []chartCue{
	{regexp.MustCompile(`\bquartiles?\b|\binterquartile\b|\biqr\b|\bspread\b|\boutliers\b|\bdistributions? of .{1,40}? (?:by|across|between|among|for each)\b`), ChartBox},
	{regexp.MustCompile(`\bdistribution\b|\bdistributed\b|\bfrequency of values\b`), ChartHistogram},
	{regexp.MustCompile(`\b(?:vs\.?|versus|against|over) (?:time|dates?|months?|years?|days?|weeks?|quarters?)\b`), ChartLine},
	{regexp.MustCompile(`\bcorrelat\w*|\brelationship\b|\bassociation between\b|\bvs\.?(?:\s|$)|\bversus\b|\bagainst\b`), ChartScatter},
	{regexp.MustCompile(`\bcurves?\b|\bsurvival\b|\bkaplan|\bper (?:day|week|month|quarter|year)\b|\bover time\b|\bover the (?:past|last|next|years|months|weeks|decade)\b|\bover (?:the|a|an|one|each|her|his|their) (?:shift|day|night|week|month|year|admission|stay|hospital stay|course|follow-up|session|infusion)\b|\btrends?\b|\bmonthly\b|\bweekly\b|\bdaily\b|\byearly\b|\bannual(?:ly)?\b|\bquarterly\b|\btime course\b|\btimeline\b|\bby (?:month|year|week|day|quarter|date)\b|\bover \d+ (?:years|months|weeks|days)\b|\bprogression\b`), ChartLine},
	{regexp.MustCompile(`\bshares?\b|\bproportions?\b|\bbreakdown\b|\bpercentage of (?:total|all)\b|\bcomposition\b|\bmakeup\b|\bfraction of\b`), ChartPie},
	{regexp.MustCompile(`\bcompar(?:e|es|ed|ing|ison)\b|\branking\b|\btop \d+\b|\bby (?:genotype|group|category|type|country|region|age group|sex|gender|treatment|drug|site|hospital|department)\b`), ChartBar},
}

// chartType infers the chart from text (lowercase, negated clauses removed) and
// returns the cue that decided it.
func chartType(text string) (ChartType, string) {
	for _, cues := range [][]chartCue{explicitCues, impliedCues} {
		for _, c := range cues {
			if m := c.re.FindString(text); m != "" {
				return c.chart, strings.TrimSpace(m)
			}
		}
	}
	return ChartAuto, ""
}

var (
	// titlePrefixes are stripped repeatedly from the start of the request to leave
	// what the chart is about: "Can you please make me a bar chart of X" → "X".
	titlePrefixes = []*regexp.Regexp{
		regexp.MustCompile(`^[,;:\-\s]+`),
		regexp.MustCompile(`(?i)^(?:please|kindly|hey|hi|ok(?:ay)?|so|now|also)\b[,!]?\s*`),
		regexp.MustCompile(`(?i)^(?:can|could|would|will) you\s+(?:please\s+)?`),
		regexp.MustCompile(`(?i)^(?:can|could|may) (?:i|we) (?:get|have|see)\s+`),
		regexp.MustCompile(`(?i)^(?:i\s+(?:want|need|would like)|i'd like|let's|lets|help me)\s+(?:to\s+)?(?:see\s+)?`),
		regexp.MustCompile(`(?i)^(?:show|make|create|generate|draw|plot|chart|graph|visuali[sz]e|build|produce|render|display|give|sketch|prepare|use|compare)\s+(?:me\s+|us\s+)?`),
		regexp.MustCompile(`(?i)^(?:a|an|the|some|my)\s+`),
		// Spanish, German, French, Portuguese and Italian request words.
		regexp.MustCompile(`(?i)^(?:fais|faites|cr[ée]ez?|dessinez?|montrez?|tracez?|affichez?|haz|hazme|crea|cr[ée]a|dibuja|muestra|muestrame|genera|erstelle|erstellen sie|zeichne|zeige|mach|plotte|visualisiere|fa[çc]a|crie|mostre|desenhe|gere|fai|disegna|mostra|traccia|visualizza)\s+(?:moi\s+|me\s+|mir\s+|mi\s+)?`),
		regexp.MustCompile(`(?i)^(?:un|une|le|la|les|el|los|las|una|ein|eine|einen|das|die|der|um|uma|o|il|lo)\s+`),
		regexp.MustCompile(`(?i)^(?:graphiques?|diagrammes?|gr[áa]fic[oa]s?|grafici|diagramas?|\p{L}*diagramm(?:e|en)?|histogramm?[ea]?s?|istogramma)\s*(?:(?:en|de|a|à|di)\s+(?:barres|barras|barre|l[íi]neas|linhas|linee|lignes|pastel|torta|pizza|secteurs|dispersi[óo]n|dispers[ãa]o|dispersione))?\s*`),
		regexp.MustCompile(`(?i)^(?:des|de la|du|de los|de las|del|de|der|von|dos|das|do|da|degli|delle|dei|della|über|sur)\s+`),
		regexp.MustCompile(`(?i)^(?:how\s+)?(?:did|does|has|have|do)\s+`),
		regexp.MustCompile(`(?i)^(?:(?:simple|quick|nice|clean|basic|interactive|horizontal|vertical|stacked|grouped)\s+)+`),
		regexp.MustCompile(`(?i)^(?:(?:bar|line|pie|scatter|area|box|donut|doughnut|column|bubble)\s+)?(?:charts?|graphs?|plots?|diagrams?|visuali[sz]ations?|histograms?|heat ?maps?|boxplots?|scatterplots?|time[- ]series)\b\s*`),
		regexp.MustCompile(`(?i)^(?:of|for|showing|that shows|which shows|to show|comparing|on|about|displaying|illustrating|depicting|with)\s+`),
		regexp.MustCompile(`(?i)^(?:how|what|explain|describe)\s+`),
	}
	// titleSuffix strips "as a line chart", "using plotly", "please" and punctuation.
	titleSuffix = regexp.MustCompile(`(?i)(?:\s+(?:changed?|evolved?|developed?|varied|vary|progressed?)(?:\s+over\b.*)?$|\s+and\s+(?:draw|plot|make|create|show|chart|graph|visuali[sz]e)\b.*|\s*,?\s+please|\s+(?:using|with|in|as|on)\s+(?:plotly|matplotlib|seaborn|html|svg|png|(?:an?\s+)?(?:\w+\s+)?(?:chart|graph|plot|diagram)s?)|\s+for (?:me|us))?[\s.?!:,;]*$`)

	// trailingJoin is a joining word (and an x axis word) left at the end of a title
	// where the prompt's data was cut off.
	trailingJoin = regexp.MustCompile(`(?i)\s+(?:at|on|for|in|over|across|during|of|from|by|with|between|and|to)(?:\s+(?:the\s+)?(?:days?|weeks?|months?|years?|visits?|hours?|cycles?|sessions?|doses?|quarters?|time ?points?))?\s*$`)
	axisVs       = regexp.MustCompile(`(?i)^(.+?)\s+(?:vs\.?|versus)\s+(.+)$`)
	axisAgainst  = regexp.MustCompile(`(?i)^(.+?)\s+against\s+(.+)$`)
	axisBetween  = regexp.MustCompile(`(?i)^(?:the\s+)?(?:correlation|relationship|association)\s+(?:between|of)\s+(.+?)\s+(?:and|with|to)\s+(.+)$`)
	axisDist     = regexp.MustCompile(`(?i)^(?:the\s+)?distribution\s+of\s+(.+?)(?:\s+(?:by|across|between|among|for each)\s+(.+))?$`)
	axisPer      = regexp.MustCompile(`(?i)^(.+?)\s+(?:per|by|across|for each|in each|over)\s+(.+)$`)
	axisMonthly  = regexp.MustCompile(`(?i)^(daily|weekly|monthly|quarterly|yearly|annual)\s+(.+)$`)
	axisPeriod   = regexp.MustCompile(`(?i)^(?:the\s+)?(?:past|last|next|previous)\s+(?:\d+\s+|few\s+|several\s+)?(\w+?)s?$`)
	axisOverTime = regexp.MustCompile(`(?i)\b(?:over time|per (day|week|month|quarter|year))\b`)
	timeWord     = regexp.MustCompile(`(?i)^(?:the\s+)?(?:time|date|dates|day|days|week|weeks|month|months|year|years|quarter|quarters)$`)
	leadArticle  = regexp.MustCompile(`(?i)^(?:the|a|an)\s+`)
)

// instruction starts a clause that says how to draw rather than what.
var instruction = regexp.MustCompile(`^(?:use|make|add|label|colou?r|include|set|put|save|export|show|please|and|with|in|as|using|no|not|don't|do not|without|sort|order|title|then|also|plot|draw)\b`)

// leadNegation starts an aside such as "not a table".
var leadNegation = regexp.MustCompile(`^(?:no|not|don't|do not|without|never|rather than|instead of)\b`)

// stripRequest removes the request words from the start of a clause.
func stripRequest(head string) string {
	head = strings.Join(strings.Fields(head), " ")
	for changed := true; changed; {
		changed = false
		for _, re := range titlePrefixes {
			if loc := re.FindStringIndex(head); loc != nil && loc[1] > 0 {
				head = head[loc[1]:]
				changed = true
			}
		}
	}
	return strings.TrimSpace(head)
}

var periodNames = map[string]string{
	"daily": "Day", "weekly": "Week", "monthly": "Month", "quarterly": "Quarter", "yearly": "Year", "annual": "Year",
}

// labels derives the figure's title and axis labels from the prompt. By convention
// XLabel names the categories or the independent variable and YLabel the values;
// a horizontal bar template swaps the axes itself.
func labels(prompt string, res Result, dataStart int) (title, x, y string) {
	head := prompt
	cut := dataStart >= 0 && dataStart < len(head)
	if cut {
		head = head[:dataStart]
	}
	// The first line or sentence is the request; what follows is usually data or
	// instructions.
	if i := strings.IndexAny(head, "\n"); i >= 0 {
		head = head[:i]
	}
	if i := strings.Index(head, ". "); i >= 0 {
		head = head[:i]
	}
	// Negated clauses say what not to draw: "don't use a bar chart, use a pie chart
	// for market share" is titled "Market share".
	// The title is the first clause with content left after the request words are
	// stripped, plus the clauses that continue it ("Compare A, B and C"); clauses
	// that give instructions ("don't use colors", "not a table") are not the subject.
	var keep []string
	for _, c := range clauseSplit.Split(head, -1) {
		lc := normalize(strings.TrimSpace(c))
		if found, neg := vizKeywords(lc); len(found) == 0 && len(neg) > 0 {
			continue
		}
		if len(keep) == 0 {
			if leadNegation.MatchString(lc) {
				continue
			}
			if c = stripRequest(c); c != "" {
				keep = append(keep, c)
			}
			continue
		}
		if lc == "" || instruction.MatchString(lc) {
			break
		}
		keep = append(keep, strings.TrimSpace(c))
	}
	head = strings.Join(strings.Fields(strings.Join(keep, ", ")), " ")
	// Suffixes stack ("as a line chart using plotly"): strip until none is left. The
	// data cut can leave a joining word ("ER visits in 2022 (…)" → "ER visits").
	for prev := ""; prev != head; {
		prev = head
		head = strings.TrimSpace(titleSuffix.ReplaceAllString(head, ""))
		if cut && !strings.ContainsAny(head, ".\n") {
			head = strings.TrimSpace(trailingJoin.ReplaceAllString(head, ""))
		}
	}
	if head == "" {
		return "", "", ""
	}

	switch {
	case axisBetween.MatchString(head):
		m := axisBetween.FindStringSubmatch(head)
		x, y = m[1], m[2]
	case axisDist.MatchString(head):
		m := axisDist.FindStringSubmatch(head)
		if m[2] != "" {
			x, y = m[2], m[1] // box: groups along x, the measure on y
		} else {
			x, y = m[1], "Count"
		}
	case axisVs.MatchString(head):
		m := axisVs.FindStringSubmatch(head)
		x, y = m[1], m[2]
		// "hemoglobin vs time": time goes on the x axis whatever the order.
		if timeWord.MatchString(strings.TrimSpace(m[1])) {
			x, y = m[2], m[1]
		}
	case axisAgainst.MatchString(head):
		m := axisAgainst.FindStringSubmatch(head)
		x, y = m[2], m[1] // "plot Y against X"
	case axisPer.MatchString(head):
		m := axisPer.FindStringSubmatch(head)
		y, x = m[1], m[2]
		switch {
		case strings.EqualFold(x, "time"):
			x = "Time"
		case axisPeriod.MatchString(x):
			x = axisPeriod.FindStringSubmatch(x)[1]
		case axisOverTime.MatchString(x):
			// "admissions by cause over time": time is the x axis; the groups
			// are series.
			unit := axisOverTime.FindStringSubmatch(x)[1]
			x = firstNonEmpty(unit, "Time")
		}
	case axisMonthly.MatchString(head):
		m := axisMonthly.FindStringSubmatch(head)
		x, y = periodNames[strings.ToLower(m[1])], m[2]
	}
	x, y = axisText(x), axisText(y)

	// With data in the prompt and no stated measure, the title's last word names the
	// values ("SCD treatment effectiveness" → "Effectiveness (%)", as in the seed).
	if y == "" && len(res.Values) > 0 {
		w := strings.Fields(head)
		if strings.Contains(strings.ToLower(head), " of ") && len(w) <= 4 {
			y = axisText(head)
		} else {
			y = axisText(w[len(w)-1])
		}
	}
	if res.Unit == "%" && y != "" && !strings.Contains(y, "%") {
		y += " (%)"
	}
	return capitalize(truncate(head, maxTitle)), x, y
}

// axisText cleans a phrase for an axis: no leading article or trailing punctuation,
// first letter capitalized, bounded length.
func axisText(s string) string {
	s = strings.TrimSpace(leadArticle.ReplaceAllString(strings.TrimSpace(s), ""))
	s = strings.TrimRight(s, " .,;:?!")
	return capitalize(truncate(s, maxAxisLabel))
}

// capitalize upper-cases the first letter of an all-lowercase first word, leaving
// acronyms and names like "mRNA" or "HbF" alone.
func capitalize(s string) string {
	first := s
	if i := strings.IndexByte(s, ' '); i >= 0 {
		first = s[:i]
	}
	if first == "" || strings.ToLower(first) != first {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// truncate cuts s to at most max bytes on a rune boundary, preferring a word
// boundary, and marks the cut with an ellipsis.
func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if i := strings.LastIndexByte(s[:cut], ' '); i > cut/2 {
		cut = i
	}
	return strings.TrimSpace(s[:cut]) + "…"
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
