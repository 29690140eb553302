// Package chartdata is the data a chart actually plots, read back from the figure by the
// sandbox runner (like E2B's code-interpreter `chart` object, for matplotlib and
// plotly): the chart type, title, axis labels and units, and each series' values. It
// bounds that data for status, writes alt text from it, and verifies it against what a
// request asked for. It is pure: no Kubernetes, no sandbox.
package chartdata

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Type is a chart type as read from the figure's artists (or a plotly trace type).
type Type string

const (
	TypeBar       Type = "bar"
	TypeBarH      Type = "barh"
	TypeLine      Type = "line"
	TypeScatter   Type = "scatter"
	TypePie       Type = "pie"
	TypeBox       Type = "box"
	TypeHistogram Type = "histogram"
	TypeHeatmap   Type = "heatmap"
	TypeArea      Type = "area"
	TypeUnknown   Type = "unknown"
)

// Bounds on one chart, so it fits a request's status (etcd's object limit) whatever
// the code drew. Truncation is always visible (Series.Omitted, Chart.OmittedSeries,
// the "…" of a cut string).
const (
	MaxCharts    = 8   // charts kept per result
	MaxSeries    = 12  // series kept per chart
	MaxPoints    = 300 // points kept per series
	MaxText      = 200 // bytes of a title
	MaxLabel     = 64  // bytes of an axis label, series name or category label
	MaxLibrary   = 16  // "matplotlib", "plotly"
	maxAltTextSz = 512
)

// Chart is one axes of a matplotlib figure, or one plotly figure.
type Chart struct {
	// Type is the main kind of mark: the series that make the chart (a scatter's trend
	// line is a second series of type line; the chart is still a scatter).
	Type    Type   `json:"type"`
	Library string `json:"library,omitempty"`
	// Figure names the captured figure the chart is read from, as its artifacts are
	// named without the extension: "figure_1" (figure_1.png), "plotly_1".
	Figure string `json:"figure,omitempty"`
	Title  string `json:"title,omitempty"`
	XLabel string `json:"xLabel,omitempty"`
	YLabel string `json:"yLabel,omitempty"`
	// XUnit and YUnit are the units written in parentheses at the end of an axis
	// label ("Dose (mg/kg)" → "mg/kg").
	XUnit  string   `json:"xUnit,omitempty"`
	YUnit  string   `json:"yUnit,omitempty"`
	Series []Series `json:"series,omitempty"`
	// OmittedSeries counts series left out past MaxSeries.
	OmittedSeries int `json:"omittedSeries,omitempty"`
}

// Series is one set of marks: bars of one container, one line, one scatter, the
// wedges of a pie, the boxes of a box plot, one plotly trace.
type Series struct {
	Name string `json:"name,omitempty"`
	Type Type   `json:"type"`
	// Labels are the categories (bar and pie labels, text x values) when the x axis
	// is categorical, one per point.
	Labels []string `json:"labels,omitempty"`
	// X are numeric x values (line, scatter, histogram bin starts), one per point.
	X []float64 `json:"x,omitempty"`
	// Y are the values: bar heights, line and scatter y, pie wedge values (plotly) or
	// shares in percent (matplotlib keeps only angles), histogram counts.
	Y []float64 `json:"y,omitempty"`
	// Boxes are a box plot's statistics, one per box.
	Boxes []Box `json:"boxes,omitempty"`
	// Omitted counts points left out past MaxPoints.
	Omitted int `json:"omitted,omitempty"`
}

// Box is one box of a box plot: whisker ends, quartiles and median.
type Box struct {
	Label  string  `json:"label,omitempty"`
	Min    float64 `json:"min"`
	Q1     float64 `json:"q1"`
	Median float64 `json:"median"`
	Q3     float64 `json:"q3"`
	Max    float64 `json:"max"`
}

