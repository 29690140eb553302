package detect

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDetect(t *testing.T) {
	tests := map[string]struct {
		prompt string
		want   Result
	}{
		"seed bar chart": {
			prompt: "Create a bar chart of SCD treatment effectiveness: Hydroxyurea (85%), Voxelotor (70%), Crizanlizumab (75%)",
			want: Result{
				Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartBar, Source: SourceKeywords,
				Keywords: []string{"chart", "bar chart"},
				Title:    "SCD treatment effectiveness", YLabel: "Effectiveness (%)",
				Labels: []string{"Hydroxyurea", "Voxelotor", "Crizanlizumab"}, Values: []float64{85, 70, 75}, Unit: "%",
			},
		},
		"seed time series": {
			prompt: "Plot VOE episodes per month: 3, 2, 4, 1, 2, 3, 2, 1, 2, 3, 4, 2",
			want: Result{
				Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartLine, Source: SourceKeywords,
				Keywords: []string{"plot", "per month"},
				Title:    "VOE episodes per month", XLabel: "Month", YLabel: "VOE episodes",
				Values: []float64{3, 2, 4, 1, 2, 3, 2, 1, 2, 3, 4, 2},
			},
		},
		"seed scatter": {
			prompt: "Scatter plot of hydroxyurea dosage (mg/kg) vs HbF level (%)",
			want: Result{
				Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartScatter, Source: SourceKeywords,
				Keywords: []string{"scatter plot"},
				Title:    "Hydroxyurea dosage (mg/kg) vs HbF level (%)", XLabel: "Hydroxyurea dosage (mg/kg)", YLabel: "HbF level (%)",
			},
		},
		"negated plot": {
			prompt: "don't plot anything, just tell me",
			want:   Result{Tool: ToolNone, ChartType: ChartAuto, Source: SourceKeywords, Keywords: []string{"don't plot"}},
		},
		"negated chart with typographic apostrophe routes to literature": {
			prompt: "I don’t need a chart, what trials exist for voxelotor?",
			want:   Result{Tool: ToolPubMedSearch, ChartType: ChartAuto, Source: SourceKeywords, Keywords: []string{"don't chart", "trials"}},
		},
		"negation far from the keyword does not cancel it": {
			prompt: "Plot the number of patients who did not respond to treatment over the years in a line chart",
			want: Result{
				Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartLine, Source: SourceKeywords,
				Keywords: []string{"plot", "chart", "line chart"},
				Title:    "Number of patients who did not respond to treatment over the years",
				XLabel:   "Years", YLabel: "Number of patients who did not…",
			},
		},
		"one negated, one wanted": {
			prompt: "not a bar chart, a pie chart of market share: A (30%), B (70%)",
			want: Result{
				Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartPie, Source: SourceKeywords,
				Keywords: []string{"chart", "pie"},
				Title:    "Market share", YLabel: "Share (%)",
				Labels: []string{"A", "B"}, Values: []float64{30, 70}, Unit: "%",
			},
		},
		"graph theory": {
			prompt: "graph theory",
			want:   Result{Tool: ToolNone, ChartType: ChartAuto, Source: SourceKeywords},
		},
		"movie plot": {
			prompt: "the plot of the movie was great",
			want:   Result{Tool: ToolNone, ChartType: ChartAuto, Source: SourceKeywords},
		},
		"reading a chart is a question, not a request": {
			prompt: "how do I read a Kaplan-Meier curve?",
			want:   Result{Tool: ToolNone, ChartType: ChartAuto, Source: SourceKeywords},
		},
		"interpretation question that also asks for a chart": {
			prompt: "Explain what a survival curve shows and draw one",
			want: Result{
				Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartLine, Source: SourceKeywords,
				Keywords: []string{"curve", "survival"}, Title: "Survival curve shows",
			},
		},
		"weak keyword without a creation verb": {
			prompt: "the figures for 2024 are in",
			want:   Result{Tool: ToolNone, ChartType: ChartAuto, Source: SourceKeywords},
		},
		"news": {
			prompt: "latest news on sickle cell gene therapy prices",
			want:   Result{Tool: ToolWebSearch, ChartType: ChartAuto, Source: SourceKeywords, Keywords: []string{"latest", "news", "prices"}},
		},
		"literature wins over recency": {
			prompt: "latest studies on voxelotor",
			want:   Result{Tool: ToolPubMedSearch, ChartType: ChartAuto, Source: SourceKeywords, Keywords: []string{"studies"}},
		},
		"empty prompt": {
			prompt: "",
			want:   Result{Tool: ToolNone, ChartType: ChartAuto, Source: SourceKeywords},
		},
		"only punctuation": {
			prompt: "?!.,;:\n\t",
			want:   Result{Tool: ToolNone, ChartType: ChartAuto, Source: SourceKeywords},
		},
		"invalid utf-8": {
			prompt: "plot \xff\xfe 1, 2, 3",
			want: Result{
				Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartAuto, Source: SourceKeywords,
				Keywords: []string{"plot"}, Title: "\xff\xfe", YLabel: "\xff\xfe", Values: []float64{1, 2, 3},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Detect(tc.prompt)); diff != "" {
				t.Errorf("Detect(%q) mismatch (-want +got):\n%s", tc.prompt, diff)
			}
		})
	}
}

