package detect

import (
	"regexp"
	"strings"
)

// maxKeywords bounds Result.Keywords: it is copied into the request's status.
const maxKeywords = 10

// negationReach is how many words may sit between a negation and the keyword it
// cancels ("no need for a bar chart" has four).
const negationReach = 5

// maxPromptBytes bounds the work Detect does on hostile input: regexes are linear,
// but there is no reason to scan megabytes of prompt for a chart request.
const maxPromptBytes = 16 << 10

// Every pattern is compiled once at package init; Detect itself only matches.
var (
	// clauseSplit cuts a prompt into clauses, so that "don't plot it, just tell me" and
	// "not a bar chart, a pie chart" negate only their own clause.
	clauseSplit = regexp.MustCompile(`(?i)[.;!?\n]+(?:\s|$)|,|\bbut\b|\bjust\b|\binstead\b|\bthen\b`)

	// showCue makes an imperative "show" a chart request when the clause describes
	// a chart's shape ("show the distribution of HbF", "display VOE over time"), but
	// not "do studies show a correlation?" (show is not the clause's verb there).
	showCue = regexp.MustCompile(`^\s*(?:(?:please|can you|could you|would you|will you|i want to|i'd like to|let's|let me|help me)\s+)*(?:show|display|illustrate|depict)\b`)

	// vizStrong are words that ask for a visualization on their own.
	vizStrong = regexp.MustCompile(`\b(?:visuali[sz](?:e|es|ed|ing|ation|ations)|charts?|charted|charting|graphs?|graphed|graphing|plots?|plotted|plotting|diagrams?|histograms?|heat ?maps?|scatter ?plots?|box ?plots?|box-and-whisker|infographics?|sparklines?|time series|scatter of)\b`)
	// vizForeign are the same words in Spanish, German, French, Portuguese and
	// Italian (German compounds: Balkendiagramm, Liniendiagramm, ...).
	vizForeign = regexp.MustCompile(`(?:\b(?:gr[áa]fic[oa]s?|gr[áa]fica|grafici|diagramas?|diagrammes?|diagrammi|diagramma|graphiques?|graphe|\p{L}*diagramm(?:e|en)?|schaubild(?:er)?|histogramas?|histogrammes?|histogramm(?:e|en)?|istogramm[ai]|camembert|visualis(?:ez|er|ieren|iere|iert)|visualiz(?:a|ar|e|ate)|visualizza(?:re)?|plotte|plotten|zeichne|trace[rz]|dessine[rz]?|diagrama|grafico|gr[áa]fico)\b)` +
		// Chinese, Japanese and Korean chart words (no word boundaries in CJK text).
		`|(?:柱状图|條形圖|条形图|折线图|折線圖|饼图|餅圖|散点图|散點圖|直方图|直方圖|箱线图|箱形图|热力图|熱力圖|面积图|面積圖|图表|圖表|グラフ|チャート|차트|그래프)`)
	// vizWeak ask for a visualization only after a creation verb ("draw a survival curve").
	vizWeak = regexp.MustCompile(`\b(?:curves?|figures?|trend ?lines?)\b`)
	// creation verbs make a weak keyword count and override the interpretation guard.
	creation = regexp.MustCompile(`\b(?:make|create|generate|draw|build|produce|render|sketch|give me|show me|display|visuali[sz]e|i (?:want|need|would like)|i'd like)\b`)

	createsPronoun = regexp.MustCompile(`\b(?:make|create|generate|draw|build|produce|render|sketch|plot|show me|give me) (?:one|it|this|that|them)\b`)

	// negator before a keyword in the same clause cancels the keyword.
	negator = regexp.MustCompile(`\b(?:don't|dont|do not|does not|doesn't|did not|didn't|no|not|never|without|w/o|no need|rather than|instead of|skip|avoid|refrain from|nor|none|sin|nada de|kein|keine|keinen|keiner|nicht|ohne|pas de|pas d'|ne|sans|jamais|n[ãa]o|sem|nenhum|nenhuma|non|senza|nessun|nessuna)\b`)

	// aboutCharts asks about charts rather than for one: "should I use a pie chart or
	// a bar chart?", "which chart suits five categories?".
	aboutCharts = regexp.MustCompile(`\b(?:why (?:do|does|are|is|would|should|did) |should (?:i|we|you) (?:use|choose|pick|go with)|which (?:chart|graph|plot|kind|type|one)|which (?:is|one is|would be|works) (?:better|best|more)|what (?:kind|type|sort) of (?:chart|graph|plot)|when (?:should (?:i|we|you) |to |do (?:i|we|you) )?use|difference between|pros and cons|is (?:a|an) \w+ (?:chart|graph|plot) (?:better|appropriate|suitable|good)|better (?:choice|option|than)|recommend(?:ed)? (?:a|an|the)? ?(?:chart|graph|plot)|best (?:chart|graph|plot|way to (?:show|visuali[sz]e|display)))\b`)
	// chartQuestion is a question that weighs or explains charts rather than asking
	// for one: "is a histogram or a box plot better for skewed data?", "are violin
	// plots more informative than box plots?", "how is a violin plot different from a
	// box plot?", "can a pie chart show negative values?". It counts only in a
	// question (a "?") with no request in it (requestForm).
	chartQuestion = regexp.MustCompile(`\b(?:better|best|worse|worst|preferable|prefer(?:red)?|more (?:suitable|appropriate|informative|useful|readable|accurate|honest|effective)|less (?:suitable|appropriate|informative|useful|readable|misleading)|(?:suitable|appropriate|suited|ideal|advisable|misleading|enough|fine) (?:for|to|when|here|with)|suit(?:s|ed)?|differ(?:s|ent)? from|difference|instead|(?:ok|okay|fine|wise|a good idea|a bad idea|necessary|acceptable|valid|correct|wrong|a mistake|allowed|misleading) to|or (?:as )?(?:a|an) (?:\w+[- ])?(?:chart|graph|plot|curve|heat ?map|histogram|box ?plot)s?|(?:a|an) (?:\w+ )?(?:chart|graph|plot|heat ?map|histogram|box ?plot)s? (?:or|vs\.?|versus) (?:a|an) )`)
	// chartQuestionLead starts a question that is about charts in general ("can a pie
	// chart show ...", "is a box plot ...", "should I show ... as ...").
	chartQuestionLead = regexp.MustCompile(`^\s*(?:(?:i'd like to know|i would like to know|i wonder|i'm wondering|tell me|do you know|any idea)\s+)?(?:is|are|was|were|should|would|could|can|does|do|did|will|which|what|when|why|how|whether|if)\b`)
	// requestForm is a request, whatever question sits beside it: "can you plot",
	// "could I get", a clause that starts with a drawing verb ("Plot a bar chart",
	// "if so, plot 3, 5, 8").
	requestForm = regexp.MustCompile(`\b(?:can|could|would|will) you (?:please )?(?:plot|chart|graph|draw|make|create|generate|build|render|sketch|show|give|display|visuali[sz]e|put|turn)\b|\b(?:can|could|may) (?:i|we) (?:get|have|see)\b|\bi(?:'d| would)? (?:want|need|like) (?:a|an|to (?:see|get|have))\b|(?:^|[.;!?:,]\s*)(?:please\s+)?(?:plot|chart|graph|draw|make|create|generate|build|render|sketch|show me|give me|display|visuali[sz]e)\b`)
	// tableRequest asks for a table or list: with only the chart it refers to ("the
	// values of the bar chart as a table"), it is not a chart request.
	tableRequest = regexp.MustCompile(`\b(?:in|as|into) (?:a |an )?(?:table|list|spreadsheet)\b|\btabulate\b|\btable (?:of|with|listing)\b|\b(?:make|create|give me) (?:a |an )?table\b`)
	// definiteChart is a chart word that refers to a chart already there ("the bar
	// chart", "this graph").
	definiteChart = regexp.MustCompile(`\b(?:the|this|that|these|those|my|our|your|its|their) (?:\w+ ){0,2}$`)

	// explainOnly ends a question that wants words: "Explain briefly."
	explainOnly = regexp.MustCompile(`\b(?:explain|tell me|answer|in (?:one|two|three|a few) (?:sentences?|words|lines)|briefly|in short)\b`)
	// literaryPlot is a story's plot: "summarize the plot of Moby-Dick".
	literaryPlot = regexp.MustCompile(`\b(?:summari[sz]e|summary of|recap|retell|outline|describe|explain|what is|what's|what happens in|tell me)\b[^.?!]{0,30}\bplots?\b(?:\s+(?:of|in)\b)?`)

	// axisRange is an axis label that is a range of items ("Days 1 to 4").
	axisRange = regexp.MustCompile(`(?i)^(\p{L}+)\s+\d+\s*(?:to|through|-|–)\s*\d+$`)

	// trendCue asks how given numbers changed: with data in the prompt, it is a line
	// chart request even without a chart word ("how did bilirubin change over four
	// visits: 2.1, 2.6, 3.0, 2.4").
	trendCue = regexp.MustCompile(`\b(?:how (?:did|does|has|have|do) .{1,60}? (?:change|changed|evolve|evolved|develop|developed|vary|varied|progress|trend|go|move)|(?:change|changes|trend|trends|evolution|progression|course|trajectory) (?:of|in) .{1,40}? (?:over|across|during|by)|(?:over|across) (?:time|the (?:visits|days|weeks|months|years|cycles))\b)`)

	// interpretation asks about reading a chart, not for one ("how do I read a
	// Kaplan-Meier curve?", "what is a forest plot?").
	interpretation = regexp.MustCompile(`\b(?:how (?:do|should|can|would|to) (?:i |we |you |one )?(?:read|interpret|understand|use)|interpret(?:s|ing|ation)?|what (?:is|are|does|do) (?:a |an |the |this |my |these )?|explain|meaning of|definition of|define)\b`)

	// falseFriends are phrases where a viz word means something else. A keyword inside
	// one of these spans is ignored.
	falseFriends = []*regexp.Regexp{
		regexp.MustCompile(`\bgraphs? (?:theory|theories|theoretic|databases?|neural|algorithms?|traversal|coloring|colouring|isomorphism|edges?|nodes?|vertices|embeddings?|search|partitioning)\b`),
		regexp.MustCompile(`\b(?:knowledge|social|call|dependency|scene|computational|directed|undirected|bipartite|acyclic|property|planar|weighted) graphs?\b`),
		regexp.MustCompile(`\bplots? (?:twists?|summary|summaries|holes?|lines?|points?|armou?r|devices?|of land|synopsis|structure)\b`),
		regexp.MustCompile(`\b(?:the|a|its|their|this|that|main|whole) plots? (?:of|in|from) (?:the |a |this |that )?(?:movie|film|novel|book|story|show|series|play|episode|game|opera|musical|season|anime|manga|sequel|trilogy)\b`),
		regexp.MustCompile(`\b(?:movie|film|novel|book|story|show|series|play|game|episode)'?s? plots?\b`),
		regexp.MustCompile(`\bwho plotted\b|\bplott(?:ed|ing) (?:to|against|revenge|an? (?:escape|coup|murder))\b|\bplots? (?:to|against) (?:kill|overthrow|assassinate|murder|destroy|steal|the)\b|\bplotted (?:the|a|an|his|her|their) (?:novel|story|book|film|movie|murder|coup|escape|series)\b`),
		regexp.MustCompile(`\b(?:gunpowder|assassination|murder|terror|terrorist|coup|garden|burial|vegetable|cemetery|grave|allotment|evil) plots?\b`),
		regexp.MustCompile(`\b(?:patient'?s?|patients'|medical|hospital|nursing|clinical|health) charts?\b|\bcharts? (?:reviews?|notes?|audits?|abstraction|documentation)\b|\bcharting (?:in|for) (?:nursing|the patient)\b`),
		// The medical record: "her chart notes", "as documented in the chart", "the
		// nurse charted a pulse of 112".
		regexp.MustCompile(`\b(?:the|his|her|their|my|your|our) (?:medical |paper |electronic )?charts? (?:says?|said|notes?|noted|shows? (?:a|an|that|no)|showed|lists?|listed|documents?|documented|indicates?|indicated|records?|recorded|mentions?|mentioned|reads?|states?|stated)\b|\b(?:documented|noted|recorded|written|entered|logged|charted|filed|found) (?:in|on) (?:the|his|her|their|a|my|our) (?:\w+'s )?charts?\b|\b(?:nurses?|staff|doctors?|physicians?|residents?|clinicians?|i|we|she|he|they) (?:had |have |has )?charted\b`),
		regexp.MustCompile(`\bchart(?:ed|ing|s)? (?:a|the|our|my|your|their|his|her) (?:course|path|way|future|waters)\b|\b(?:top|topped|topping|top of) the charts?\b|\bchart-topping\b|\b(?:billboard|music|album|singles) charts?\b|\boff the charts?\b`),
		regexp.MustCompile(`\b(?:learning|bell|demand|supply|yield) curves?\b|\bfigures? (?:out|skating)\b|\bpublic figures?\b|\bfigured\b`),
	}

	// Tool routing for prompts that are not visualizations. Literature wins over
	// current events: "latest trials of voxelotor" is a PubMed question.
	literature = regexp.MustCompile(`\b(?:stud(?:y|ies)|trials?|rcts?|evidence|evidence-based|literature|meta-analys[ie]s|systematic reviews?|research(?:ers)?|papers?|publications?|published|pubmed|medline|cohorts?|guidelines?|efficacy|side effects?|adverse (?:events?|effects?)|contraindications?|prognosis|mortality|dosing|pharmacokinetics|mechanism of action|clinical)\b`)
	current    = regexp.MustCompile(`\b(?:news|headlines?|latest|current(?:ly)? (?:price|status|ceo|president)|prices?|stock|stocks|share price|weather|forecast|score|scores|who won|election|announced|announcement|release date|breaking|trending|update on|approved (?:this|last))\b`)
	// currentTime are words of time that make a question about current events, unless
	// it is about a patient ("a fever of 39.2 yesterday").
	currentTime = regexp.MustCompile(`\b(?:today|today's|tonight|yesterday|this (?:week|month|year|morning|afternoon|evening)|right now|currently|recent(?:ly)?)\b`)
	// clinicalCase is a question about a patient in one's care.
	clinicalCase = regexp.MustCompile(`\b(?:patient'?s?|patients'|(?:his|her|their) (?:chart|fever|temperature|pulse|blood pressure|bp|labs?|potassium|sodium|glucose|hemoglobin|haemoglobin|inr|creatinine|symptoms?|pain|dose|medications?|vitals)|(?:the|a|our) (?:nurse|ward|icu|unit)|charted|documented|on rounds|at the bedside|admitted|discharged|bp|hr|spo2|tachycardi\w*|bradycardi\w*|hypertensi\w*|fever|febrile)\b`)
)

