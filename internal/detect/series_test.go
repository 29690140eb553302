package detect

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExtractSeries(t *testing.T) {
	tests := map[string]struct {
		prompt string
		want   series
	}{
		"x-y points": {
			prompt: "BMI vs pressure: (22, 118), (27, 131)",
			want:   series{X: []float64{22, 27}, Values: []float64{118, 131}, Start: 17},
		},
		"x values then y values": {
			prompt: "LDH at days 1, 3, 5: 520, 480, 430",
			want:   series{X: []float64{1, 3, 5}, XName: "days", Labels: []string{"Day 1", "Day 3", "Day 5"}, Values: []float64{520, 480, 430}, Start: 12},
		},
		"named series with a quarter range": {
			prompt: "ER visits in 2022 (4, 6, 5) and 2023 (3, 5, 2) for Q1 to Q3",
			want: series{Labels: []string{"Q1", "Q2", "Q3"}, Values: []float64{4, 6, 5}, Start: 13,
				Series: []Series{{Name: "2022", Values: []float64{4, 6, 5}}, {Name: "2023", Values: []float64{3, 5, 2}}}},
		},
		"named series with a closing list of categories": {
			prompt: "Pie charts of genotype counts in 2022 (60, 25, 15) and 2023 (55, 30, 15) for HbSS, HbSC and HbS-beta",
			want: series{Labels: []string{"HbSS", "HbSC", "HbS-beta"}, Values: []float64{60, 25, 15}, Start: 33,
				Series: []Series{{Name: "2022", Values: []float64{60, 25, 15}}, {Name: "2023", Values: []float64{55, 30, 15}}}},
		},
		"a closing list of another length is not the categories": {
			prompt: "Bars of visits in 2022 (4, 6, 5) and 2023 (3, 5, 2) for north, east, south and west",
			want: series{Values: []float64{4, 6, 5}, Start: 18,
				Series: []Series{{Name: "2022", Values: []float64{4, 6, 5}}, {Name: "2023", Values: []float64{3, 5, 2}}}},
		},
		"two named pairs are series, not points": {
			prompt: "visits in 2020 (30, 28) and 2021 (35, 33)",
			want: series{Values: []float64{30, 28}, Start: 10,
				Series: []Series{{Name: "2020", Values: []float64{30, 28}}, {Name: "2021", Values: []float64{35, 33}}}},
		},
		"colon lists": {
			prompt: "arm A: 3, 5, 4; arm B: 2, 3, 3",
			want: series{Values: []float64{3, 5, 4}, Start: 0,
				Series: []Series{{Name: "arm A", Values: []float64{3, 5, 4}}, {Name: "arm B", Values: []float64{2, 3, 3}}}},
		},
		"values per category for two named series": {
			prompt: "inpatient and outpatient visits: Q1 20 and 35, Q2 25 and 40",
			want: series{Labels: []string{"Q1", "Q2"}, Values: []float64{20, 25}, Start: 33,
				Series: []Series{{Name: "Inpatient", Values: []float64{20, 25}}, {Name: "Outpatient", Values: []float64{35, 40}}}},
		},
		"month range names bare values": {
			prompt: "admissions from January to March: 12, 15, 11",
			want:   series{Labels: []string{"Jan", "Feb", "Mar"}, Values: []float64{12, 15, 11}, Start: 34},
		},
		"a range of another length is not used": {
			prompt: "admissions from January to March: 12, 15, 11, 9",
			want:   series{Values: []float64{12, 15, 11, 9}, Start: 34},
		},
		"counted visits": {
			prompt: "bilirubin over four visits: 2.1, 2.6, 3.0, 2.4",
			want:   series{Labels: []string{"Visit 1", "Visit 2", "Visit 3", "Visit 4"}, Values: []float64{2.1, 2.6, 3, 2.4}, Start: 28},
		},
		"narrative trend: from, to, and": {
			prompt: "clinic visits that grew from 210 in June to 260 in July and 300 in August",
			want:   series{Labels: []string{"June", "July", "August"}, Values: []float64{210, 260, 300}, Start: 13},
		},
		"narrative trend with units, years and then": {
			prompt: "dose fell from 4.5 mg in 2020 to 3 mg in 2021, then to 2.5 mg in 2022",
			want:   series{Labels: []string{"2020", "2021", "2022"}, Values: []float64{4.5, 3, 2.5}, Start: 5},
		},
		"narrative trend of percentages by numbered period": {
			prompt: "occupancy went from 70% in week 2 to 85% in week 5",
			want:   series{Labels: []string{"Week 2", "Week 5"}, Values: []float64{70, 85}, Unit: "%", Start: 10},
		},
		"narrative trend in Spanish": {
			prompt: "las altas bajaron de 90 en abril a 75 en mayo",
			want:   series{Labels: []string{"Abril", "Mayo"}, Values: []float64{90, 75}, Start: 10},
		},
		"narrative with the period first": {
			prompt: "on Monday we saw 12, on Tuesday 18 and on Wednesday 9",
			want:   series{Labels: []string{"Monday", "Tuesday", "Wednesday"}, Values: []float64{12, 18, 9}, Start: 0},
		},
		"a from-to range is not a trend": {
			prompt: "ages from 20 to 40",
			want:   series{Start: -1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, extractData(tc.prompt)); diff != "" {
				t.Errorf("extractData(%q) (-want +got):\n%s", tc.prompt, diff)
			}
		})
	}
}