// Points is the number of points of the series (boxes count as points).
func (s Series) Points() int {
	return max(len(s.Labels), len(s.X), len(s.Y), len(s.Boxes))
}

// Bound cuts charts to the limits above: at most MaxCharts charts, MaxSeries series,
// MaxPoints points per series, bounded strings; non-finite numbers become 0 so the
// result always encodes as JSON. Cuts are counted in Omitted and OmittedSeries.
func Bound(charts []Chart) []Chart { return BoundPoints(charts, MaxPoints) }

// BoundPoints is Bound with at most points points per series (at most MaxPoints), for
// callers that must fit several charts into a smaller budget.
func BoundPoints(charts []Chart, points int) []Chart {
	points = max(1, min(points, MaxPoints))
	if len(charts) > MaxCharts {
		charts = charts[:MaxCharts]
	}
	out := make([]Chart, 0, len(charts))
	for _, c := range charts {
		c.Type = Type(Truncate(string(c.Type), 16))
		c.Library = Truncate(c.Library, MaxLibrary)
		c.Figure = Truncate(c.Figure, MaxLabel)
		c.Title = Truncate(c.Title, MaxText)
		c.XLabel, c.YLabel = Truncate(c.XLabel, MaxLabel), Truncate(c.YLabel, MaxLabel)
		c.XUnit, c.YUnit = Truncate(c.XUnit, MaxLabel), Truncate(c.YUnit, MaxLabel)
		if len(c.Series) > MaxSeries {
			c.OmittedSeries += len(c.Series) - MaxSeries
			c.Series = c.Series[:MaxSeries]
		}
		ss := make([]Series, len(c.Series))
		for i, s := range c.Series {
			n := s.Points()
			if n > points {
				s.Omitted += n - points
			}
			s.Name = Truncate(s.Name, MaxLabel)
			s.Type = Type(Truncate(string(s.Type), 16))
			s.Labels = cutStrings(s.Labels, points)
			s.X, s.Y = cutFloats(s.X, points), cutFloats(s.Y, points)
			if len(s.Boxes) > points {
				s.Boxes = s.Boxes[:points]
			}
			boxes := make([]Box, len(s.Boxes))
			for j, b := range s.Boxes {
				b.Label = Truncate(b.Label, MaxLabel)
				b.Min, b.Q1, b.Median, b.Q3, b.Max = finite(b.Min), finite(b.Q1), finite(b.Median), finite(b.Q3), finite(b.Max)
				boxes[j] = b
			}
			if len(boxes) == 0 {
				boxes = nil
			}
			s.Boxes = boxes
			ss[i] = s
		}
		if len(ss) == 0 {
			ss = nil
		}
		c.Series = ss
		out = append(out, c)
	}
	return out
}

func cutStrings(in []string, points int) []string {
	if len(in) == 0 {
		return nil
	}
	n := min(len(in), points)
	out := make([]string, n)
	for i := range out {
		out[i] = Truncate(in[i], MaxLabel)
	}
	return out
}

func cutFloats(in []float64, points int) []float64 {
	if len(in) == 0 {
		return nil
	}
	n := min(len(in), points)
	out := make([]float64, n)
	for i := range out {
		out[i] = finite(in[i])
	}
	return out
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut with "…".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

var unitSuffix = regexp.MustCompile(`\(([^()]{1,30})\)\s*$`)

// UnitOf returns the unit written in parentheses at the end of an axis label:
// "Dose (mg/kg)" → "mg/kg", "Share (%)" → "%". Empty when there is none.
func UnitOf(label string) string {
	if m := unitSuffix.FindStringSubmatch(label); m != nil {
		return strings.TrimSpace(m[1])
	}
	return ""
}

// FormatNumber writes v as people read it: integers without a decimal point, others
// with up to four significant decimals.
func FormatNumber(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	s := fmt.Sprintf("%.4g", v)
	if strings.ContainsAny(s, "e") {
		return s
	}
	return s
}