// Detect decides from keywords and patterns alone whether prompt asks for a chart,
// which chart and which tool should serve it. It is pure and deterministic.
func Detect(prompt string) Result {
	if len(prompt) > maxPromptBytes {
		prompt = prompt[:maxPromptBytes]
	}
	res := Result{Tool: ToolNone, ChartType: ChartAuto, Source: SourceKeywords}
	// Full-width digits and punctuation (CJK text) read as ASCII: "１２０，" is "120,".
	prompt = foldWidth(prompt)
	text := normalize(prompt)
	kws := newKeywordSet()

	// positive holds the clauses whose viz keywords were not negated: chart-type cues
	// are read from them only ("not a bar chart, a pie chart" is a pie).
	var positive []string
	var negated []string
	for _, clause := range clauseSplit.Split(text, -1) {
		found, neg := vizKeywords(clause)
		switch {
		case len(found) > 0:
			res.Visualization = true
			kws.add(found...)
			positive = append(positive, clause)
		case len(neg) > 0:
			negated = append(negated, neg...)
		default:
			positive = append(positive, clause)
		}
	}

	// A question about charts ("should I use a pie chart or a bar chart? Explain
	// briefly.") and a story's plot are answered in words.
	if res.Visualization && !creation.MatchString(text) && !requestForm.MatchString(text) {
		if (aboutCharts.MatchString(text) && (strings.Contains(text, "?") || explainOnly.MatchString(text))) || literaryPlot.MatchString(text) {
			res.Visualization = false
			kws = newKeywordSet()
		}
	}
	if res.Visualization && (questionAboutCharts(text) || tableOfChart(text, positive)) {
		res.Visualization = false
		kws = newKeywordSet()
	}
	// Given numbers and a question about their change over time: a line chart.
	if !res.Visualization && len(negated) == 0 && trendCue.MatchString(text) {
		if d := extractData(prompt); len(d.Values) >= 3 {
			res.Visualization = true
			kws.add(trendCue.FindString(text))
			positive = append(positive, "trend")
		}
	}

	if res.Visualization {
		res.Tool = ToolCodeInterpreter
		pos := strings.Join(positive, " , ")
		var cue string
		res.ChartType, cue = chartType(pos)
		if cue != "" {
			kws.add(cue)
		}
		data := extractData(prompt)
		res.Labels, res.Values, res.Unit = data.Labels, data.Values, data.Unit
		res.X, res.Series = data.X, data.Series
		res.Stacked = stackedBars.MatchString(text)
		askedX, askedY, unquoted := axisLabels(prompt)
		if t, a, b := quotedTitle(unquoted); t != "" {
			// Axis labels come from the rest of the prompt.
			start := data.Start
			if start >= b {
				start -= b - a
			}
			_, res.XLabel, res.YLabel = labels(unquoted[:a]+unquoted[b:], res, start)
			res.Title = t
		} else {
			res.Title, res.XLabel, res.YLabel = labels(unquoted, res, data.Start)
		}
		// Two named lists for a scatter are its x and y ("heights 150, 160 and
		// weights 50, 58").
		if res.ChartType == ChartScatter && len(res.Series) == 2 && len(res.X) == 0 && len(res.Series[0].Values) == len(res.Series[1].Values) {
			sx, sy := res.Series[0], res.Series[1]
			res.X, res.Values, res.Series, res.Labels = sx.Values, sy.Values, nil, nil
			res.XLabel, res.YLabel = capitalize(sx.Name), capitalize(sy.Name)
		}
		if askedX != "" {
			res.XLabel = askedX
		}
		if askedY != "" {
			res.YLabel = askedY
		}
		// "over days 1 to 4" names the axis "Day", not "Days 1 to 4".
		if m := axisRange.FindStringSubmatch(res.XLabel); m != nil {
			res.XLabel = capitalize(strings.TrimSuffix(m[1], "s"))
		}
		if data.XName != "" && res.XLabel == "" {
			w := strings.Fields(data.XName)
			res.XLabel = axisText(w[len(w)-1])
		}
		res.Keywords = kws.list()
		return res
	}

	// Not a chart: route the question. A negated request ("no chart, just tell me
	// the trials") still goes to the tool its words ask for.
	kws.add(negated...)
	if m := literature.FindAllString(text, -1); len(m) > 0 {
		res.Tool = ToolPubMedSearch
		kws.add(m...)
	} else if m := current.FindAllString(text, -1); len(m) > 0 {
		res.Tool = ToolWebSearch
		kws.add(m...)
	} else if m := currentTime.FindAllString(text, -1); len(m) > 0 && !clinicalCase.MatchString(text) {
		res.Tool = ToolWebSearch
		kws.add(m...)
	}
	res.Keywords = kws.list()
	return res
}

