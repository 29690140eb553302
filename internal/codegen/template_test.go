package codegen

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vizops/viz-operator/internal/detect"
)

var allCharts = []detect.ChartType{
	detect.ChartBar, detect.ChartBarH, detect.ChartLine, detect.ChartScatter, detect.ChartHistogram,
	detect.ChartPie, detect.ChartBox, detect.ChartHeatmap, detect.ChartArea, detect.ChartStackedArea,
}

// csvMixed has a date, a category and three numbers: every chart can draw from it.
const csvMixed = `date,genotype,hbf_pct,dose_mg_kg,voe_episodes
2024-01-01,HbSS,8.1,15,3
2024-02-01,HbSC,12.5,20,2
2024-03-01,HbSS,9.0,18,4
2024-04-01,HbSB,15.2,25,1
2024-05-01,HbSC,11.0,22,2
2024-06-01,HbSS,,20,3
2024-07-01,HbSB,16.4,28,2
2024-08-01,HbSS,10.2,21,1
`

func TestTemplateNames(t *testing.T) {
	var want []string
	for _, c := range allCharts {
		want = append(want, string(c), "plotly_"+string(c))
	}
	got := TemplateNames()
	for _, w := range want {
		if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+w+" ") {
			t.Errorf("template %q missing; have %q", w, got)
		}
	}
	// Parsed once: the same *template.Template comes back every time.
	a, errA := templates()
	b, errB := templates()
	if errA != nil || errB != nil || a != b {
		t.Errorf("templates() = %p, %v then %p, %v; want one parse", a, errA, b, errB)
	}
}

// TestFromTemplateRuns draws every chart type from each data source and checks the
// chart from the artists matplotlib holds, and the title and labels on the axes.
func TestFromTemplateRuns(t *testing.T) {
	type source struct {
		det detect.Result
		csv []byte
	}
	sources := map[string]source{
		"prompt data": {det: detect.Result{
			Title: "Treatment effectiveness", XLabel: "Treatment", YLabel: "Effectiveness (%)",
			Labels: []string{"Hydroxyurea", "Voxelotor", "Crizanlizumab", "L-glutamine"}, Values: []float64{85, 70, 75, 40},
		}},
		"csv":          {det: detect.Result{Title: "From the data"}, csv: []byte(csvMixed)},
		"illustrative": {det: detect.Result{Title: "Nothing given"}},
	}
	for _, chart := range allCharts {
		for sname, src := range sources {
			t.Run(string(chart)+"/"+sname, func(t *testing.T) {
				t.Parallel()
				det := src.det
				det.Visualization, det.ChartType = true, chart
				code, err := FromTemplate(Input{Prompt: det.Title, Detection: det, CSV: src.csv})
				if err != nil {
					t.Fatal(err)
				}
				if code.Source != SourceTemplate || code.Template != string(chart) {
					t.Errorf("Code{Source: %s, Template: %s}, want Template %s", code.Source, code.Template, chart)
				}
				res := runPython(t, code.Code, src.csv)
				if len(res.Figures) != 1 {
					t.Fatalf("%d figures, want 1", len(res.Figures))
				}
				got, want := chartOf(res.Figures[0]), chart
				// One prompt series stacks into one layer: an area.
				if chart == detect.ChartStackedArea && sname == "prompt data" {
					want = detect.ChartArea
				}
				if got != want {
					t.Errorf("artists show a %q chart, want %q: %+v", got, want, res.Figures[0])
				}
				wantTitle := det.Title
				if sname == "illustrative" {
					wantTitle += " (illustrative data)"
				}
				if main := res.Figures[0][0]; main.Title != wantTitle {
					t.Errorf("title %q, want %q", main.Title, wantTitle)
				}
			})
		}
	}
}

// TestPlotlyVariants: "html" selects plotly; each variant must build a plotly Figure
// of the right trace type and hand it to fig.show().
func TestPlotlyVariants(t *testing.T) {
	for _, chart := range allCharts {
		for sname, csv := range map[string][]byte{"csv": []byte(csvMixed), "illustrative": nil} {
			t.Run(string(chart)+"/"+sname, func(t *testing.T) {
				t.Parallel()
				det := detect.Result{Visualization: true, ChartType: chart, Title: `A <b>"title"</b>`}
				code, err := FromTemplate(Input{Detection: det, CSV: csv, Formats: []string{"png", "html"}})
				if err != nil {
					t.Fatal(err)
				}
				if code.Template != "plotly_"+string(chart) {
					t.Errorf("template %q, want plotly_%s", code.Template, chart)
				}
				res := runPython(t, code.Code, csv)
				if len(res.Plotly) != 1 || !res.Plotly[0].IsFigure {
					t.Fatalf("fig.show() got %d figures (%+v), want one plotly Figure", len(res.Plotly), res.Plotly)
				}
				if got := plotlyChartOf(res.Plotly[0]); got != chart {
					t.Errorf("traces show %q, want %q: %+v", got, chart, res.Plotly[0].Traces)
				}
				// Markup in a prompt is shown as text, not rendered.
				if title := res.Plotly[0].Title; title == nil || !strings.HasPrefix(*title, `A &lt;b&gt;"title"&lt;/b&gt;`) {
					t.Errorf("title %v, want the escaped prompt title", title)
				}
				if len(res.Figures) != 0 {
					t.Errorf("plotly variant left %d matplotlib figures", len(res.Figures))
				}
			})
		}
	}
}