// TestDetectBounds feeds hostile sizes: results stay bounded and Detect stays fast.
func TestDetectBounds(t *testing.T) {
	tests := map[string]string{
		"many keywords":     strings.Repeat("plot chart graph histogram heatmap visualize diagram boxplot sparkline infographic scatterplot ", 50),
		"many numbers":      "plot " + strings.Repeat("1, ", 5000) + "2",
		"many pairs":        "bar chart " + strings.Repeat("Alpha (1), ", 5000),
		"huge prompt":       strings.Repeat("x", 10<<20) + " plot",
		"long title":        "plot " + strings.Repeat("verylongword ", 100),
		"nested parens":     "plot " + strings.Repeat("(", 10000) + "1" + strings.Repeat(")", 10000),
		"long single label": "bar chart " + strings.Repeat("a", 500) + " (1), b (2)",
	}
	for name, prompt := range tests {
		t.Run(name, func(t *testing.T) {
			r := Detect(prompt)
			if len(r.Keywords) > maxKeywords {
				t.Errorf("%d keywords, want ≤ %d", len(r.Keywords), maxKeywords)
			}
			if len(r.Values) > maxPoints || len(r.Labels) > maxPoints {
				t.Errorf("%d values and %d labels, want ≤ %d", len(r.Values), len(r.Labels), maxPoints)
			}
			for _, l := range r.Labels {
				if len(l) > maxLabel {
					t.Errorf("label of %d bytes, want ≤ %d", len(l), maxLabel)
				}
			}
			if len(r.Title) > maxTitle || len(r.XLabel) > maxAxisLabel || len(r.YLabel) > maxAxisLabel+len(" (%)") {
				t.Errorf("title/x/y of %d/%d/%d bytes exceed bounds", len(r.Title), len(r.XLabel), len(r.YLabel))
			}
		})
	}
}

// TestDetectDeterministic guards against map iteration or other hidden state.
func TestDetectDeterministic(t *testing.T) {
	p := "Horizontal bar chart of admissions by site: North 120, South 95, East 60"
	first := Detect(p)
	for range 20 {
		if diff := cmp.Diff(first, Detect(p)); diff != "" {
			t.Fatalf("Detect is not deterministic:\n%s", diff)
		}
	}
}

func BenchmarkDetect(b *testing.B) {
	p := "Create a bar chart of SCD treatment effectiveness: Hydroxyurea (85%), Voxelotor (70%), Crizanlizumab (75%)"
	for b.Loop() {
		Detect(p)
	}
}