// vizKeywords returns the clause's visualization keywords that count, and those that
// were cancelled by a negation (for status: they explain a "no").
func vizKeywords(clause string) (found, negated []string) {
	strong := append(vizStrong.FindAllStringIndex(clause, -1), vizForeign.FindAllStringIndex(clause, -1)...)
	weak := vizWeak.FindAllStringIndex(clause, -1)
	shows := showCue.MatchString(clause)
	if len(strong) == 0 && len(weak) == 0 && !shows {
		return nil, nil // most clauses: skip the costlier patterns
	}
	ff := falseFriendSpans(clause)
	interp := interpretation.FindStringIndex(clause)
	creates := creation.FindStringIndex(clause)
	negs := negator.FindAllStringIndex(clause, -1)

	consider := func(m []int, weak bool) {
		if inSpans(m, ff) {
			return
		}
		word := clause[m[0]:m[1]]
		for _, n := range negs {
			// A negation reaches a few words ahead: "don't give me a bar chart", but
			// not "plot patients who did not respond ... in a chart".
			if n[1] <= m[0] && len(strings.Fields(clause[n[1]:m[0]])) <= negationReach {
				negated = append(negated, clause[n[0]:n[1]]+" "+word)
				return
			}
		}
		// "how do I read a forest plot?" asks about a chart; "explain it and make a
		// plot" still asks for one.
		if interp != nil && interp[1] <= m[0] && creates == nil {
			return
		}
		// A weak word needs a creation verb before it, or after it with a pronoun
		// ("what a survival curve shows, and draw one").
		if weak && (creates == nil || creates[1] > m[0]) && !createsPronoun.MatchString(clause[m[1]:]) {
			return
		}
		found = append(found, word)
	}
	for _, m := range strong {
		consider(m, false)
	}
	for _, m := range weak {
		consider(m, true)
	}
	if len(found) == 0 && len(negated) == 0 && shows {
		if _, cue := chartType(clause); cue != "" && !inSpans(showCue.FindStringIndex(clause), ff) {
			found = append(found, strings.TrimSpace(showCue.FindString(clause)))
		}
	}
	return found, negated
}

