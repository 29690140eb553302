package detect

import (
	"os"
	"testing"

	"sigs.k8s.io/yaml"
)

// CorpusCase is one labelled prompt of testdata/corpus.yaml.
type CorpusCase struct {
	Prompt        string    `json:"prompt"`
	Visualization bool      `json:"visualization"`
	Tool          Tool      `json:"tool"`
	ChartType     ChartType `json:"chartType"`
	// Numbers, Labels and Title are what the chart must show (pipeline's fidelity
	// test); Count is how many values a histogram must count.
	Numbers []float64 `json:"numbers,omitempty"`
	Labels  []string  `json:"labels,omitempty"`
	Title   string    `json:"title,omitempty"`
	Count   int       `json:"count,omitempty"`
}

// loadCorpus reads the corpus (codegen reads the same file to run its templates).
func loadCorpus(t *testing.T, path string) []CorpusCase {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []CorpusCase
	if err := yaml.UnmarshalStrict(raw, &cases); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cases
}

// minAccuracy is the share of corpus prompts Detect must get entirely right
// (visualization, tool and, for charts, the chart type).
const minAccuracy = 0.95

func TestCorpus(t *testing.T) {
	cases := loadCorpus(t, "testdata/corpus.yaml")
	if len(cases) < 120 {
		t.Fatalf("corpus has %d prompts; keep at least 120", len(cases))
	}
	right := 0
	for _, c := range cases {
		if c.Tool == "" {
			t.Fatalf("corpus case %q has no tool", c.Prompt)
		}
		got := Detect(c.Prompt)
		want := c.ChartType
		if !c.Visualization {
			want = ChartAuto
		}
		if got.Visualization == c.Visualization && got.Tool == c.Tool && got.ChartType == want {
			right++
			continue
		}
		t.Logf("miss: %q: got viz=%v tool=%s chart=%s (keywords %q), want viz=%v tool=%s chart=%s",
			c.Prompt, got.Visualization, got.Tool, got.ChartType, got.Keywords, c.Visualization, c.Tool, want)
	}
	acc := float64(right) / float64(len(cases))
	t.Logf("corpus accuracy: %d/%d = %.1f%%", right, len(cases), 100*acc)
	if acc < minAccuracy {
		t.Errorf("corpus accuracy %.1f%% is below %.0f%%", 100*acc, 100*minAccuracy)
	}
}
