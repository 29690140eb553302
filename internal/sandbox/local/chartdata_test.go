package local

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// TestChartData runs hand-written matplotlib, seaborn, pandas and plotly programs of
// each chart type in a real sandbox and compares the chart data the runner reads back
// (chartdata.py) with what the program plots.
func TestChartData(t *testing.T) { testChartData(t, sharedFeaturePool(t)) }

func testChartData(t *testing.T, p *Pool) {
	bar := func(name string, labels []string, y ...float64) chartdata.Series {
		return chartdata.Series{Name: name, Type: chartdata.TypeBar, Labels: labels, Y: y}
	}
	q := []string{"Q1", "Q2", "Q3"}
	tests := map[string]struct {
		code    string
		formats []sandbox.Format
		want    []chartdata.Chart
	}{
		"matplotlib bar": {
			code: `import matplotlib.pyplot as plt
plt.bar(["Hydroxyurea", "Voxelotor", "Crizanlizumab"], [85, 70, 75])
plt.title("SCD Treatment Effectiveness"); plt.ylabel("Effectiveness (%)")
plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeBar, Library: "matplotlib", Figure: "figure_1", Title: "SCD Treatment Effectiveness",
				YLabel: "Effectiveness (%)", YUnit: "%", Series: []chartdata.Series{bar("", []string{"Hydroxyurea", "Voxelotor", "Crizanlizumab"}, 85, 70, 75)}}},
		},
		"matplotlib grouped bars with a legend": {
			code: `import matplotlib.pyplot as plt, numpy as np
x = np.arange(3)
fig, ax = plt.subplots()
ax.bar(x - 0.2, [4, 6, 5], 0.4, label="2022")
ax.bar(x + 0.2, [3, 5, 2], 0.4, label="2023")
ax.set_xticks(x, ["Q1", "Q2", "Q3"]); ax.legend(); ax.set_title("ER visits")
plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeBar, Library: "matplotlib", Figure: "figure_1", Title: "ER visits",
				Series: []chartdata.Series{bar("2022", q, 4, 6, 5), bar("2023", q, 3, 5, 2)}}},
		},
		"matplotlib stacked bars": {
			code: `import matplotlib.pyplot as plt
plt.bar(["Q1", "Q2", "Q3"], [20, 25, 30], label="inpatient")
plt.bar(["Q1", "Q2", "Q3"], [35, 40, 45], bottom=[20, 25, 30], label="outpatient")
plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeBar, Library: "matplotlib", Figure: "figure_1",
				Series: []chartdata.Series{bar("inpatient", q, 20, 25, 30), bar("outpatient", q, 35, 40, 45)}}},
		},
		"matplotlib horizontal bars": {
			code: `import matplotlib.pyplot as plt
plt.barh(["North", "South"], [120, 95]); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeBarH, Library: "matplotlib", Figure: "figure_1",
				Series: []chartdata.Series{{Type: chartdata.TypeBarH, Labels: []string{"North", "South"}, Y: []float64{120, 95}}}}},
		},
		"matplotlib line with numeric x": {
			code: `import matplotlib.pyplot as plt
plt.plot([1, 3, 5, 7], [520, 480, 430, 390], marker="o", label="LDH")
plt.xlabel("Day"); plt.ylabel("LDH (U/L)"); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeLine, Library: "matplotlib", Figure: "figure_1", XLabel: "Day", YLabel: "LDH (U/L)", YUnit: "U/L",
				Series: []chartdata.Series{{Name: "LDH", Type: chartdata.TypeLine, X: []float64{1, 3, 5, 7}, Y: []float64{520, 480, 430, 390}}}}},
		},
		"matplotlib scatter": {
			code: `import matplotlib.pyplot as plt
plt.scatter([22, 27, 31], [118, 131, 142]); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeScatter, Library: "matplotlib", Figure: "figure_1",
				Series: []chartdata.Series{{Type: chartdata.TypeScatter, X: []float64{22, 27, 31}, Y: []float64{118, 131, 142}}}}},
		},
		"matplotlib pie keeps shares": {
			code: `import matplotlib.pyplot as plt
plt.pie([25, 75], labels=["A", "B"]); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypePie, Library: "matplotlib", Figure: "figure_1",
				Series: []chartdata.Series{{Type: chartdata.TypePie, Labels: []string{"A", "B"}, Y: []float64{25, 75}}}}},
		},
		"matplotlib box plot": {
			code: `import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.boxplot([[1, 2, 3, 4, 5], [2, 4, 6, 8, 10]])
ax.set_xticks([1, 2], ["arm A", "arm B"])
plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeBox, Library: "matplotlib", Figure: "figure_1",
				Series: []chartdata.Series{{Type: chartdata.TypeBox, Boxes: []chartdata.Box{
					{Label: "arm A", Min: 1, Q1: 2, Median: 3, Q3: 4, Max: 5}, {Label: "arm B", Min: 2, Q1: 4, Median: 6, Q3: 8, Max: 10}}}}}},
		},
		"matplotlib histogram": {
			code: `import matplotlib.pyplot as plt
plt.hist([1, 2, 2, 3, 3, 3], bins=3); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeHistogram, Library: "matplotlib", Figure: "figure_1",
				Series: []chartdata.Series{{Type: chartdata.TypeHistogram, X: []float64{1, 1 + 2.0/3, 1 + 4.0/3}, Y: []float64{1, 2, 3}}}}},
		},
		"matplotlib stackplot": {
			code: `import matplotlib.pyplot as plt
plt.stackplot([1, 2, 3], [1, 2, 3], [4, 5, 6], labels=["a", "b"]); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeArea, Library: "matplotlib", Figure: "figure_1", Series: []chartdata.Series{
				{Name: "a", Type: chartdata.TypeArea, X: []float64{1, 2, 3}, Y: []float64{1, 2, 3}},
				{Name: "b", Type: chartdata.TypeArea, X: []float64{1, 2, 3}, Y: []float64{4, 5, 6}}}}},
		},
		"seaborn barplot (error bars are not series)": {
			code: `import seaborn as sns, pandas as pd, matplotlib.pyplot as plt
df = pd.DataFrame({"drug": ["A", "A", "B", "B"], "score": [1, 3, 5, 7]})
sns.barplot(data=df, x="drug", y="score"); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeBar, Library: "matplotlib", Figure: "figure_1", XLabel: "drug", YLabel: "score",
				Series: []chartdata.Series{bar("", []string{"A", "B"}, 2, 6)}}},
		},
		"seaborn boxplot": {
			code: `import seaborn as sns, pandas as pd, matplotlib.pyplot as plt
df = pd.DataFrame({"arm": ["A"] * 5 + ["B"] * 5, "pain": [1, 2, 3, 4, 5, 2, 4, 6, 8, 10]})
sns.boxplot(data=df, x="arm", y="pain"); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeBox, Library: "matplotlib", Figure: "figure_1", XLabel: "arm", YLabel: "pain",
				Series: []chartdata.Series{{Type: chartdata.TypeBox, Boxes: []chartdata.Box{
					{Label: "A", Min: 1, Q1: 2, Median: 3, Q3: 4, Max: 5}, {Label: "B", Min: 2, Q1: 4, Median: 6, Q3: 8, Max: 10}}}}}},
		},
		"seaborn heatmap (the colorbar is not a chart)": {
			code: `import seaborn as sns, matplotlib.pyplot as plt
sns.heatmap([[1, 2], [3, 4]]); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeHeatmap, Library: "matplotlib", Figure: "figure_1",
				Series: []chartdata.Series{{Type: chartdata.TypeHeatmap, Y: []float64{1, 2, 3, 4}}}}},
		},
		"pandas line plot of two columns": {
			code: `import pandas as pd, matplotlib.pyplot as plt
pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}, index=[2021, 2022, 2023]).plot(); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeLine, Library: "matplotlib", Figure: "figure_1", Series: []chartdata.Series{
				{Name: "a", Type: chartdata.TypeLine, X: []float64{2021, 2022, 2023}, Y: []float64{1, 2, 3}},
				{Name: "b", Type: chartdata.TypeLine, X: []float64{2021, 2022, 2023}, Y: []float64{4, 5, 6}}}}},
		},
		"pandas bar plot": {
			code: `import pandas as pd, matplotlib.pyplot as plt
pd.Series([3, 1], index=["x", "y"]).plot.bar(); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeBar, Library: "matplotlib", Figure: "figure_1", Series: []chartdata.Series{bar("", []string{"x", "y"}, 3, 1)}}},
		},
		"plotly bar": {
			code: `import plotly.graph_objects as go
fig = go.Figure(go.Bar(x=["A", "B"], y=[85, 70], name="eff"))
fig.update_layout(title="T", yaxis_title="Effectiveness (%)")
fig.show()`,
			formats: []sandbox.Format{sandbox.FormatHTML},
			want: []chartdata.Chart{{Type: chartdata.TypeBar, Library: "plotly", Figure: "plotly_1", Title: "T", YLabel: "Effectiveness (%)", YUnit: "%",
				Series: []chartdata.Series{bar("eff", []string{"A", "B"}, 85, 70)}}},
		},
		"plotly express grouped bars": {
			code: `import plotly.express as px, pandas as pd
df = pd.DataFrame({"q": ["Q1", "Q2", "Q1", "Q2"], "n": [4, 6, 3, 5], "year": ["2022", "2022", "2023", "2023"]})
px.bar(df, x="q", y="n", color="year", barmode="group").show()`,
			formats: []sandbox.Format{sandbox.FormatHTML},
			want: []chartdata.Chart{{Type: chartdata.TypeBar, Library: "plotly", Figure: "plotly_1", XLabel: "q", YLabel: "n",
				Series: []chartdata.Series{bar("2022", []string{"Q1", "Q2"}, 4, 6), bar("2023", []string{"Q1", "Q2"}, 3, 5)}}},
		},
		"plotly line and scatter": {
			code: `import plotly.graph_objects as go
go.Figure(go.Scatter(x=[1, 3], y=[520, 480], mode="lines")).show()
go.Figure(go.Scatter(x=[22, 27], y=[118, 131], mode="markers")).show()`,
			formats: []sandbox.Format{sandbox.FormatHTML},
			want: []chartdata.Chart{
				{Type: chartdata.TypeLine, Library: "plotly", Figure: "plotly_1", Series: []chartdata.Series{{Type: chartdata.TypeLine, X: []float64{1, 3}, Y: []float64{520, 480}}}},
				{Type: chartdata.TypeScatter, Library: "plotly", Figure: "plotly_2", Series: []chartdata.Series{{Type: chartdata.TypeScatter, X: []float64{22, 27}, Y: []float64{118, 131}}}},
			},
		},
		"plotly pie and box": {
			code: `import plotly.graph_objects as go
go.Figure(go.Pie(labels=["A", "B"], values=[1, 3])).show()
go.Figure(go.Box(y=[1, 2, 3, 4, 5], name="arm A")).show()`,
			formats: []sandbox.Format{sandbox.FormatHTML},
			want: []chartdata.Chart{
				{Type: chartdata.TypePie, Library: "plotly", Figure: "plotly_1", Series: []chartdata.Series{{Type: chartdata.TypePie, Labels: []string{"A", "B"}, Y: []float64{1, 3}}}},
				{Type: chartdata.TypeBox, Library: "plotly", Figure: "plotly_2", Series: []chartdata.Series{{Type: chartdata.TypeBox, Boxes: []chartdata.Box{{Label: "arm A", Min: 1, Q1: 2, Median: 3, Q3: 4, Max: 5}}}}},
			},
		},
		"seaborn scatterplot and lineplot": {
			code: `import seaborn as sns, pandas as pd, matplotlib.pyplot as plt
df = pd.DataFrame({"dose": [10, 20, 30], "hbf": [5, 9, 14]})
sns.scatterplot(data=df, x="dose", y="hbf"); plt.show()
sns.lineplot(data=df, x="dose", y="hbf"); plt.show()`,
			want: []chartdata.Chart{
				{Type: chartdata.TypeScatter, Library: "matplotlib", Figure: "figure_1", XLabel: "dose", YLabel: "hbf",
					Series: []chartdata.Series{{Type: chartdata.TypeScatter, X: []float64{10, 20, 30}, Y: []float64{5, 9, 14}}}},
				{Type: chartdata.TypeLine, Library: "matplotlib", Figure: "figure_2", XLabel: "dose", YLabel: "hbf",
					Series: []chartdata.Series{{Type: chartdata.TypeLine, X: []float64{10, 20, 30}, Y: []float64{5, 9, 14}}}},
			},
		},
		"seaborn histplot": {
			code: `import seaborn as sns, matplotlib.pyplot as plt
sns.histplot([1, 2, 2, 3, 3, 3], bins=3); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeHistogram, Library: "matplotlib", Figure: "figure_1", YLabel: "Count",
				Series: []chartdata.Series{{Type: chartdata.TypeHistogram, X: []float64{1, 1 + 2.0/3, 1 + 4.0/3}, Y: []float64{1, 2, 3}}}}},
		},
		"pandas scatter and pie": {
			code: `import pandas as pd, matplotlib.pyplot as plt
pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}).plot.scatter(x="a", y="b"); plt.show()
pd.Series([1, 3], index=["x", "y"]).plot.pie(); plt.show()`,
			want: []chartdata.Chart{
				{Type: chartdata.TypeScatter, Library: "matplotlib", Figure: "figure_1", XLabel: "a", YLabel: "b",
					Series: []chartdata.Series{{Type: chartdata.TypeScatter, X: []float64{1, 2, 3}, Y: []float64{4, 5, 6}}}},
				{Type: chartdata.TypePie, Library: "matplotlib", Figure: "figure_2",
					Series: []chartdata.Series{{Type: chartdata.TypePie, Labels: []string{"x", "y"}, Y: []float64{25, 75}}}},
			},
		},
		"plotly heatmap and stacked area": {
			code: `import plotly.graph_objects as go
go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])).show()
fig = go.Figure()
fig.add_trace(go.Scatter(x=[1, 2], y=[1, 2], stackgroup="one", name="a"))
fig.add_trace(go.Scatter(x=[1, 2], y=[3, 4], stackgroup="one", name="b"))
fig.show()`,
			formats: []sandbox.Format{sandbox.FormatHTML},
			want: []chartdata.Chart{
				{Type: chartdata.TypeHeatmap, Library: "plotly", Figure: "plotly_1", Series: []chartdata.Series{{Type: chartdata.TypeHeatmap, Y: []float64{1, 2, 3, 4}}}},
				{Type: chartdata.TypeArea, Library: "plotly", Figure: "plotly_2", Series: []chartdata.Series{
					{Name: "a", Type: chartdata.TypeArea, X: []float64{1, 2}, Y: []float64{1, 2}},
					{Name: "b", Type: chartdata.TypeArea, X: []float64{1, 2}, Y: []float64{3, 4}}}},
			},
		},
		"plotly histogram counts every value": {
			code: `import plotly.express as px
px.histogram(x=[1, 2, 2, 3, 3, 3]).show()`,
			formats: []sandbox.Format{sandbox.FormatHTML},
			want: []chartdata.Chart{{Type: chartdata.TypeHistogram, Library: "plotly", Figure: "plotly_1", XLabel: "x", YLabel: "count",
				Series: []chartdata.Series{{Type: chartdata.TypeHistogram, X: []float64{1, 1.5, 2, 2.5}, Y: []float64{1, 0, 2, 3}}}}},
		},
		"no figure, no chart": {code: `print("hello")`, want: nil},
		"NaN and inf are left out, and the report stays readable": {
			code: `import matplotlib.pyplot as plt
plt.plot([1, 2, 3, 4], [1, float("nan"), float("inf"), 4]); plt.show()`,
			want: []chartdata.Chart{{Type: chartdata.TypeLine, Library: "matplotlib", Figure: "figure_1",
				Series: []chartdata.Series{{Type: chartdata.TypeLine, X: []float64{1, 4}, Y: []float64{1, 4}}}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			res, err := sandbox.Run(ctx, p, "chartdata-test", sandbox.Request{Code: tc.code, Formats: tc.formats, Timeout: 90 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Success {
				t.Fatalf("the program failed: %+v\n%s", res.Error, res.Stderr)
			}
			if diff := cmp.Diff(tc.want, res.Charts, cmpopts.EquateApprox(0, 1e-6), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("chart data (-want +got):\n%s", diff)
			}
		})
	}
}
