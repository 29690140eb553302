package pipeline

import (
	"testing"

	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/detect"
)

func barChart(title string, labels []string, y ...float64) chartdata.Chart {
	return chartdata.Chart{Type: chartdata.TypeBar, Library: "matplotlib", Figure: "figure_1", Title: title,
		Series: []chartdata.Series{{Type: chartdata.TypeBar, Labels: labels, Y: y}}}
}

// TestVerifyWrongCharts: whatever detection read, a chart that drops or invents data
// is never Verified=True. Detection is given as a parser that missed the data would
// leave it, so only the independent check can catch the difference.
func TestVerifyWrongCharts(t *testing.T) {
	tests := map[string]struct {
		prompt string
		det    *detect.Result // nil: detect.Detect(prompt)
		code   codegen.Code
		charts []chartdata.Chart
		want   chartdata.Reason // "" means Verified
	}{
		"right": {
			prompt: "Bar chart of admissions by site: North 120, South 95, East 60",
			charts: []chartdata.Chart{barChart("Admissions by site", []string{"North", "South", "East"}, 120, 95, 60)},
		},
		"the parser missed everything: illustrative data": {
			prompt: "Bar chart of visits: 1,200, 3,400 and 5,600",
			det:    &detect.Result{Visualization: true, ChartType: detect.ChartBar, Title: "Visits"},
			code:   codegen.Code{Source: codegen.SourceTemplate, Template: "bar", DataSource: codegen.DataIllustrative},
			charts: []chartdata.Chart{barChart("Visits (illustrative data)", []string{"A", "B", "C"}, 4, 7, 5)},
			want:   chartdata.ReasonDataNotAccounted,
		},
		"the parser missed a series, the chart dropped it": {
			prompt: "Line chart of pain for placebo 6, 7, 5 and Drug 3, 4, 2",
			det:    &detect.Result{Visualization: true, ChartType: detect.ChartLine, Values: []float64{6, 7, 5}},
			code:   codegen.Code{Source: codegen.SourceTemplate, Template: "line"},
			charts: []chartdata.Chart{{Type: chartdata.TypeLine, Library: "matplotlib", Title: "Pain", Series: []chartdata.Series{
				{Type: chartdata.TypeLine, X: []float64{0, 1, 2}, Y: []float64{6, 7, 5}}}}},
			want: chartdata.ReasonDataNotAccounted,
		},
		"the parser missed a value, the chart dropped it": {
			prompt: "Bar chart of admissions by site: North 120, South 95, East 60",
			det:    &detect.Result{Visualization: true, ChartType: detect.ChartBar, Labels: []string{"North", "South"}, Values: []float64{120, 95}},
			code:   codegen.Code{Source: codegen.SourceTemplate, Template: "bar"},
			charts: []chartdata.Chart{barChart("Admissions by site", []string{"North", "South"}, 120, 95)},
			want:   chartdata.ReasonDataNotAccounted,
		},
		"detection found nothing, the chart accounts for everything": {
			prompt: "Bar chart of visits: 1,200, 3,400 and 5,600",
			det:    &detect.Result{Visualization: true, ChartType: detect.ChartAuto},
			charts: []chartdata.Chart{barChart("Visits", []string{"1", "2", "3"}, 1200, 3400, 5600)},
		},
		"a mismatch already found keeps its reason and adds the rest": {
			prompt: "Line chart of LDH at days 1, 3, 5, 7: 520, 480, 430, 390",
			charts: []chartdata.Chart{{Type: chartdata.TypeLine, Library: "matplotlib", Title: "LDH", Series: []chartdata.Series{
				{Type: chartdata.TypeLine, X: []float64{1, 2, 3, 4}, Y: []float64{1, 3, 5, 7}}}}},
			want: chartdata.ReasonDataMismatch,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := codegen.Input{Prompt: tc.prompt, Detection: detect.Detect(tc.prompt)}
			if tc.det != nil {
				in.Detection = *tc.det
			}
			v := Verify(in, tc.code, tc.charts)
			switch {
			case tc.want == "" && !v.Verified:
				t.Fatalf("not verified: %s: %s", v.Reason, v.Message)
			case tc.want != "" && (v.Verified || v.Reason != tc.want):
				t.Fatalf("Verified=%v %s (%s), want Verified=False %s", v.Verified, v.Reason, v.Message, tc.want)
			}
		})
	}
}
