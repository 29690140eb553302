package codegen

import (
	"bytes"
	"embed"
	"fmt"
	"github.com/vizops/viz-operator/internal/chartdata"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"unicode/utf8"

	"github.com/vizops/viz-operator/internal/detect"
)

//go:embed templates/*.py.tmpl
var templateFS embed.FS

// Bounds on what a template draws, so a wide CSV still makes a readable chart.
const (
	maxCategories = 30 // bars or slices taken from a CSV
	maxGroups     = 12 // boxes
	maxSeries     = 5  // lines or areas
	maxHeatmap    = 15 // heatmap columns
)

var (
	parseOnce sync.Once
	parsed    *template.Template
	parseErr  error
)

// templates parses the embedded templates once; every later call reuses them.
func templates() (*template.Template, error) {
	parseOnce.Do(func() {
		parsed, parseErr = template.New("").Option("missingkey=error").ParseFS(templateFS, "templates/*.py.tmpl")
	})
	return parsed, parseErr
}

// TemplateNames lists the chart templates FromTemplate can choose from.
func TemplateNames() []string {
	t, err := templates()
	if err != nil {
		return nil
	}
	var names []string
	for _, tt := range t.Templates() {
		if n, ok := strings.CutSuffix(tt.Name(), ".py.tmpl"); ok && !strings.HasPrefix(n, "_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// fill is what a template sees. Every string that reaches Python is already a Python
// literal (pyStr, pyList, ...), so prompt or CSV text can never become code.
type fill struct {
	Mode                  string // "csv", "prompt" or "default"
	Title, XLabel, YLabel string // literals; XLabel and YLabel may be "" (not set)
	DataFile              string
	Labels, Values, X, YS string
	Groups, SeriesName    string
	Series                string // dict literal of several named series, or ""
	Stacked               bool   // stack the bars
	XCol, YCol, CatCol    string // column-name literals, or ""
	YCols                 string // list literal, or ""
	XKind                 string // the x column's type: "date", "number", "category"
	Corr                  bool   // the heatmap shows correlations
	MaxCategories         int
	MaxGroups             int
}

// FromTemplate fills the built-in template for the detected chart type (resolving
// "auto" from the data) with the prompt's title, labels and data, else the CSV, else
// illustrative data. "html" in Formats selects the plotly variant.
func FromTemplate(in Input) (Code, error) {
	var sum *Summary
	if len(in.CSV) > 0 {
		s, err := SummarizeCSV(in.CSV, 0)
		if err != nil {
			return Code{}, fmt.Errorf("%s: %w", DataFile, err)
		}
		sum = &s
	}
	chart := resolveChart(in.Detection, sum)
	plotly := slices.Contains(in.Formats, "html")
	f, err := fillFor(chart, in.Prompt, in.Detection, sum, plotly)
	if err != nil {
		return Code{}, err
	}
	name := string(chart)
	if plotly {
		name = "plotly_" + name
	}
	t, err := templates()
	if err != nil {
		return Code{}, fmt.Errorf("parsing templates: %w", err)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name+".py.tmpl", f); err != nil {
		return Code{}, fmt.Errorf("template %s: %w", name, err)
	}
	return Code{Code: buf.String(), Source: SourceTemplate, Template: name, DataSource: dataSources[f.Mode]}, nil
}

var dataSources = map[string]DataSource{"prompt": DataPrompt, "csv": DataAttached, "default": DataIllustrative}

// DataSourceOf says where the numbers of code generated for in come from: the prompt,
// the attached data, or (neither given) the template's illustration or the model.
func DataSourceOf(in Input, src Source) DataSource {
	switch {
	case len(in.Detection.Values) > 0:
		return DataPrompt
	case len(in.CSV) > 0:
		return DataAttached
	case src == SourceModel:
		return DataModel
	case src == SourceUser:
		return ""
	}
	return DataIllustrative
}

// ResolveChart is the chart FromTemplate draws for in: the detected type, or for
// "auto" a default chosen from the data.
func ResolveChart(in Input) detect.ChartType {
	var sum *Summary
	if len(in.CSV) > 0 {
		if s, err := SummarizeCSV(in.CSV, 0); err == nil {
			sum = &s
		}
	}
	return resolveChart(in.Detection, sum)
}

// timeLabel recognizes labels that are points in time: months, quarters, years,
// dates, "Week 3".
var timeLabel = regexp.MustCompile(`(?i)^(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|q[1-4]|(?:19|20)\d\d|\d{4}-\d\d(?:-\d\d)?|(?:week|day|month|year|quarter|visit|cycle) \d+)\b`)

func resolveChart(d detect.Result, sum *Summary) detect.ChartType {
	if d.ChartType != "" && d.ChartType != detect.ChartAuto {
		return d.ChartType
	}
	switch {
	case len(d.Values) > 0 && len(d.X) == len(d.Values):
		// Numeric x values: a line when they increase (days, hours), else points.
		for i := 1; i < len(d.X); i++ {
			if d.X[i] <= d.X[i-1] {
				return detect.ChartScatter
			}
		}
		return detect.ChartLine
	case len(d.Values) > 0 && len(d.Labels) == len(d.Values):
		for _, l := range d.Labels {
			if !timeLabel.MatchString(l) {
				return detect.ChartBar
			}
		}
		return detect.ChartLine
	case len(d.Values) > 0:
		return detect.ChartLine
	case sum != nil:
		nums := sum.ColumnsOf(ColumnNumber)
		switch {
		case len(sum.ColumnsOf(ColumnDate)) > 0 && len(nums) > 0:
			return detect.ChartLine
		case len(sum.ColumnsOf(ColumnCategory)) > 0:
			return detect.ChartBar
		case len(nums) >= 2:
			return detect.ChartScatter
		case len(nums) == 1:
			return detect.ChartHistogram
		}
	}
	return detect.ChartBar
}

// fillFor decides where the chart's data comes from and fills the template fields.
func fillFor(chart detect.ChartType, prompt string, d detect.Result, sum *Summary, plotly bool) (fill, error) {
	text := pyStr
	if plotly {
		text = plotlyStr
	}
	f := fill{
		DataFile:      pyStr(DataFile),
		MaxCategories: maxCategories,
		MaxGroups:     maxGroups,
		SeriesName:    text(firstNonEmpty(d.YLabel, "Value")),
	}
	xLabel, yLabel := d.XLabel, d.YLabel
	hasPrompt := len(d.Values) > 0
	switch {
	case hasPrompt:
		f.Mode = "prompt"
		f.fromPrompt(chart, d)
	case sum != nil:
		f.Mode = "csv"
		var err error
		if xLabel, yLabel, err = f.fromCSV(chart, prompt, sum, xLabel, yLabel); err != nil {
			return fill{}, err
		}
	default:
		f.Mode = "default"
		f.illustrative(chart, d)
	}

	title := d.Title
	if title == "" {
		title = chartNames[chart]
	}
	if f.Mode == "default" {
		title += " (illustrative data)"
	}
	f.Title = text(title)
	if xLabel != "" {
		f.XLabel = text(xLabel)
	}
	if yLabel != "" {
		f.YLabel = text(yLabel)
	}
	return f, nil
}

var chartNames = map[detect.ChartType]string{
	detect.ChartBar: "Bar chart", detect.ChartBarH: "Bar chart", detect.ChartLine: "Line chart",
	detect.ChartScatter: "Scatter plot", detect.ChartHistogram: "Histogram", detect.ChartPie: "Pie chart",
	detect.ChartBox: "Box plot", detect.ChartHeatmap: "Heatmap", detect.ChartArea: "Area chart",
	detect.ChartStackedArea: "Stacked area chart",
}

func (f *fill) fromPrompt(chart detect.ChartType, d detect.Result) {
	f.Stacked = d.Stacked
	labels := d.Labels
	if len(d.Series) > 1 {
		// Several named series share the categories: grouped or stacked bars, one line
		// or area per series, one box per group.
		n := len(d.Series[0].Values)
		for _, s := range d.Series {
			n = min(n, len(s.Values))
		}
		if len(labels) != n {
			labels = make([]string, n)
			for i := range labels {
				labels[i] = strconv.Itoa(i + 1)
			}
		}
		var pairs, groups []string
		for _, s := range d.Series {
			pairs = append(pairs, pyStr(s.Name)+": "+pyFloats(s.Values[:n]))
			groups = append(groups, pyStr(s.Name)+": "+pyFloats(s.Values))
		}
		f.Labels, f.Values = pyList(labels), pyFloats(d.Series[0].Values[:n])
		f.Series = "{" + strings.Join(pairs, ", ") + "}"
		f.YS = f.Series
		f.Groups = "{" + strings.Join(groups, ", ") + "}"
		f.X = pyList(labels)
		if chart == detect.ChartScatter {
			f.X = fmt.Sprintf("list(range(1, %d))", n+1)
		}
		return
	}
	if len(labels) != len(d.Values) {
		labels = make([]string, len(d.Values))
		for i := range labels {
			labels[i] = strconv.Itoa(i + 1)
		}
	}
	f.Labels, f.Values = pyList(labels), pyFloats(d.Values)
	// Series: numeric x values as given, labelled values are points in order; bare
	// values are 1..n.
	switch {
	case len(d.X) == len(d.Values):
		f.X = pyFloats(d.X)
	case len(d.Labels) == len(d.Values):
		f.X = pyList(d.Labels)
	default:
		f.X = fmt.Sprintf("list(range(1, %d))", len(d.Values)+1)
	}
	f.YS = fmt.Sprintf("{%s: %s}", f.SeriesName, f.Values)
	f.Groups = f.YS
	if chart == detect.ChartScatter && len(d.X) != len(d.Values) {
		// Scatter needs numeric x: labels that are numbers, else the position.
		xs := make([]float64, len(d.Values))
		for i := range xs {
			xs[i] = float64(i + 1)
			if i < len(d.Labels) {
				if v, err := strconv.ParseFloat(d.Labels[i], 64); err == nil {
					xs[i] = v
				}
			}
		}
		f.X = pyFloats(xs)
	}
}

// illustrative sets placeholder data for charts whose template has no built-in
// illustration (categorical and series); the title says the data is illustrative.
func (f *fill) illustrative(chart detect.ChartType, d detect.Result) {
	f.Labels = pyList([]string{"Group A", "Group B", "Group C", "Group D"})
	f.Values = pyFloats([]float64{23, 17, 35, 29})
	f.X = "list(range(1, 13))"
	voe := pyFloats([]float64{3, 2, 4, 1, 2, 3, 2, 1, 2, 3, 4, 2}) // the seed's VOE series
	f.YS = fmt.Sprintf("{%s: %s}", f.SeriesName, voe)
	if chart == detect.ChartStackedArea {
		f.YS = fmt.Sprintf("{%s: %s, %s: %s, %s: %s}",
			pyStr("Series A"), voe,
			pyStr("Series B"), pyFloats([]float64{2, 2, 3, 3, 2, 1, 2, 2, 3, 2, 1, 2}),
			pyStr("Series C"), pyFloats([]float64{1, 1, 1, 2, 2, 2, 1, 1, 2, 2, 3, 3}))
	}
	f.Corr = true // the illustrative heatmap is a correlation matrix
}

// fromCSV picks the columns the chart draws: the ones the prompt names first, else the
// first of the right type. It returns axis labels, defaulting to column names.
func (f *fill) fromCSV(chart detect.ChartType, prompt string, sum *Summary, xLabel, yLabel string) (string, string, error) {
	ranked := rankColumns(prompt, sum)
	of := func(types ...ColumnType) []Column {
		var out []Column
		for _, c := range ranked {
			if slices.Contains(types, c.Type) {
				out = append(out, c)
			}
		}
		return out
	}
	nums := of(ColumnNumber)
	cats := of(ColumnCategory)
	none := func(what string) error {
		return fmt.Errorf("%s: a %s chart needs %s; the columns are %s. Add such a column, or ask for another chart type",
			DataFile, chart, what, describeColumns(sum))
	}

	switch chart {
	case detect.ChartBar, detect.ChartBarH, detect.ChartPie:
		if groups := of(ColumnCategory, ColumnText, ColumnDate); len(groups) > 0 {
			f.CatCol = pyStr(groups[0].Name)
			xLabel = firstNonEmpty(xLabel, groups[0].Name)
		}
		if len(nums) > 0 {
			f.YCol = pyStr(nums[0].Name)
			yLabel = firstNonEmpty(yLabel, nums[0].Name)
		} else {
			yLabel = firstNonEmpty(yLabel, "Count")
		}
		if f.CatCol == "" && f.YCol == "" {
			return "", "", none("a column to group by or a numeric column")
		}
	case detect.ChartLine, detect.ChartArea, detect.ChartStackedArea:
		x := of(ColumnDate)
		if len(x) == 0 {
			x = of(ColumnCategory)
		}
		if len(x) == 0 && len(nums) > 1 && timeName.MatchString(nums[0].Name) {
			x = nums[:1] // a numeric "year" or "month" column
		}
		if len(x) > 0 {
			f.XCol, f.XKind = pyStr(x[0].Name), string(x[0].Type)
			xLabel = firstNonEmpty(xLabel, x[0].Name)
		}
		var ys []string
		for _, c := range nums {
			if (len(x) == 0 || c.Name != x[0].Name) && len(ys) < maxSeries {
				ys = append(ys, c.Name)
			}
		}
		if len(ys) == 0 && f.XCol == "" {
			return "", "", none("a numeric column")
		}
		if len(ys) > 0 {
			f.YCols = pyList(ys)
		}
		if len(ys) == 1 {
			yLabel = firstNonEmpty(yLabel, ys[0])
		} else if len(ys) == 0 {
			yLabel = firstNonEmpty(yLabel, "Count")
		}
	case detect.ChartScatter:
		switch len(nums) {
		case 0:
			return "", "", none("numeric columns")
		case 1:
			f.YCol = pyStr(nums[0].Name)
			yLabel = firstNonEmpty(yLabel, nums[0].Name)
			xLabel = firstNonEmpty(xLabel, "Row")
		default:
			f.XCol, f.YCol = pyStr(nums[0].Name), pyStr(nums[1].Name)
			xLabel, yLabel = firstNonEmpty(xLabel, nums[0].Name), firstNonEmpty(yLabel, nums[1].Name)
		}
	case detect.ChartHistogram:
		if len(nums) == 0 {
			return "", "", none("a numeric column")
		}
		f.YCol = pyStr(nums[0].Name)
		xLabel = firstNonEmpty(xLabel, nums[0].Name)
	case detect.ChartBox:
		if len(nums) == 0 {
			return "", "", none("a numeric column")
		}
		if len(cats) > 0 {
			f.CatCol, f.YCol = pyStr(cats[0].Name), pyStr(nums[0].Name)
			xLabel, yLabel = firstNonEmpty(xLabel, cats[0].Name), firstNonEmpty(yLabel, nums[0].Name)
		} else {
			f.YCols = pyList(names(nums, maxGroups))
		}
	case detect.ChartHeatmap:
		switch {
		case len(nums) >= 2:
			f.Corr = true
			f.YCols = pyList(names(nums, maxHeatmap))
		case len(cats) >= 2:
			f.CatCol, f.XCol = pyStr(cats[0].Name), pyStr(cats[1].Name)
			xLabel, yLabel = firstNonEmpty(xLabel, cats[1].Name), firstNonEmpty(yLabel, cats[0].Name)
		default:
			return "", "", none("two numeric columns (for correlations) or two category columns (for counts)")
		}
	default:
		return "", "", fmt.Errorf("no template for chart type %q", chart)
	}
	return xLabel, yLabel, nil
}

var timeName = regexp.MustCompile(`(?i)^(?:year|month|week|day|quarter|date|time|period)s?$`)

// rankColumns orders columns by where the prompt names them (first mention first),
// then the unnamed ones in CSV order. "scatter dosage vs hbf" puts dosage first.
func rankColumns(prompt string, sum *Summary) []Column {
	p := " " + normalizeWords(prompt) + " "
	type ranked struct {
		c   Column
		pos int
	}
	var rs []ranked
	for _, c := range sum.Columns {
		pos := len(p) + 1 // not named
		name := normalizeWords(c.Name)
		if name != "" {
			if i := strings.Index(p, " "+name+" "); i >= 0 {
				pos = i
			} else {
				// Any distinctive word of the name counts ("hbf" for "hbf_pct").
				for _, w := range strings.Fields(name) {
					if len(w) < 3 || stopWords[w] {
						continue
					}
					if i := strings.Index(p, " "+w+" "); i >= 0 && i < pos {
						pos = i
					}
				}
			}
		}
		rs = append(rs, ranked{c, pos})
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].pos < rs[j].pos })
	out := make([]Column, len(rs))
	for i, r := range rs {
		out[i] = r.c
	}
	return out
}

var stopWords = map[string]bool{"the": true, "and": true, "per": true, "for": true, "pct": true, "num": true, "count": true, "value": true, "total": true}

var nonWord = regexp.MustCompile(`[^\p{L}\p{N}]+`)

// normalizeWords lowercases s and turns every run of non-letters into one space.
func normalizeWords(s string) string {
	return strings.TrimSpace(nonWord.ReplaceAllString(strings.ToLower(s), " "))
}

func names(cols []Column, limit int) []string {
	var out []string
	for _, c := range cols {
		if len(out) == limit {
			break
		}
		out = append(out, c.Name)
	}
	return out
}

func describeColumns(s *Summary) string {
	var parts []string
	for i, c := range s.Columns {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(s.Columns)-10))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", strconv.Quote(chartdata.Truncate(c.Name, maxColName)), c.Type))
	}
	return strings.Join(parts, ", ")
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// pyStr returns s as a Python string literal. Only printable ASCII other than quote
// and backslash is written as itself; everything else is an escape, so no input
// (quotes, backslashes, newlines, "{{", NUL, invalid UTF-8) can end the literal.
func pyStr(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\ufffd`) // invalid UTF-8 becomes the replacement character
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// plotlyStr is pyStr for plotly text, which plotly.js reads as a subset of HTML:
// markup in a prompt is shown, not interpreted.
func plotlyStr(s string) string {
	return pyStr(strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s))
}

func pyList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = pyStr(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func pyFloats(vs []float64) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		switch {
		case math.IsNaN(v):
			q[i] = `float("nan")`
		case math.IsInf(v, 1):
			q[i] = `float("inf")`
		case math.IsInf(v, -1):
			q[i] = `float("-inf")`
		default:
			q[i] = strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return "[" + strings.Join(q, ", ") + "]"
}
