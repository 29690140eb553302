package controller

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/chartdata"
)

// TestRecordChartsBudget: the chart data of a request stays under its status budget
// however much a figure plots; the cut is visible (omitted), and every artifact of a
// figure gets the alt text while only the first carries the chart.
func TestRecordChartsBudget(t *testing.T) {
	big := chartdata.Chart{Type: chartdata.TypeLine, Figure: "figure_1", Title: "many points"}
	for i := range chartdata.MaxSeries + 2 {
		s := chartdata.Series{Name: fmt.Sprintf("series %d", i), Type: chartdata.TypeLine}
		for j := range 1000 {
			s.X = append(s.X, float64(j)+0.123456789)
			s.Y = append(s.Y, float64(i*j)+0.987654321)
			s.Labels = append(s.Labels, fmt.Sprintf("a rather long category label %d", j))
		}
		big.Series = append(big.Series, s)
	}
	small := chartdata.Chart{Type: chartdata.TypeBar, Figure: "figure_2", Series: []chartdata.Series{{Type: chartdata.TypeBar, Labels: []string{"A"}, Y: []float64{1}}}}
	vr := &vizv1.VisualizationRequest{}
	vr.Status.Artifacts = []vizv1.ArtifactStatus{{Name: "figure_1.png"}, {Name: "figure_1.svg"}, {Name: "figure_2.png"}, {Name: "data.csv"}}
	s := newScope(vr, time.Now())
	recordCharts(s, []chartdata.Chart{big, small})

	arts := vr.Status.Artifacts
	b, err := json.Marshal(arts[0].Chart)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxChartStatusBytes {
		t.Errorf("chart data is %d bytes, more than %d", len(b), maxChartStatusBytes)
	}
	c := arts[0].Chart
	if c == nil || len(c.Series) != chartdata.MaxSeries || c.OmittedSeries != 2 {
		t.Fatalf("figure_1.png chart: %+v", c)
	}
	if got := c.Series[0]; got.Omitted == 0 || int(got.Omitted)+len(got.Y) != 1000 {
		t.Errorf("series 0 keeps %d points and says %d omitted; want a visible cut of 1000", len(got.Y), got.Omitted)
	}
	if arts[1].Chart != nil || arts[1].AltText == "" || arts[1].AltText != arts[0].AltText {
		t.Errorf("figure_1.svg: chart %v, alt %q (want no chart, the same alt text)", arts[1].Chart != nil, arts[1].AltText)
	}
	if arts[2].Chart == nil || arts[2].Chart.Series[0].Y[0] != "1" {
		t.Errorf("figure_2.png chart: %+v", arts[2].Chart)
	}
	if arts[3].Chart != nil || arts[3].AltText != "" {
		t.Error("a file that is not a figure got chart data")
	}
}
