package chartdata

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Expectation is what a request asked a chart to show.
type Expectation struct {
	// Type is the chart type asked for ("", "auto": any). Detection's names:
	// bar, barh, line, scatter, histogram, pie, box, heatmap, area, stackedarea.
	Type string
	// Labels are the categories the request named; each must be plotted.
	Labels []string
	// Series are the request's numbers, one entry per series (a box plot's groups
	// are series). X holds numeric x values when the request gave them.
	Series []ExpectedSeries
}

// ExpectedSeries is one series of numbers a request gave.
type ExpectedSeries struct {
	Name string
	X    []float64
	Y    []float64
}

// Verdict is the outcome of Verify. Reason says which way it went; Message says what
// differs, for a person or a model to act on.
type Verdict struct {
	Verified bool
	Reason   Reason
	Message  string
}

// Reason is why a Verdict is what it is. chartdata knows no API: the controller maps
// each Reason to a reason of the Verified condition (the values are alike, so the
// CLI's `render --local` prints the same words).
type Reason string

const (
	// ReasonChartVerified: the chart plots what was asked for.
	ReasonChartVerified Reason = "ChartVerified"
	// ReasonChartTypeMismatch: the figure is another kind of chart than the one asked for.
	ReasonChartTypeMismatch Reason = "ChartTypeMismatch"
	// ReasonDataMismatch: a number or label the request gave is not plotted.
	ReasonDataMismatch Reason = "DataMismatch"
	// ReasonSeriesMismatch: the chart has another number of series than the data.
	ReasonSeriesMismatch Reason = "SeriesMismatch"
	// ReasonNotVerifiable: there was nothing to compare (no chart data could be read
	// back, or the request gave no data and no chart type).
	ReasonNotVerifiable Reason = "NotVerifiable"
	// ReasonDataNotAccounted: the prompt's raw text has a number or label the chart
	// neither plots nor shows, or the chart plots numbers the prompt does not give
	// (Account, read apart from detection).
	ReasonDataNotAccounted Reason = "DataNotAccounted"
)

// Reasons lists every Reason a Verdict can carry (for mappings to check they cover all).
var Reasons = []Reason{ReasonChartVerified, ReasonChartTypeMismatch, ReasonDataMismatch, ReasonSeriesMismatch, ReasonNotVerifiable, ReasonDataNotAccounted}

// Verify compares the charts read back from a figure with what the request asked for:
// the chart type, every number and label the request gave (float tolerance), and the
// number of series. Without charts, or with nothing to compare, the verdict is
// NotVerifiable and says why.
func Verify(want Expectation, charts []Chart) Verdict {
	if len(charts) == 0 {
		return Verdict{Reason: ReasonNotVerifiable, Message: "no chart data could be read back from the figures (no matplotlib or plotly figure was captured)"}
	}
	c := primary(charts)
	typ := strings.ToLower(want.Type)
	checkType := typ != "" && typ != "auto"
	hasData := len(want.Series) > 0 || len(want.Labels) > 0
	if !checkType && !hasData {
		return Verdict{Reason: ReasonNotVerifiable, Message: "the request names no chart type and gives no data: there is nothing to compare the chart with"}
	}
	if checkType && !typeMatches(typ, c.Type) {
		return Verdict{Reason: ReasonChartTypeMismatch, Message: fmt.Sprintf("the request asks for a %s chart, but the figure is a %s chart", typ, c.Type)}
	}
	if !hasData {
		return Verdict{Verified: true, Reason: ReasonChartVerified, Message: fmt.Sprintf("the figure is a %s chart as asked; the request gives no data to compare", c.Type)}
	}
	// One pie per series is drawn as one axes per pie: their figure's pies together
	// are the chart.
	group := []Chart{c}
	if c.Type == TypePie {
		group = sameFigure(charts, c)
	}
	var main []Series
	for _, g := range group {
		main = append(main, g.mainSeries()...)
	}
	switch c.Type {
	case TypeBox:
		if v, done := verifyBoxes(want, main); done {
			return v
		}
	case TypeHistogram:
		if v, done := verifyHistogram(want, main); done {
			return v
		}
	default:
		if v, done := verifyValues(want, c, main); done {
			return v
		}
	}
	if missing := missingLabels(want.Labels, group); len(missing) > 0 {
		return Verdict{Reason: ReasonDataMismatch, Message: fmt.Sprintf("the request names %s, but the chart does not label %s", quoteList(want.Labels), quoteList(missing))}
	}
	return Verdict{Verified: true, Reason: ReasonChartVerified, Message: fmt.Sprintf("the %s chart plots every number the request gives (%d series)", c.Type, max(len(want.Series), 1))}
}

// sameFigure is the charts of c's type in c's figure (c, one of charts, among them).
func sameFigure(charts []Chart, c Chart) []Chart {
	var out []Chart
	for _, o := range charts {
		if o.Type == c.Type && o.Figure == c.Figure {
			out = append(out, o)
		}
	}
	return out
}

// primary is the chart with the most points: a figure's main axes.
func primary(charts []Chart) Chart {
	best, n := charts[0], -1
	for _, c := range charts {
		p := 0
		for _, s := range c.mainSeries() {
			p += s.Points()
		}
		if p > n {
			best, n = c, p
		}
	}
	return best
}

func typeMatches(want string, got Type) bool {
	switch want {
	case "stackedarea", "area":
		return got == TypeArea
	case "histogram":
		return got == TypeHistogram || got == TypeBar
	}
	return string(got) == want
}

