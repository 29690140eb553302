package detect

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExtractData(t *testing.T) {
	tests := map[string]struct {
		prompt string
		want   series
	}{
		"labelled percentages": {
			prompt: "Hydroxyurea (85%), Voxelotor (70%), Crizanlizumab (75%)",
			want:   series{Labels: []string{"Hydroxyurea", "Voxelotor", "Crizanlizumab"}, Values: []float64{85, 70, 75}, Unit: "%", Start: 0},
		},
		"labelled after a request": {
			prompt: "bar chart of effectiveness: Hydroxyurea (85%), Voxelotor (70%)",
			want:   series{Labels: []string{"Hydroxyurea", "Voxelotor"}, Values: []float64{85, 70}, Unit: "%", Start: 28},
		},
		"bare list": {
			prompt: "3, 2, 4, 1, 2, 3",
			want:   series{Values: []float64{3, 2, 4, 1, 2, 3}, Start: 0},
		},
		"list without spaces": {
			prompt: "plot 3,2,4",
			want:   series{Values: []float64{3, 2, 4}, Start: 5},
		},
		"list ending with and": {
			prompt: "values 1.5, -2 and 3.25",
			want:   series{Values: []float64{1.5, -2, 3.25}, Start: 7},
		},
		"colon pairs": {
			prompt: "Jan: 3, Feb: 2",
			want:   series{Labels: []string{"Jan", "Feb"}, Values: []float64{3, 2}, Start: 0},
		},
		"equals pairs with decimals": {
			prompt: "HbSS = 7.5; HbSC = 10.25",
			want:   series{Labels: []string{"HbSS", "HbSC"}, Values: []float64{7.5, 10.25}, Start: 0},
		},
		"space percent pairs": {
			prompt: "Voxelotor 70%, Hydroxyurea 85%",
			want:   series{Labels: []string{"Voxelotor", "Hydroxyurea"}, Values: []float64{70, 85}, Unit: "%", Start: 0},
		},
		"space pairs without percent": {
			prompt: "admissions by site: North 120, South 95 and West 80",
			want:   series{Labels: []string{"North", "South", "West"}, Values: []float64{120, 95, 80}, Start: 20},
		},
		"one pair per line": {
			prompt: "Plot this:\nJan 3\nFeb 2\r\nMar 5",
			want:   series{Labels: []string{"Jan", "Feb", "Mar"}, Values: []float64{3, 2, 5}, Start: 11},
		},
		"request before the first label is dropped": {
			prompt: "Plot Jan: 3, Feb: 2",
			want:   series{Labels: []string{"Jan", "Feb"}, Values: []float64{3, 2}, Start: 5},
		},
		"a list beats words between its numbers": {
			prompt: "values 1.5, -2 and 3.25, 4",
			want:   series{Values: []float64{1.5, -2, 3.25, 4}, Start: 7},
		},
		"decimal commas": {
			prompt: "Hämoglobin: Montag 12,5, Dienstag 11,8; Mittwoch 0,125",
			want:   series{Labels: []string{"Montag", "Dienstag", "Mittwoch"}, Values: []float64{12.5, 11.8, 0.125}, Start: 13},
		},
		"thousands separators and currency": {
			prompt: "North: $1,200, South: $950",
			want:   series{Labels: []string{"North", "South"}, Values: []float64{1200, 950}, Start: 0},
		},
		"multi-word labels": {
			prompt: "HbS beta thalassemia (10), sickle cell trait (40)",
			want:   series{Labels: []string{"HbS beta thalassemia", "sickle cell trait"}, Values: []float64{10, 40}, Start: 0},
		},
		"joining word dropped": {
			prompt: "A (1), B (2) and C (3)",
			want:   series{Labels: []string{"A", "B", "C"}, Values: []float64{1, 2, 3}, Start: 0},
		},
		"request swallowed by first label keeps its last word": {
			prompt: "Plot VOE episodes per month Jan: 3, Feb: 2",
			want:   series{Labels: []string{"Jan", "Feb"}, Values: []float64{3, 2}, Start: 28},
		},
		"mixed percent is no unit": {
			prompt: "A (10%), B (20)",
			want:   series{Labels: []string{"A", "B"}, Values: []float64{10, 20}, Start: 0},
		},
		// Bad or absent data: nothing is better than a wrong guess.
		"single pair is not data": {
			prompt: "dosage (20 mg/kg)",
			want:   series{Start: -1},
		},
		"two bare numbers are not a list": {
			prompt: "compare 2 drugs over 12 months",
			want:   series{Start: -1},
		},
		"no numbers": {
			prompt: "plot the effectiveness of treatments",
			want:   series{Start: -1},
		},
		"number too large for float": {
			prompt: "A: 1" + string(make([]byte, 0)) + "e, B: 9" + repeat("9", 400) + ", C: 3",
			want:   series{Labels: []string{"A", "C"}, Values: []float64{1, 3}, Start: 0},
		},
		"empty": {
			prompt: "",
			want:   series{Start: -1},
		},
		"years as labels": {
			prompt: "2019: 3, 2020: 4, 2021: 5",
			want:   series{Labels: []string{"2019", "2020", "2021"}, Values: []float64{3, 4, 5}, Start: 0},
		},
		"labels that are a number and a unit": {
			prompt: "nausea at 25 mg 4%, 50 mg 9% and 75 mg 17%",
			want:   series{Labels: []string{"25 mg", "50 mg", "75 mg"}, Values: []float64{4, 9, 17}, Unit: "%", Start: 10},
		},
		"unit labels with a colon, not the unit as a label": {
			prompt: "levels by volume: 2 L: 5.5, 4 L: 7.25",
			want:   series{Labels: []string{"2 L", "4 L"}, Values: []float64{5.5, 7.25}, Start: 18},
		},
		"unit labels with a shared word": {
			prompt: "arm 1 g 30, arm 2 g 45",
			want:   series{Labels: []string{"arm 1 g", "arm 2 g"}, Values: []float64{30, 45}, Start: 0},
		},
		"ranges with units": {
			prompt: "by age 0-17 yrs 12%, 18-64 yrs 60%, 65-99 yrs 28%",
			want:   series{Labels: []string{"0-17 yrs", "18-64 yrs", "65-99 yrs"}, Values: []float64{12, 60, 28}, Unit: "%", Start: 7},
		},
		"other numbers are not labels": {
			prompt: "12: 3, 15: 4",
			want:   series{Start: -1},
		},
		"bounded to maxPoints": {
			prompt: repeat("1, ", 200) + "1",
			want:   series{Values: ones(maxPoints), Start: 0},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, extractData(tc.prompt)); diff != "" {
				t.Errorf("extractData(%q) mismatch (-want +got):\n%s", tc.prompt, diff)
			}
		})
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func ones(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

func TestDecimalCommas(t *testing.T) {
	tests := map[string]string{
		"12,5; 11,8":          "12.5; 11.8",
		"4,5, 3,2 and 7":      "4.5, 3.2 and 7",
		"1,200 patients":      "1,200 patients",
		"0,125 mg":            "0.125 mg",
		"3,2,4":               "3,2,4",
		"points (1,5), (2,7)": "points (1,5), (2,7)",
		"1,234,567":           "1,234,567",
		"version 1.2,5":       "version 1.2,5",
		"3, 2, 4":             "3, 2, 4",
		"lundi 4,5, mardi 7":  "lundi 4.5, mardi 7",
		"a1,5":                "a1.5",
		"":                    "",
		"12,50 €, 3,75 €":     "12.50 €, 3.75 €",
		"1,5.2":               "1,5.2",
		"x,5":                 "x,5",
	}
	for in, want := range tests {
		if got := decimalCommas(in); got != want {
			t.Errorf("decimalCommas(%q) = %q, want %q", in, got, want)
		}
		if len(decimalCommas(in)) != len(in) {
			t.Errorf("decimalCommas(%q) changed the length", in)
		}
	}
}

func TestUnitPair(t *testing.T) {
	for lab, want := range map[string]bool{
		"10 mg": true, "0.5 mg/kg": true, "18-30 years": true, "5 min": true, "250 ml": true,
		"40 to": false, "40 in": false, "3 and": false, "12 x": false, "2nd": false,
	} {
		if got := unitPair(lab); got != want {
			t.Errorf("unitPair(%q) = %v, want %v", lab, got, want)
		}
	}
}