func falseFriendSpans(clause string) [][]int {
	var spans [][]int
	for _, re := range falseFriends {
		spans = append(spans, re.FindAllStringIndex(clause, -1)...)
	}
	return spans
}

func inSpans(m []int, spans [][]int) bool {
	for _, s := range spans {
		if m[0] >= s[0] && m[1] <= s[1] {
			return true
		}
	}
	return false
}

// normalize lowercases and folds typographic apostrophes and dashes so patterns stay
// simple ("don’t" is "don't").
func normalize(s string) string {
	s = strings.ToLower(s)
	// "instead of a chart" negates the chart; clauseSplit cuts at a bare "instead".
	return strings.NewReplacer("’", "'", "‘", "'", "–", "-", "—", " - ", "instead of", "rather than").Replace(s)
}

// foldWidth maps full-width ASCII forms (U+FF01–FF5E: "１２０", "：", "，") and the
// ideographic space and comma to ASCII, so CJK prompts are read like others.
func foldWidth(s string) string {
	wide := func(r rune) bool { return r >= 0xFF01 && r <= 0xFF5E || r == 0x3000 || r == '、' }
	if !strings.ContainsFunc(s, wide) {
		return s // and invalid UTF-8 stays as it is
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			return r - 0xFEE0
		case r == 0x3000:
			return ' '
		case r == '、':
			return ','
		}
		return r
	}, s)
}