func verifyValues(want Expectation, c Chart, main []Series) (Verdict, bool) {
	var plotted []float64
	for _, s := range main {
		plotted = append(plotted, s.Y...)
		plotted = append(plotted, s.X...)
	}
	pieShares := c.Type == TypePie && c.Library == "matplotlib"
	var given, missing []float64
	for _, es := range want.Series {
		ys := es.Y
		if pieShares {
			ys = shares(es.Y)
		}
		for _, v := range append(slices.Clone(ys), es.X...) {
			given = append(given, v)
			if !containsNum(plotted, v, pieShares) {
				missing = append(missing, v)
			}
		}
	}
	if len(missing) > 0 {
		what := "plots"
		if pieShares {
			what = "shows shares (%) of"
		}
		return Verdict{Reason: ReasonDataMismatch, Message: fmt.Sprintf("the request gives %s but the chart %s %s; missing: %s",
			numList(given), what, numList(plotted), numList(missing))}, true
	}
	// A pie per series is checked by its shares above; a heatmap is one matrix whose
	// rows are the series, read back as one series of every cell.
	if n := len(want.Series); n > 1 && len(main) != n && c.Type != TypePie && c.Type != TypeHeatmap {
		return Verdict{Reason: ReasonSeriesMismatch, Message: fmt.Sprintf("the request gives %d series (%s) but the chart draws %d", n, seriesNames(want.Series), len(main))}, true
	}
	return Verdict{}, false
}

func verifyBoxes(want Expectation, main []Series) (Verdict, bool) {
	var boxes []Box
	for _, s := range main {
		boxes = append(boxes, s.Boxes...)
	}
	if len(want.Series) != len(boxes) {
		return Verdict{Reason: ReasonSeriesMismatch, Message: fmt.Sprintf("the request gives %d group(s) (%s) but the chart draws %d box(es)", len(want.Series), seriesNames(want.Series), len(boxes))}, true
	}
	for i, es := range want.Series {
		if len(es.Y) == 0 {
			continue
		}
		m := median(es.Y)
		if !near(boxes[i].Median, m) {
			return Verdict{Reason: ReasonDataMismatch, Message: fmt.Sprintf("group %q has median %s, but its box shows %s", es.Name, FormatNumber(m), FormatNumber(boxes[i].Median))}, true
		}
		lo, hi := slices.Min(es.Y), slices.Max(es.Y)
		if boxes[i].Min < lo-tol(lo) || boxes[i].Max > hi+tol(hi) {
			return Verdict{Reason: ReasonDataMismatch, Message: fmt.Sprintf("group %q ranges from %s to %s, but its whiskers reach %s to %s", es.Name, FormatNumber(lo), FormatNumber(hi), FormatNumber(boxes[i].Min), FormatNumber(boxes[i].Max))}, true
		}
	}
	return Verdict{}, false
}

func verifyHistogram(want Expectation, main []Series) (Verdict, bool) {
	n := 0
	for _, es := range want.Series {
		n += len(es.Y)
	}
	total := 0.0
	for _, s := range main {
		for _, v := range s.Y {
			total += v
		}
	}
	if n > 0 && !near(total, float64(n)) {
		return Verdict{Reason: ReasonDataMismatch, Message: fmt.Sprintf("the request gives %d values, but the histogram counts %s", n, FormatNumber(total))}, true
	}
	return Verdict{}, false
}

// missingLabels are the labels no series, category, box or title of the charts shows
// (a pie per series is titled with the series' name).
func missingLabels(labels []string, charts []Chart) []string {
	have := map[string]bool{}
	add := func(s string) { have[strings.ToLower(strings.TrimSpace(s))] = true }
	for _, c := range charts {
		if len(charts) > 1 {
			add(c.Title)
		}
		for _, s := range c.Series {
			add(s.Name)
			for _, l := range s.Labels {
				add(l)
			}
			for _, b := range s.Boxes {
				add(b.Label)
			}
		}
	}
	var missing []string
	for _, l := range labels {
		if !have[strings.ToLower(strings.TrimSpace(l))] {
			missing = append(missing, l)
		}
	}
	return missing
}

func shares(v []float64) []float64 {
	sum := 0.0
	for _, x := range v {
		if x > 0 {
			sum += x
		}
	}
	var out []float64
	for _, x := range v {
		if x > 0 && sum > 0 {
			out = append(out, 100*x/sum)
		}
	}
	return out
}

func tol(v float64) float64 { return 1e-6 * math.Max(1, math.Abs(v)) }

func near(a, b float64) bool { return math.Abs(a-b) <= tol(math.Max(math.Abs(a), math.Abs(b))) }

// containsNum reports whether v is among plotted; shares (angles read back) are
// compared to 0.01 percentage points.
func containsNum(plotted []float64, v float64, share bool) bool {
	for _, p := range plotted {
		if near(p, v) || (share && math.Abs(p-v) < 0.01) {
			return true
		}
	}
	return false
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func numList(v []float64) string {
	var parts []string
	for i, x := range v {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("… (%d more)", len(v)-10))
			break
		}
		parts = append(parts, FormatNumber(x))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func quoteList(v []string) string {
	q := make([]string, 0, len(v))
	for i, s := range v {
		if i == 10 {
			q = append(q, fmt.Sprintf("… (%d more)", len(v)-10))
			break
		}
		q = append(q, fmt.Sprintf("%q", s))
	}
	return strings.Join(q, ", ")
}

func seriesNames(ss []ExpectedSeries) string {
	var n []string
	for _, s := range ss {
		n = append(n, firstNonEmpty(s.Name, "unnamed"))
	}
	return strings.Join(n, ", ")
}