func TestQuotedTitle(t *testing.T) {
	for prompt, want := range map[string]string{
		"Bar chart titled 'Clinic load' of visits: Mon 4": "Clinic load",
		`Bar chart with the title "Hospital stays"`:       "Hospital stays",
		"Pie chart titled VOE triggers, please":           "VOE triggers",
		"Bar chart of visits":                             "",
	} {
		if got, _, _ := quotedTitle(prompt); got != want {
			t.Errorf("quotedTitle(%q) = %q, want %q", prompt, got, want)
		}
	}
}

func TestDetectQuestionsAndLanguages(t *testing.T) {
	tests := map[string]struct {
		prompt string
		viz    bool
		chart  ChartType
	}{
		"question about charts":    {"Should I use a pie chart or a bar chart for five categories? Explain briefly.", false, ChartAuto},
		"which of two is better":   {"Is a dot plot or a bar chart better for three groups?", false, ChartAuto},
		"more suitable than":       {"Are stacked bars more suitable than pies for budgets?", false, ChartAuto},
		"how do they differ":       {"How does a density plot differ from a histogram?", false, ChartAuto},
		"what a kind of chart can": {"Can a line chart have gaps?", false, ChartAuto},
		"is it fine to":            {"Is it fine to use a 3D pie chart?", false, ChartAuto},
		"a table of a chart":       {"Put the numbers of the line graph into a table", false, ChartAuto},
		"a table and a chart":      {"Make a table and a bar chart of A 3, B 4", true, ChartBar},
		"question, then plot":      {"Would bars be better? If yes, plot A 2, B 6", true, ChartBar},
		"best month, then a chart": {"Which quarter was worst? Draw a line chart: Q1 8, Q2 5, Q3 7", true, ChartLine},
		"the medical record":       {"His chart lists a sodium of 128 from yesterday; how fast should we correct it?", false, ChartAuto},
		"charted by a nurse":       {"We charted a heart rate of 130 overnight; is that concerning?", false, ChartAuto},
		"question, then a request": {"Should I use a pie chart? Make a pie chart of A 1, B 2, C 3", true, ChartPie},
		"a story's plot":           {"Summarize the plot of Moby-Dick in two sentences.", false, ChartAuto},
		"trend of given numbers":   {"How did bilirubin change over four visits: 2.1, 2.6, 3.0, 2.4", true, ChartLine},
		"trend without numbers":    {"How did bilirubin change over four visits?", false, ChartAuto},
		"French bars":              {"Fais un graphique en barres des admissions : lundi 4, mardi 7, mercredi 5", true, ChartBar},
		"German compound":          {"Erstelle ein Balkendiagramm der Aufnahmen: Montag 5, Dienstag 8", true, ChartBar},
		"Spanish negation":         {"No hagas un gráfico, solo explícame qué es la anemia falciforme", false, ChartAuto},
		"German negation":          {"Ich brauche kein Diagramm, nur eine kurze Erklärung", false, ChartAuto},
		"Portuguese pie":           {"Faça um gráfico de pizza das causas: frio 30, infecção 50", true, ChartPie},
		"Italian line":             {"Crea un grafico a linee della emoglobina: 8.1, 8.4, 9.0", true, ChartLine},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Detect(tc.prompt)
			if got.Visualization != tc.viz || got.ChartType != tc.chart {
				t.Errorf("Detect(%q) = viz %v chart %s, want %v %s (keywords %q)", tc.prompt, got.Visualization, got.ChartType, tc.viz, tc.chart, got.Keywords)
			}
		})
	}
}