// keywordSet keeps first-seen order, drops duplicates and stops at maxKeywords.
type keywordSet struct {
	seen  map[string]bool
	order []string
}

func newKeywordSet() *keywordSet { return &keywordSet{seen: map[string]bool{}} }

func (k *keywordSet) add(words ...string) {
	for _, w := range words {
		w = strings.TrimSpace(w)
		if w == "" || k.seen[w] || len(k.order) >= maxKeywords {
			continue
		}
		w = truncate(w, 40)
		k.seen[w] = true
		k.order = append(k.order, w)
	}
}

func (k *keywordSet) list() []string {
	if len(k.order) == 0 {
		return nil
	}
	return k.order
}

// questionAboutCharts reports whether text asks about charts (which is better, how
// one differs, what one can show) without asking for one: a question, led by a
// question word, that weighs or compares charts, and no request beside it ("Which
// month was best? Plot a bar chart: ..." is a request).
func questionAboutCharts(text string) bool {
	if !strings.Contains(text, "?") || requestForm.MatchString(text) {
		return false
	}
	for _, q := range strings.SplitAfter(text, "?") {
		if !strings.Contains(q, "?") {
			continue
		}
		// The question itself: the last sentence before the "?".
		if i := strings.LastIndexAny(strings.TrimSuffix(q, "?"), ".!;\n"); i >= 0 {
			q = q[i+1:]
		}
		found, _ := vizKeywords(q)
		if len(found) == 0 || !chartQuestionLead.MatchString(q) {
			continue
		}
		if chartQuestion.MatchString(q) || genericChartSubject(q) {
			return true
		}
	}
	return false
}

// genericChartSubject is a question whose subject is a kind of chart: "can a pie
// chart show negative values?", "does a histogram need equal bins?".
var genericChartSubject = regexp.MustCompile(`^\s*(?:can|could|does|do|is|are|should|must|may|will|would) (?:(?:a|an|all|most)\s+)?(?:\w+[- ])?(?:charts?|graphs?|plots?|histograms?|heat ?maps?|box ?plots?|pies?)\b`).MatchString

// tableOfChart reports whether the request asks for a table of a chart that is
// already there ("list the values shown in the bar chart as a table"): every chart
// word refers to that chart.
func tableOfChart(text string, positive []string) bool {
	if !tableRequest.MatchString(text) {
		return false
	}
	for _, clause := range positive {
		for _, m := range append(vizStrong.FindAllStringIndex(clause, -1), vizForeign.FindAllStringIndex(clause, -1)...) {
			// The chart word and the words naming its kind ("bar chart"): look before them.
			before := clause[:m[0]]
			if !definiteChart.MatchString(before) {
				return false
			}
		}
	}
	return true
}
