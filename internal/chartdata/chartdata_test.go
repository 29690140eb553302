package chartdata

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var scdBar = Chart{Type: TypeBar, Library: "matplotlib", Title: "SCD Treatment Effectiveness", Series: []Series{
	{Type: TypeBar, Labels: []string{"Hydroxyurea", "Voxelotor", "Crizanlizumab"}, Y: []float64{85, 70, 75}},
}}

func TestAltText(t *testing.T) {
	tests := map[string]struct {
		charts []Chart
		want   string
	}{
		"bar": {[]Chart{scdBar}, "Bar chart 'SCD Treatment Effectiveness': Hydroxyurea 85, Voxelotor 70, Crizanlizumab 75."},
		"two series": {[]Chart{{Type: TypeBar, Title: "ER visits", Series: []Series{
			{Name: "2022", Type: TypeBar, Labels: []string{"Q1", "Q2"}, Y: []float64{4, 6}},
			{Name: "2023", Type: TypeBar, Labels: []string{"Q1", "Q2"}, Y: []float64{3, 5}},
		}}}, "Bar chart 'ER visits': 2022: Q1 4, Q2 6; 2023: Q1 3, Q2 5."},
		"scatter ignores the trend line": {[]Chart{{Type: TypeScatter, Series: []Series{
			{Type: TypeScatter, X: []float64{22, 27}, Y: []float64{118, 131}},
			{Type: TypeLine, Name: "trend", X: []float64{22, 27}, Y: []float64{1, 2}},
		}}}, "Scatter plot: 2 points (22, 118), (27, 131)."},
		"matplotlib pie shows shares": {[]Chart{{Type: TypePie, Library: "matplotlib", Series: []Series{
			{Type: TypePie, Labels: []string{"A", "B"}, Y: []float64{25, 75}},
		}}}, "Pie chart: A 25.0%, B 75.0%."},
		"box": {[]Chart{{Type: TypeBox, Title: "Scores", Series: []Series{{Type: TypeBox, Boxes: []Box{{Label: "A", Min: 1, Q1: 2, Median: 3, Q3: 4, Max: 5}}}}}},
			"Box plot 'Scores': A median 3 (range 1 to 5)."},
		"numeric x": {[]Chart{{Type: TypeLine, Title: "LDH", XLabel: "Days", YLabel: "LDH (U/L)", Series: []Series{
			{Type: TypeLine, X: []float64{1, 3, 5, 7}, Y: []float64{520, 480, 430, 390}}}}},
			"Line chart 'LDH': LDH (U/L) at days 1, 3, 5, 7: 520, 480, 430, 390."},
		"no charts": {nil, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, AltText(tc.charts)); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestBound(t *testing.T) {
	long := make([]float64, MaxPoints+20)
	c := Chart{Type: TypeLine, Title: strings.Repeat("t", 500), Series: make([]Series, MaxSeries+3)}
	for i := range c.Series {
		c.Series[i] = Series{Type: TypeLine, Y: long}
	}
	got := Bound([]Chart{c})[0]
	if len(got.Series) != MaxSeries || got.OmittedSeries != 3 {
		t.Errorf("series %d omitted %d, want %d and 3", len(got.Series), got.OmittedSeries, MaxSeries)
	}
	if s := got.Series[0]; len(s.Y) != MaxPoints || s.Omitted != 20 {
		t.Errorf("points %d omitted %d, want %d and 20", len(s.Y), s.Omitted, MaxPoints)
	}
	if len(got.Title) > MaxText || !strings.HasSuffix(got.Title, "…") {
		t.Errorf("title not cut with a marker: %d bytes", len(got.Title))
	}
}

func TestUnitOf(t *testing.T) {
	for in, want := range map[string]string{"Dose (mg/kg)": "mg/kg", "Share (%)": "%", "Count": "", "": ""} {
		if got := UnitOf(in); got != want {
			t.Errorf("UnitOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVerify(t *testing.T) {
	ldh := Chart{Type: TypeLine, Series: []Series{{Type: TypeLine, X: []float64{1, 3, 5, 7}, Y: []float64{520, 480, 430, 390}}}}
	daysAsValues := Chart{Type: TypeLine, Series: []Series{{Type: TypeLine, X: []float64{1, 2, 3, 4}, Y: []float64{1, 3, 5, 7}}}}
	grouped := Chart{Type: TypeBar, Series: []Series{
		{Name: "2022", Type: TypeBar, Labels: []string{"Q1", "Q2", "Q3"}, Y: []float64{4, 6, 5}},
		{Name: "2023", Type: TypeBar, Labels: []string{"Q1", "Q2", "Q3"}, Y: []float64{3, 5, 2}},
	}}
	twoSeries := []ExpectedSeries{{Name: "2022", Y: []float64{4, 6, 5}}, {Name: "2023", Y: []float64{3, 5, 2}}}
	tests := map[string]struct {
		want       Expectation
		charts     []Chart
		reason     Reason
		msgContain string
	}{
		"bar matches":        {Expectation{Type: "bar", Labels: []string{"Hydroxyurea"}, Series: []ExpectedSeries{{Y: []float64{85, 70, 75}}}}, []Chart{scdBar}, ReasonChartVerified, ""},
		"float tolerance":    {Expectation{Type: "bar", Series: []ExpectedSeries{{Y: []float64{85.0000000001, 70, 75}}}}, []Chart{scdBar}, ReasonChartVerified, ""},
		"wrong type":         {Expectation{Type: "pie"}, []Chart{scdBar}, ReasonChartTypeMismatch, "pie"},
		"days plotted as y":  {Expectation{Type: "line", Series: []ExpectedSeries{{X: []float64{1, 3, 5, 7}, Y: []float64{520, 480, 430, 390}}}}, []Chart{daysAsValues}, ReasonDataMismatch, "missing: 520, 480, 430, 390"},
		"x then y":           {Expectation{Type: "line", Series: []ExpectedSeries{{X: []float64{1, 3, 5, 7}, Y: []float64{520, 480, 430, 390}}}}, []Chart{ldh}, ReasonChartVerified, ""},
		"grouped":            {Expectation{Type: "bar", Labels: []string{"Q1", "Q2", "Q3"}, Series: twoSeries}, []Chart{grouped}, ReasonChartVerified, ""},
		"first series only":  {Expectation{Type: "bar", Series: twoSeries}, []Chart{{Type: TypeBar, Series: grouped.Series[:1]}}, ReasonDataMismatch, "missing: 3, 2"},
		"series merged":      {Expectation{Type: "bar", Series: twoSeries}, []Chart{{Type: TypeBar, Series: []Series{{Type: TypeBar, Y: []float64{4, 6, 5, 3, 5, 2}}}}}, ReasonSeriesMismatch, "2 series"},
		"label missing":      {Expectation{Type: "bar", Labels: []string{"Q1", "Q4"}, Series: twoSeries}, []Chart{grouped}, ReasonDataMismatch, `"Q4"`},
		"no chart data":      {Expectation{Type: "bar"}, nil, ReasonNotVerifiable, "no chart data"},
		"nothing to compare": {Expectation{Type: "auto"}, []Chart{scdBar}, ReasonNotVerifiable, "nothing to compare"},
		"type only":          {Expectation{Type: "bar"}, []Chart{scdBar}, ReasonChartVerified, ""},
		"matplotlib pie shares": {Expectation{Type: "pie", Series: []ExpectedSeries{{Y: []float64{30, 70}}}},
			[]Chart{{Type: TypePie, Library: "matplotlib", Series: []Series{{Type: TypePie, Y: []float64{30, 70}}}}}, ReasonChartVerified, ""},
		"pie of other values": {Expectation{Type: "pie", Series: []ExpectedSeries{{Y: []float64{1, 3}}}},
			[]Chart{{Type: TypePie, Library: "matplotlib", Series: []Series{{Type: TypePie, Y: []float64{50, 50}}}}}, ReasonDataMismatch, "75"},
		"a pie per series, one axes each": {Expectation{Type: "pie", Labels: []string{"2022", "2023"}, Series: []ExpectedSeries{{Name: "2022", Y: []float64{1, 3}}, {Name: "2023", Y: []float64{1, 1}}}},
			[]Chart{
				{Type: TypePie, Library: "matplotlib", Figure: "figure_1", Title: "2022", Series: []Series{{Type: TypePie, Y: []float64{25, 75}}}},
				{Type: TypePie, Library: "matplotlib", Figure: "figure_1", Title: "2023", Series: []Series{{Type: TypePie, Y: []float64{50, 50}}}},
			}, ReasonChartVerified, ""},
		"the second pie missing": {Expectation{Type: "pie", Series: []ExpectedSeries{{Name: "2022", Y: []float64{1, 3}}, {Name: "2023", Y: []float64{1, 4}}}},
			[]Chart{{Type: TypePie, Library: "matplotlib", Figure: "figure_1", Series: []Series{{Type: TypePie, Y: []float64{25, 75}}}}}, ReasonDataMismatch, "missing: 20, 80"},
		"a pie of another figure does not count": {Expectation{Type: "pie", Series: []ExpectedSeries{{Name: "2022", Y: []float64{1, 3}}, {Name: "2023", Y: []float64{1, 4}}}},
			[]Chart{
				{Type: TypePie, Library: "matplotlib", Figure: "figure_1", Series: []Series{{Type: TypePie, Y: []float64{25, 75}}}},
				{Type: TypePie, Library: "matplotlib", Figure: "figure_2", Series: []Series{{Type: TypePie, Y: []float64{20, 80}}}},
			}, ReasonDataMismatch, "missing: 20, 80"},
		"a heatmap's rows are its series": {Expectation{Type: "heatmap", Series: twoSeries},
			[]Chart{{Type: TypeHeatmap, Series: []Series{{Type: TypeHeatmap, Y: []float64{4, 6, 5, 3, 5, 2}}}}}, ReasonChartVerified, ""},
		"a heatmap of one row of two": {Expectation{Type: "heatmap", Series: twoSeries},
			[]Chart{{Type: TypeHeatmap, Series: []Series{{Type: TypeHeatmap, Y: []float64{4, 6, 5}}}}}, ReasonDataMismatch, "missing: 3, 2"},
		"box medians": {Expectation{Type: "box", Series: []ExpectedSeries{{Name: "A", Y: []float64{1, 2, 3, 4, 10}}}},
			[]Chart{{Type: TypeBox, Series: []Series{{Type: TypeBox, Boxes: []Box{{Label: "A", Min: 1, Q1: 2, Median: 3, Q3: 4, Max: 4}}}}}}, ReasonChartVerified, ""},
		"box of other data": {Expectation{Type: "box", Series: []ExpectedSeries{{Name: "A", Y: []float64{1, 2, 3}}, {Name: "B", Y: []float64{5, 6, 7}}}},
			[]Chart{{Type: TypeBox, Series: []Series{{Type: TypeBox, Boxes: []Box{{Label: "A", Median: 2, Min: 1, Max: 3}}}}}}, ReasonSeriesMismatch, "2 group"},
		"histogram count": {Expectation{Type: "histogram", Series: []ExpectedSeries{{Y: []float64{1, 2, 2, 3}}}},
			[]Chart{{Type: TypeHistogram, Series: []Series{{Type: TypeHistogram, Y: []float64{1, 2, 1}}}}}, ReasonChartVerified, ""},
		"stackedarea is area": {Expectation{Type: "stackedarea"}, []Chart{{Type: TypeArea, Series: []Series{{Type: TypeArea, Y: []float64{1}}}}}, ReasonChartVerified, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := Verify(tc.want, tc.charts)
			if v.Reason != tc.reason || v.Verified != (tc.reason == ReasonChartVerified) {
				t.Fatalf("Verify = %+v, want reason %s", v, tc.reason)
			}
			if !strings.Contains(v.Message, tc.msgContain) {
				t.Errorf("message %q does not contain %q", v.Message, tc.msgContain)
			}
		})
	}
}