// TestSeedExamples reproduces the seed's three examples from their prompts.
func TestSeedExamples(t *testing.T) {
	type want struct {
		Template, Title, XLabel, YLabel string
		Chart                           detect.ChartType
		Bars                            []float64
		Line                            []float64
		XTicks                          []string
	}
	tests := map[string]struct {
		prompt string
		want   want
	}{
		"bar of treatments": {
			prompt: "Create a bar chart of SCD treatment effectiveness: Hydroxyurea (85%), Voxelotor (70%), Crizanlizumab (75%)",
			want: want{Template: "bar", Title: "SCD treatment effectiveness", YLabel: "Effectiveness (%)", Chart: detect.ChartBar,
				Bars: []float64{85, 70, 75}, XTicks: []string{"Hydroxyurea", "Voxelotor", "Crizanlizumab"}},
		},
		"VOE time series": {
			prompt: "Plot VOE episodes per month: 3, 2, 4, 1, 2, 3, 2, 1, 2, 3, 4, 2",
			want: want{Template: "line", Title: "VOE episodes per month", XLabel: "Month", YLabel: "VOE episodes", Chart: detect.ChartLine,
				Line: []float64{3, 2, 4, 1, 2, 3, 2, 1, 2, 3, 4, 2}},
		},
		"dosage vs HbF": {
			prompt: "Scatter plot of hydroxyurea dosage (mg/kg) vs HbF level (%)",
			want: want{Template: "scatter", Title: "Hydroxyurea dosage (mg/kg) vs HbF level (%) (illustrative data)",
				XLabel: "Hydroxyurea dosage (mg/kg)", YLabel: "HbF level (%)", Chart: detect.ChartScatter},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, err := FromTemplate(Input{Prompt: tc.prompt, Detection: detect.Detect(tc.prompt)})
			if err != nil {
				t.Fatal(err)
			}
			res := runPython(t, code.Code, nil)
			if len(res.Figures) != 1 {
				t.Fatalf("%d figures, want 1", len(res.Figures))
			}
			ax := res.Figures[0][0]
			got := want{Template: code.Template, Title: ax.Title, XLabel: ax.XLabel, YLabel: ax.YLabel, Chart: chartOf(res.Figures[0])}
			if len(tc.want.Bars) > 0 && len(ax.Bars) > 0 {
				got.Bars, got.XTicks = ax.Bars[0].Heights, ax.XTickLabels
			}
			if tc.want.Line != nil && len(ax.LineYs) > 0 {
				got.Line = ax.LineYs[0]
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFromTemplateEscaping puts hostile text where the prompt reaches the code: it
// must come out on the figure exactly as written and never run.
func TestFromTemplateEscaping(t *testing.T) {
	hostile := map[string]string{
		"quotes":             `He said "hi" and 'bye'`,
		"triple quotes":      `""" + __import__("os").system("touch pwned") + """`,
		"backslashes":        `C:\new\table\x41\N{DASH}\`,
		"newline injection":  "title\nimport os; os.system('touch pwned')\n#",
		"template braces":    `{{ .Title }} {{template "load" .}} {{`,
		"dollar signs":       `Cost in $ and $x^2$ and $`,
		"unicode and nul":    "Hämoglobin — 血红蛋白 🩸 \x00 end",
		"carriage return":    "a\rb",
		"percent formatting": `%s %d {0} {}`,
	}
	for name, text := range hostile {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			det := detect.Result{Visualization: true, ChartType: detect.ChartBar, Title: text, XLabel: text, YLabel: text,
				Labels: []string{text, "b"}, Values: []float64{1, 2}}
			code, err := FromTemplate(Input{Prompt: text, Detection: det})
			if err != nil {
				t.Fatal(err)
			}
			res := runPython(t, code.Code+"\nimport os\nassert not os.path.exists('pwned'), 'injected code ran'\n", nil)
			ax := res.Figures[0][0]
			got := []string{ax.Title, ax.XLabel, ax.YLabel, ax.XTickLabels[0]}
			want := []string{text, text, text, text}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("text changed on its way to the figure (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromTemplateErrors(t *testing.T) {
	tests := map[string]struct {
		chart detect.ChartType
		csv   string
		want  string // a substring of the error
	}{
		"malformed csv names the line": {
			chart: detect.ChartBar, csv: "a,b\n1,2\n3,4,5\n", want: "line 3",
		},
		"header only": {
			chart: detect.ChartBar, csv: "a,b\n", want: "no data rows",
		},
		"histogram without numbers": {
			chart: detect.ChartHistogram, csv: "name\nx\ny\n", want: `a histogram chart needs a numeric column; the columns are "name" (category)`,
		},
		"scatter without numbers": {
			chart: detect.ChartScatter, csv: "name,city\nx,a\ny,b\n", want: "needs numeric columns",
		},
		"heatmap with one number and one category": {
			chart: detect.ChartHeatmap, csv: "name,v\nx,1\ny,2\n", want: "two numeric columns",
		},
		"unknown chart type": {
			chart: "radar", csv: "a\n1\n", want: `no template for chart type "radar"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := FromTemplate(Input{Detection: detect.Result{ChartType: tc.chart}, CSV: []byte(tc.csv)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("FromTemplate error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestResolveChart(t *testing.T) {
	tests := map[string]struct {
		det  detect.Result
		csv  string
		want detect.ChartType
	}{
		"explicit wins over data":   {det: detect.Result{ChartType: detect.ChartPie}, csv: csvMixed, want: detect.ChartPie},
		"categorical labels":        {det: detect.Result{ChartType: detect.ChartAuto, Labels: []string{"a", "b"}, Values: []float64{1, 2}}, want: detect.ChartBar},
		"month labels":              {det: detect.Result{ChartType: detect.ChartAuto, Labels: []string{"Jan", "Feb"}, Values: []float64{1, 2}}, want: detect.ChartLine},
		"year labels":               {det: detect.Result{ChartType: detect.ChartAuto, Labels: []string{"2019", "2020"}, Values: []float64{1, 2}}, want: detect.ChartLine},
		"bare values":               {det: detect.Result{ChartType: detect.ChartAuto, Values: []float64{1, 2, 3}}, want: detect.ChartLine},
		"csv with dates":            {det: detect.Result{ChartType: detect.ChartAuto}, csv: csvMixed, want: detect.ChartLine},
		"csv with categories":       {det: detect.Result{ChartType: detect.ChartAuto}, csv: "g,v\na,1\nb,2\n", want: detect.ChartBar},
		"csv with two numbers":      {det: detect.Result{ChartType: detect.ChartAuto}, csv: "x,y\n1,2\n2,4\n3,5\n", want: detect.ChartScatter},
		"csv with one number":       {det: detect.Result{ChartType: detect.ChartAuto}, csv: "x\n1\n2\n", want: detect.ChartHistogram},
		"malformed csv is no data":  {det: detect.Result{ChartType: detect.ChartAuto}, csv: "x,y\n1\n", want: detect.ChartBar},
		"nothing":                   {det: detect.Result{}, want: detect.ChartBar},
		"prompt data beats the csv": {det: detect.Result{Labels: []string{"a", "b"}, Values: []float64{1, 2}}, csv: "x,y\n1,2\n2,4\n", want: detect.ChartBar},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var csv []byte
			if tc.csv != "" {
				csv = []byte(tc.csv)
			}
			if got := ResolveChart(Input{Detection: tc.det, CSV: csv}); got != tc.want {
				t.Errorf("ResolveChart = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestColumnChoice: the prompt's column names decide which columns are drawn.
func TestColumnChoice(t *testing.T) {
	tests := map[string]struct {
		prompt string
		chart  detect.ChartType
		want   []string // substrings of the code
	}{
		"scatter follows the prompt's order": {
			prompt: "scatter of voe episodes vs dose", chart: detect.ChartScatter,
			want: []string{`df[["voe_episodes", "dose_mg_kg"]]`},
		},
		"scatter defaults to the first two numbers": {
			prompt: "scatter", chart: detect.ChartScatter,
			want: []string{`df[["hbf_pct", "dose_mg_kg"]]`},
		},
		"bar groups by the category": {
			prompt: "bar chart of dose by genotype", chart: detect.ChartBar,
			want: []string{`pd.to_numeric(df["dose_mg_kg"], errors="coerce")`, `values.groupby(df["genotype"])`},
		},
		"line uses the date column": {
			prompt: "hbf over time", chart: detect.ChartLine,
			want: []string{`pd.to_datetime(data["date"]`, `["hbf_pct", "dose_mg_kg", "voe_episodes"]`},
		},
		"histogram of the named column": {
			prompt: "histogram of VOE episodes", chart: detect.ChartHistogram,
			want: []string{`df["voe_episodes"]`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, err := FromTemplate(Input{Prompt: tc.prompt, Detection: detect.Result{ChartType: tc.chart}, CSV: []byte(csvMixed)})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(code.Code, w) {
					t.Errorf("code lacks %s:\n%s", w, code.Code)
				}
			}
		})
	}
}

// TestChartOf checks the artist classifier on hand-made probes, so a template that
// draws the wrong artists cannot pass for the right chart.
func TestChartOf(t *testing.T) {
	bars := func(contiguous, horizontal bool) []barInfo {
		return []barInfo{{N: 5, Contiguous: contiguous, Horizontal: horizontal}}
	}
	tests := map[string]struct {
		axes []axesInfo
		want detect.ChartType
	}{
		"nothing drawn":                        {axes: []axesInfo{{}}, want: ""},
		"no axes":                              {axes: nil, want: ""},
		"one point line":                       {axes: []axesInfo{{Lines: []int{1}}}, want: ""},
		"line":                                 {axes: []axesInfo{{Lines: []int{12}}}, want: detect.ChartLine},
		"bars with gaps":                       {axes: []axesInfo{{Bars: bars(false, false)}}, want: detect.ChartBar},
		"contiguous bars":                      {axes: []axesInfo{{Bars: bars(true, false)}}, want: detect.ChartHistogram},
		"horizontal bars":                      {axes: []axesInfo{{Bars: bars(false, true)}}, want: detect.ChartBarH},
		"scatter with a trend":                 {axes: []axesInfo{{Scatter: []int{50}, Lines: []int{100}}}, want: detect.ChartScatter},
		"wedges":                               {axes: []axesInfo{{Wedges: 3}}, want: detect.ChartPie},
		"quadmesh and colorbar":                {axes: []axesInfo{{QuadMesh: 1}, {QuadMesh: 1}}, want: detect.ChartHeatmap},
		"image":                                {axes: []axesInfo{{Images: 1}}, want: detect.ChartHeatmap},
		"box plot structure":                   {axes: []axesInfo{{BoxRects: 2, Lines: []int{2, 2, 2, 2, 5, 2, 0, 2, 2, 2, 2, 5, 2, 0}}}, want: detect.ChartBox},
		"rectangle without whiskers is a line": {axes: []axesInfo{{BoxRects: 1, Lines: []int{5}}}, want: detect.ChartLine},
		"one fill":                             {axes: []axesInfo{{Polys: []polyInfo{{BottomZero: true}}, Lines: []int{12}}}, want: detect.ChartArea},
		"overlapping fills from zero":          {axes: []axesInfo{{Polys: []polyInfo{{BottomZero: true}, {BottomZero: true}}}}, want: detect.ChartArea},
		"stacked layers":                       {axes: []axesInfo{{Polys: []polyInfo{{BottomZero: true}, {BottomZero: false}}}}, want: detect.ChartStackedArea},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := chartOf(tc.axes); got != tc.want {
				t.Errorf("chartOf = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFromTemplateAutoCSV draws "auto" charts from CSVs of different shapes.
func TestFromTemplateAutoCSV(t *testing.T) {
	tests := map[string]struct {
		csv  string
		want detect.ChartType
	}{
		"dates and numbers":                   {csv: csvMixed, want: detect.ChartLine},
		"categories and counts":               {csv: "drug,patients\nHU,40\nVox,25\nCriz,12\nHU,5\n", want: detect.ChartBar},
		"two numbers":                         {csv: "dose,hbf\n10,6\n15,9\n20,12.5\n25,14\n", want: detect.ChartScatter},
		"one number":                          {csv: "hb\n7.1\n8.3\n9.0\n6.5\n8.8\n7.7\n", want: detect.ChartHistogram},
		"numbers written as text are coerced": {csv: "site,visits\nA,10\nB,n/a\nC,x\nA,5\n", want: detect.ChartBar},
		// Hostile column names reach Python only as escaped literals.
		"hostile column names": {csv: "\"a\"\"); import os; os.system('touch pwned') #\",\"b\nc\"\nx,1\ny,2\n", want: detect.ChartBar},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := Input{Prompt: "chart it", Detection: detect.Result{Visualization: true, ChartType: detect.ChartAuto}, CSV: []byte(tc.csv)}
			code, err := FromTemplate(in)
			if err != nil {
				t.Fatal(err)
			}
			res := runPython(t, code.Code+"\nimport os\nassert not os.path.exists('pwned'), 'injected code ran'\n", in.CSV)
			if len(res.Figures) != 1 {
				t.Fatalf("%d figures, want 1", len(res.Figures))
			}
			if got := chartOf(res.Figures[0]); got != tc.want {
				t.Errorf("drew %q, want %q:\n%s", got, tc.want, code.Code)
			}
		})
	}
}
