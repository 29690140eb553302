package chartdata

import (
	"fmt"
	"strings"
)

// maxListed is how many points alt text names before it summarizes the rest.
const maxListed = 12

var typeNames = map[Type]string{
	TypeBar: "Bar chart", TypeBarH: "Horizontal bar chart", TypeLine: "Line chart",
	TypeScatter: "Scatter plot", TypePie: "Pie chart", TypeBox: "Box plot",
	TypeHistogram: "Histogram", TypeHeatmap: "Heatmap", TypeArea: "Area chart",
}

// AltText describes a chart in one or two plain sentences from its data, e.g.
// "Bar chart 'SCD Treatment Effectiveness': Hydroxyurea 85, Voxelotor 70,
// Crizanlizumab 75." It is bounded (512 bytes) and empty when there is no chart.
func AltText(charts []Chart) string {
	var parts []string
	for i, c := range charts {
		if i == 2 {
			parts = append(parts, fmt.Sprintf("And %d more chart(s).", len(charts)-2))
			break
		}
		parts = append(parts, altOne(c))
	}
	return Truncate(strings.Join(parts, " "), maxAltTextSz)
}

func altOne(c Chart) string {
	name := typeNames[c.Type]
	if name == "" {
		name = "Chart"
	}
	head := name
	if c.Title != "" {
		head += fmt.Sprintf(" '%s'", c.Title)
	}
	main := c.mainSeries()
	if len(main) == 0 {
		return head + "."
	}
	var body []string
	switch c.Type {
	case TypeScatter:
		for _, s := range main {
			body = append(body, scatterText(c, s))
		}
	case TypeBox:
		for _, s := range main {
			for _, b := range s.Boxes[:min(len(s.Boxes), maxListed)] {
				body = append(body, fmt.Sprintf("%s median %s (range %s to %s)", firstNonEmpty(b.Label, "box"), FormatNumber(b.Median), FormatNumber(b.Min), FormatNumber(b.Max)))
			}
		}
	case TypeHeatmap:
		s := main[0]
		body = append(body, fmt.Sprintf("%d cells, values from %s to %s", len(s.Y), FormatNumber(minOf(s.Y)), FormatNumber(maxOf(s.Y))))
	case TypeHistogram:
		s := main[0]
		total := 0.0
		for _, v := range s.Y {
			total += v
		}
		body = append(body, fmt.Sprintf("%s values in %d bins", FormatNumber(total), len(s.Y)))
	default:
		for _, s := range main {
			list := pointsText(s, c.Type == TypePie && c.Library == "matplotlib")
			if len(s.Labels) == 0 && len(s.X) == len(s.Y) && len(s.Y) > 0 && len(s.Y) <= maxListed {
				// Numeric x: "LDH at Day 1, 3, 5, 7: 520, 480, 430, 390".
				xs := make([]string, len(s.X))
				for i, x := range s.X {
					xs[i] = FormatNumber(x)
				}
				ys := make([]string, len(s.Y))
				for i, y := range s.Y {
					ys[i] = FormatNumber(y)
				}
				at := strings.ToLower(firstNonEmpty(c.XLabel, "x"))
				list = fmt.Sprintf("at %s %s: %s", at, strings.Join(xs, ", "), strings.Join(ys, ", "))
				if name := firstNonEmpty(s.Name, c.YLabel); name != "" && len(main) == 1 {
					list = name + " " + list
				}
			}
			if len(main) > 1 && s.Name != "" {
				list = s.Name + ": " + list
			}
			body = append(body, list)
		}
	}
	sep := ", "
	if len(main) > 1 {
		sep = "; "
	}
	return head + ": " + strings.Join(body, sep) + "."
}

func scatterText(c Chart, s Series) string {
	n := len(s.Y)
	t := fmt.Sprintf("%d points", n+s.Omitted)
	if n <= 6 {
		pts := make([]string, n)
		for i := range s.Y {
			x := ""
			if i < len(s.X) {
				x = FormatNumber(s.X[i])
			}
			pts[i] = fmt.Sprintf("(%s, %s)", x, FormatNumber(s.Y[i]))
		}
		return t + " " + strings.Join(pts, ", ")
	}
	xl, yl := firstNonEmpty(c.XLabel, "x"), firstNonEmpty(c.YLabel, "y")
	return fmt.Sprintf("%s, %s from %s to %s, %s from %s to %s", t, xl, FormatNumber(minOf(s.X)), FormatNumber(maxOf(s.X)), yl, FormatNumber(minOf(s.Y)), FormatNumber(maxOf(s.Y)))
}

func pointsText(s Series, percent bool) string {
	var items []string
	for i, v := range s.Y {
		if i == maxListed {
			items = append(items, fmt.Sprintf("and %d more", len(s.Y)-maxListed+s.Omitted))
			break
		}
		label := ""
		switch {
		case i < len(s.Labels):
			label = s.Labels[i]
		case i < len(s.X):
			label = FormatNumber(s.X[i])
		}
		val := FormatNumber(v)
		if percent {
			val = fmt.Sprintf("%.1f%%", v)
		}
		if label != "" {
			items = append(items, label+" "+val)
		} else {
			items = append(items, val)
		}
	}
	return strings.Join(items, ", ")
}

// mainSeries are the series of the chart's own type (a scatter's trend line and a bar
// chart's error bars are not).
func (c Chart) mainSeries() []Series {
	var out []Series
	for _, s := range c.Series {
		if s.Type == c.Type || (c.Type == TypeHistogram && s.Type == TypeBar) {
			out = append(out, s)
		}
	}
	return out
}

func minOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
