package detect

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChartType(t *testing.T) {
	tests := map[string]struct {
		text string
		want ChartType
	}{
		"bar":                                  {"a bar chart of sales", ChartBar},
		"column chart":                         {"column chart of sales", ChartBar},
		"horizontal bar":                       {"horizontal bar chart of sites", ChartBarH},
		"line":                                 {"a line graph of visits", ChartLine},
		"time series":                          {"time series of scores", ChartLine},
		"per month":                            {"plot voe episodes per month", ChartLine},
		"over time":                            {"plot weight over time", ChartLine},
		"trend":                                {"plot the trend in admissions", ChartLine},
		"vs time is a line, not scatter":       {"plot hemoglobin vs time", ChartLine},
		"scatter":                              {"a scatterplot of a and b", ChartScatter},
		"correlation":                          {"plot the correlation of dose and hbf", ChartScatter},
		"vs":                                   {"plot dose vs hbf", ChartScatter},
		"relationship":                         {"graph the relationship between age and bmi", ChartScatter},
		"histogram":                            {"a histogram of ages", ChartHistogram},
		"distribution":                         {"plot the distribution of ages", ChartHistogram},
		"distribution by group is a box":       {"plot the distribution of hb by genotype", ChartBox},
		"pie":                                  {"a pie of genotypes", ChartPie},
		"share":                                {"chart the share of each drug", ChartPie},
		"proportion":                           {"plot the proportion of patients", ChartPie},
		"breakdown":                            {"chart a breakdown of costs", ChartPie},
		"box":                                  {"box plot of pain scores", ChartBox},
		"spread":                               {"plot the spread of scores", ChartBox},
		"quartiles":                            {"show quartiles of stay length", ChartBox},
		"heatmap":                              {"a heat map of lab values", ChartHeatmap},
		"correlation matrix beats correlation": {"plot the correlation matrix", ChartHeatmap},
		"area":                                 {"an area chart of visits", ChartArea},
		"stacked area":                         {"a stacked area chart of causes", ChartStackedArea},
		"explicit beats implied":               {"a bar chart of the share of patients per month", ChartBar},
		"nothing":                              {"plot this", ChartAuto},
		"empty":                                {"", ChartAuto},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got, cue := chartType(tc.text); got != tc.want {
				t.Errorf("chartType(%q) = %s (cue %q), want %s", tc.text, got, cue, tc.want)
			}
		})
	}
}

func TestLabels(t *testing.T) {
	type want struct{ Title, X, Y string }
	tests := map[string]struct {
		prompt string
		want   want
	}{
		"request words stripped": {
			prompt: "Can you please make me a simple bar chart of admissions by site?",
			want:   want{"Admissions by site", "Site", "Admissions"},
		},
		"vs puts the first on x (as the seed does)": {
			prompt: "plot dosage vs HbF",
			want:   want{"Dosage vs HbF", "Dosage", "HbF"},
		},
		"time goes on x whatever the order": {
			prompt: "plot time vs hemoglobin",
			want:   want{"Time vs hemoglobin", "Hemoglobin", "Time"},
		},
		"against puts the first on y": {
			prompt: "plot HbF against dosage",
			want:   want{"HbF against dosage", "Dosage", "HbF"},
		},
		"correlation between": {
			prompt: "show the correlation between age and BMI",
			want:   want{"Correlation between age and BMI", "Age", "BMI"},
		},
		"over the last year": {
			prompt: "graph ER visits over the last year",
			want:   want{"ER visits over the last year", "Year", "ER visits"},
		},
		"monthly": {
			prompt: "plot monthly admissions",
			want:   want{"Monthly admissions", "Month", "Admissions"},
		},
		"distribution": {
			prompt: "histogram of the distribution of ages",
			want:   want{"Distribution of ages", "Ages", "Count"},
		},
		"acronym keeps its case": {
			prompt: "plot mRNA levels per day",
			want:   want{"mRNA levels per day", "Day", "mRNA levels"},
		},
		"suffix stripped": {
			prompt: "Show revenue by quarter as a line chart using plotly.",
			want:   want{"Revenue by quarter", "Quarter", "Revenue"},
		},
		"instruction clause dropped": {
			prompt: "Plot weight by week, use red bars",
			want:   want{"Weight by week", "Week", "Weight"},
		},
		"only the first sentence": {
			prompt: "Plot weight by week. Make it pretty.",
			want:   want{"Weight by week", "Week", "Weight"},
		},
		"nothing but request words": {
			prompt: "make a chart",
			want:   want{},
		},
		"quotes and braces survive as text": {
			prompt: `plot "Q3" {{ .Secret }} by region`,
			want:   want{`"Q3" {{ .Secret }} by region`, "Region", `"Q3" {{ .Secret }}`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			title, x, y := labels(tc.prompt, Result{}, -1)
			if diff := cmp.Diff(tc.want, want{title, x, y}); diff != "" {
				t.Errorf("labels(%q) mismatch (-want +got):\n%s", tc.prompt, diff)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := map[string]struct {
		in   string
		max  int
		want string
	}{
		"short":            {"abc", 10, "abc"},
		"word boundary":    {"alpha beta gamma delta", 15, "alpha beta…"},
		"rune boundary":    {"ééééééééé", 8, "éé…"},
		"no space to cut":  {"abcdefghijkl", 8, "abcde…"},
		"exactly the size": {"abcd", 4, "abcd"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := truncate(tc.in, tc.max)
			if got != tc.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
			if len(got) > tc.max {
				t.Errorf("truncate(%q, %d) is %d bytes", tc.in, tc.max, len(got))
			}
		})
	}
}
