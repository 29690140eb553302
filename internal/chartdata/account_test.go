package chartdata

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func bar(title string, labels []string, y ...float64) Chart {
	return Chart{Type: TypeBar, Library: "matplotlib", Figure: "figure_1", Title: title,
		Series: []Series{{Type: TypeBar, Labels: labels, Y: y}}}
}

func lines(title string, x []float64, series map[string][]float64, order ...string) Chart {
	c := Chart{Type: TypeLine, Library: "matplotlib", Figure: "figure_1", Title: title}
	for _, name := range order {
		c.Series = append(c.Series, Series{Name: name, Type: TypeLine, X: x, Y: series[name]})
	}
	return c
}

// TestAccount gives right and wrong charts for prompts; a wrong chart must never
// pass, and the message names what is missing or invented.
func TestAccount(t *testing.T) {
	tests := map[string]struct {
		prompt  string
		charts  []Chart
		ok      bool
		missing []string // numbers named as missing
		labels  []string
		invent  []float64
	}{
		"all plotted": {
			prompt: "Bar chart of admissions by site: North 120, South 95, East 60",
			charts: []Chart{bar("Admissions by site", []string{"North", "South", "East"}, 120, 95, 60)},
			ok:     true,
		},
		"a dropped value": {
			prompt:  "Bar chart of admissions by site: North 120, South 95, East 60",
			charts:  []Chart{bar("Admissions by site", []string{"North", "South"}, 120, 95)},
			missing: []string{"60"}, labels: []string{"East"},
		},
		"thousands separators, invented data": {
			prompt:  "Bar chart of visits: 1,200, 3,400 and 5,600",
			charts:  []Chart{bar("Visits (illustrative data)", []string{"A", "B", "C"}, 4, 7, 5)},
			missing: []string{"1,200", "3,400", "5,600"}, invent: []float64{4, 7, 5},
		},
		"thousands separators plotted": {
			prompt: "Bar chart of visits: 1,200, 3,400 and 5,600",
			charts: []Chart{bar("Visits", []string{"1", "2", "3"}, 1200, 3400, 5600)},
			ok:     true,
		},
		"thousands read as six numbers": {
			prompt:  "Bar chart of visits: 1,200, 3,400 and 5,600",
			charts:  []Chart{bar("Visits", nil, 1, 200, 3, 400, 5, 600)},
			missing: []string{"1,200", "3,400", "5,600"}, invent: []float64{1, 200, 3, 400, 5, 600},
		},
		"a dropped series": {
			prompt: "Line chart of pain for placebo 6, 7, 5 and Drug 3, 4, 2",
			charts: []Chart{lines("Pain", []float64{0, 1, 2}, map[string][]float64{"placebo": {6, 7, 5}}, "placebo")},
			// 2 is an x value of the chart; 3 and 4 are not.
			missing: []string{"3", "4"}, labels: []string{"Drug"},
		},
		"two series plotted": {
			prompt: "Line chart of pain for placebo 6, 7, 5 and Drug 3, 4, 2",
			charts: []Chart{lines("Pain", []float64{1, 2, 3}, map[string][]float64{"placebo": {6, 7, 5}, "Drug": {3, 4, 2}}, "placebo", "Drug")},
			ok:     true,
		},
		"x values given apart": {
			prompt: "Plot reticulocytes at hours 0, 6, 12, 24: 5.1, 5.8, 6.4, 7.0",
			charts: []Chart{lines("Reticulocytes", []float64{0, 6, 12, 24}, map[string][]float64{"": {5.1, 5.8, 6.4, 7.0}}, "")},
			ok:     true,
		},
		"x values plotted as y": {
			prompt:  "Plot reticulocytes at hours 0, 6, 12, 24: 5.1, 5.8, 6.4, 7.0",
			charts:  []Chart{lines("Reticulocytes", []float64{1, 2, 3, 4}, map[string][]float64{"": {0, 6, 12, 24}}, "")},
			missing: []string{"5.1", "5.8", "6.4", "7.0"},
		},
		"a year in a series name, ordinals and counts explained": {
			prompt: "Grouped bar chart in 3 groups of visits in 2022 (4, 6, 5) and 2023 (3, 5, 2), 2nd version",
			charts: []Chart{{Type: TypeBar, Library: "matplotlib", Title: "Visits", Series: []Series{
				{Name: "2022", Type: TypeBar, Labels: []string{"a", "b", "c"}, Y: []float64{4, 6, 5}},
				{Name: "2023", Type: TypeBar, Labels: []string{"a", "b", "c"}, Y: []float64{3, 5, 2}}}}},
			ok: true,
		},
		"signed values and percent": {
			prompt: "Bar chart of change: North -5%, South +3%, East 12%",
			charts: []Chart{bar("Change", []string{"North", "South", "East"}, -5, 3, 12)},
			ok:     true,
		},
		"a quoted title missing": {
			prompt: "Bar chart titled 'Clinic load' of visits: Mon 4, Tue 7, Wed 5",
			charts: []Chart{bar("Visits", []string{"Mon", "Tue", "Wed"}, 4, 7, 5)},
			labels: []string{"Clinic load"},
		},
		"CJK with full-width punctuation": {
			prompt: "请画柱状图：北区１２０，南区９５，东区６０",
			charts: []Chart{bar("柱状图", []string{"北区", "南区", "东区"}, 120, 95, 60)},
			ok:     true,
		},
		"CJK value dropped": {
			prompt:  "请画柱状图：北区１２０，南区９５，东区６０",
			charts:  []Chart{bar("柱状图", []string{"北区", "南区"}, 120, 95)},
			missing: []string{"60"},
		},
		"decimal commas": {
			prompt: "Erstelle ein Liniendiagramm des Bilirubins: 2,1, 2,6, 3,0, 2,4",
			charts: []Chart{lines("Bilirubins", []float64{1, 2, 3, 4}, map[string][]float64{"": {2.1, 2.6, 3.0, 2.4}}, "")},
			ok:     true,
		},
		"matplotlib pie shares": {
			prompt: "Pie chart of genotypes: HbSS 60, HbSC 30, other 30",
			charts: []Chart{{Type: TypePie, Library: "matplotlib", Series: []Series{{Type: TypePie, Labels: []string{"HbSS", "HbSC", "other"}, Y: []float64{50, 25, 25}}}}},
			ok:     true,
		},
		"pie missing a wedge": {
			prompt: "Pie chart of genotypes: HbSS 60, HbSC 30, other 30",
			charts: []Chart{{Type: TypePie, Library: "matplotlib", Series: []Series{{Type: TypePie, Labels: []string{"HbSS", "HbSC"}, Y: []float64{66.666667, 33.333333}}}}},
			// 60 and 30 are the two wedges' shares; the last 30 is not drawn.
			missing: []string{"30"},
		},
		"histogram counts every value": {
			prompt: "Histogram of ages: 12, 15, 15, 18, 21",
			charts: []Chart{{Type: TypeHistogram, Series: []Series{{Type: TypeBar, X: []float64{12, 15, 18}, Y: []float64{1, 2, 2}}}}},
			ok:     true,
		},
		"histogram of fewer values": {
			prompt:  "Histogram of ages: 12, 15, 15, 18, 21",
			charts:  []Chart{{Type: TypeHistogram, Series: []Series{{Type: TypeBar, X: []float64{12, 15}, Y: []float64{1, 2}}}}},
			missing: []string{"12", "15", "15", "18", "21"},
		},
		"a title repeating the numbers does not plot them": {
			prompt:  "Line chart of LDH, which fell from 520 to 480, then 430 and finally 390",
			charts:  []Chart{lines("LDH, which fell from 520 to 480, then 430 and finally 390", []float64{0, 1, 2}, map[string][]float64{"": {480, 430, 390}}, "")},
			missing: []string{"520"},
		},
		"a year in the title is shown": {
			prompt: "Bar chart of admissions in 2023: North 120, South 95",
			charts: []Chart{bar("Admissions in 2023", []string{"North", "South"}, 120, 95)},
			ok:     true,
		},
		"no data: illustrative is fine": {
			prompt: "Plot monthly ER visits over the last 12 months",
			charts: []Chart{bar("ER visits (illustrative data)", []string{"Jan", "Feb"}, 4, 7)},
			ok:     true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := Account(tc.prompt, tc.charts, AccountOptions{})
			if a.OK() != tc.ok {
				t.Fatalf("OK=%v, want %v: %s (scan %+v)", a.OK(), tc.ok, a.Message(), a.Scan)
			}
			if tc.ok {
				return
			}
			if d := cmp.Diff(tc.missing, a.MissingNumbers); d != "" {
				t.Errorf("missing numbers (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.labels, a.MissingLabels); d != "" {
				t.Errorf("missing labels (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.invent, a.Invented); d != "" {
				t.Errorf("invented (-want +got):\n%s", d)
			}
			for _, n := range tc.missing {
				if !strings.Contains(a.Message(), n) {
					t.Errorf("message %q does not name %s", a.Message(), n)
				}
			}
		})
	}
}

func TestAccountAttachedData(t *testing.T) {
	// With spec.data, the plotted values come from the file.
	a := Account("Bar chart of the top 5 sites", []Chart{bar("Sites", []string{"a", "b"}, 10, 20)}, AccountOptions{Attached: true})
	if !a.OK() {
		t.Fatal(a.Message())
	}
}

func TestScanPrompt(t *testing.T) {
	tests := map[string]struct {
		prompt string
		data   []string
		labels []string
	}{
		"thousands in every position":    {prompt: "Plot 1,200, 3,400 and 5,600, then 12,000", data: []string{"1,200", "3,400", "5,600", "12,000"}},
		"a list without spaces":          {prompt: "Plot 3,2,4", data: []string{"3,2", "4"}},
		"names are not numbers":          {prompt: "Bar chart of HbA1c in Q1 and COVID-19 cases: 3, 4", data: []string{"3", "4"}},
		"counts, sizes, ordinals, spans": {prompt: "Histogram in 10 bins, 300 dpi, 800x600, top 5, the 2nd panel over the last 12 months: 4, 5", data: []string{"4", "5"}},
		"labels name values":             {prompt: "Plot sales: North 120, South (95), \"West coast\" 3. Thanks Bob", data: []string{"120", "95", "3"}, labels: []string{"West coast", "North", "South"}},
		"a range":                        {prompt: "Transfusions 2019-2023: 40, 42", data: []string{"2019", "2023", "40", "42"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := ScanPrompt(tc.prompt)
			var data []string
			for _, n := range s.Data() {
				data = append(data, n.Text)
			}
			if d := cmp.Diff(tc.data, data); d != "" {
				t.Errorf("data (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.labels, s.Labels); d != "" {
				t.Errorf("labels (-want +got):\n%s", d)
			}
		})
	}
}
