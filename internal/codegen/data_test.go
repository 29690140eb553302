package codegen

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarizeCSV(t *testing.T) {
	tests := map[string]struct {
		csv     string
		maxRows int
		want    Summary
	}{
		"types, nulls and ranges": {
			csv: "date,genotype,hbf,note\n" +
				"2024-01-01,HbSS,8.5,first visit\n" +
				"2024-02-01,HbSC,NA,follow-up after crisis\n" +
				"2024-03-01,HbSS,12,\n" +
				"2024-04-01,HbSS,-1.5e1,stable on hydroxyurea\n",
			want: Summary{Rows: 4, Inspected: 4, Columns: []Column{
				{Name: "date", Type: ColumnDate, Unique: 4, Samples: []string{"2024-01-01", "2024-02-01", "2024-03-01"}, First: "2024-01-01", Last: "2024-04-01"},
				{Name: "genotype", Type: ColumnCategory, Unique: 2, Samples: []string{"HbSS", "HbSC"}},
				{Name: "hbf", Type: ColumnNumber, Nulls: 1, Unique: 3, Samples: []string{"8.5", "12", "-1.5e1"}, Min: -15, Max: 12, Mean: (8.5 + 12 - 15) / 3},
				{Name: "note", Type: ColumnCategory, Nulls: 1, Unique: 3, Samples: []string{"first visit", "follow-up after crisis", "stable on hydroxyurea"}},
			}},
		},
		"pandas names: empty and repeated headers": {
			csv: ",a,a,a.1\n1,2,3,4\n",
			want: Summary{Rows: 1, Inspected: 1, Columns: []Column{
				{Name: "Unnamed: 0", Type: ColumnNumber, Unique: 1, Samples: []string{"1"}, Min: 1, Max: 1, Mean: 1},
				{Name: "a", Type: ColumnNumber, Unique: 1, Samples: []string{"2"}, Min: 2, Max: 2, Mean: 2},
				{Name: "a.1", Type: ColumnNumber, Unique: 1, Samples: []string{"3"}, Min: 3, Max: 3, Mean: 3},
				{Name: "a.1.1", Type: ColumnNumber, Unique: 1, Samples: []string{"4"}, Min: 4, Max: 4, Mean: 4},
			}},
		},
		"byte order mark and quoted commas": {
			csv: "\ufeffname,v\n\"Smith, J\",1\n",
			want: Summary{Rows: 1, Inspected: 1, Columns: []Column{
				{Name: "name", Type: ColumnCategory, Unique: 1, Samples: []string{"Smith, J"}},
				{Name: "v", Type: ColumnNumber, Unique: 1, Samples: []string{"1"}, Min: 1, Max: 1, Mean: 1},
			}},
		},
		"all null column is text": {
			csv: "a,b\n1,\n2,NaN\n",
			want: Summary{Rows: 2, Inspected: 2, Columns: []Column{
				{Name: "a", Type: ColumnNumber, Unique: 2, Samples: []string{"1", "2"}, Min: 1, Max: 2, Mean: 1.5},
				{Name: "b", Type: ColumnText, Nulls: 2},
			}},
		},
		"maxRows bounds the statistics, not the count": {
			csv:     "v\n1\n2\n3\n4\n",
			maxRows: 2,
			want: Summary{Rows: 4, Inspected: 2, Columns: []Column{
				{Name: "v", Type: ColumnNumber, Unique: 2, Samples: []string{"1", "2"}, Min: 1, Max: 2, Mean: 1.5},
			}},
		},
		"thousands separators are text, as in pandas": {
			csv: "v\n\"1,200\"\n\"3,400\"\n",
			want: Summary{Rows: 2, Inspected: 2, Columns: []Column{
				{Name: "v", Type: ColumnCategory, Unique: 2, Samples: []string{"1,200", "3,400"}},
			}},
		},
		"long samples are cut on a rune boundary": {
			csv: "v\n" + strings.Repeat("é", 100) + "\n",
			want: Summary{Rows: 1, Inspected: 1, Columns: []Column{
				{Name: "v", Type: ColumnCategory, Unique: 1, Samples: []string{strings.Repeat("é", 18) + "…"}},
			}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := SummarizeCSV([]byte(tc.csv), tc.maxRows)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SummarizeCSV mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSummarizeCSVErrors(t *testing.T) {
	tests := map[string]struct {
		csv  string
		want string
	}{
		"empty":                   {"", "the data is empty"},
		"whitespace":              {" \n\t\n", "the data is empty"},
		"header only":             {"a,b\n", "no data rows"},
		"too many fields":         {"a,b\n1,2\n3,4,5\n", "line 3 has a different number of fields"},
		"too few fields":          {"a,b\n1,2\n3,4\n5\n", "line 4 has a different number of fields"},
		"bare quote":              {"a,b\n1,x\"y\n", "line 2, column 4"},
		"unterminated quote":      {"a,b\n1,\"open\n2,3\n", "line 2"},
		"not utf-8":               {"a,b\n1,2\n3,\xff\n", "not UTF-8 text (line 3)"},
		"too wide":                {strings.Repeat("c,", MaxColumns) + "c\n" + strings.Repeat("1,", MaxColumns) + "1\n", "201 columns; at most 200"},
		"malformed after maxRows": {"a\n1\n2\n3\n\"x\n", "line 5"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := SummarizeCSV([]byte(tc.csv), 2)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SummarizeCSV error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSummaryPrompt(t *testing.T) {
	s, err := SummarizeCSV([]byte("month,genotype,voe\n2024-01,HbSS,3\n2024-02,HbSC,\n2024-03,HbSS,4\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "The data is data.csv, preloaded as the pandas DataFrame `df`: 3 rows, 3 columns.\n" +
		"Columns:\n" +
		`- "month": date, from "2024-01" to "2024-03", samples "2024-01", "2024-02", "2024-03"` + "\n" +
		`- "genotype": category, 2 distinct, samples "HbSS", "HbSC"` + "\n" +
		`- "voe": number, min 3, max 4, mean 3.5, 1 nulls, samples "3", "4"` + "\n"
	if diff := cmp.Diff(want, s.Prompt()); diff != "" {
		t.Errorf("Prompt mismatch (-want +got):\n%s", diff)
	}
}

// TestSummaryPromptBounded: a wide CSV with long names still gives a short prompt.
func TestSummaryPromptBounded(t *testing.T) {
	var header, row []string
	for i := range MaxColumns {
		header = append(header, strings.Repeat("n", 500)+string(rune('a'+i%26))+strings.Repeat("x", i))
		row = append(row, strings.Repeat("v", 1000))
	}
	s, err := SummarizeCSV([]byte(strings.Join(header, ",")+"\n"+strings.Join(row, ",")+"\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Prompt()
	if len(p) > 16<<10 {
		t.Errorf("prompt is %d bytes, want ≤ 16 KiB", len(p))
	}
	if !strings.Contains(p, "and 150 more columns") {
		t.Errorf("prompt does not say columns were left out:\n%s", p[len(p)-200:])
	}
}
