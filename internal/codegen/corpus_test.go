package codegen

import (
	"os"
	"testing"

	"github.com/vizops/viz-operator/internal/detect"
	"sigs.k8s.io/yaml"
)

// TestCorpusCharts runs the template of every visualization prompt of detect's corpus
// (detect.TestCorpus checks the detection itself) and checks, from the matplotlib
// artists, that the figure is the chart the corpus expects: the labelled chart type,
// or for "auto" the one ResolveChart picks from the prompt's data.
func TestCorpusCharts(t *testing.T) {
	raw, err := os.ReadFile("../detect/testdata/corpus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Prompt        string           `json:"prompt"`
		Visualization bool             `json:"visualization"`
		Tool          detect.Tool      `json:"tool"`
		ChartType     detect.ChartType `json:"chartType"`
		Numbers       []float64        `json:"numbers"`
		Labels        []string         `json:"labels"`
		Title         string           `json:"title"`
		Count         int              `json:"count"`
	}
	if err := yaml.UnmarshalStrict(raw, &cases); err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, c := range cases {
		if !c.Visualization {
			continue
		}
		ran++
		t.Run(c.Prompt, func(t *testing.T) {
			t.Parallel()
			in := Input{Prompt: c.Prompt, Detection: detect.Detect(c.Prompt)}
			want := c.ChartType
			if want == detect.ChartAuto {
				want = ResolveChart(in)
			}
			code, err := FromTemplate(in)
			if err != nil {
				t.Fatal(err)
			}
			res := runPython(t, code.Code, nil)
			if len(res.Figures) != 1 {
				t.Fatalf("%d figures, want 1", len(res.Figures))
			}
			got := chartOf(res.Figures[0])
			// A single series stacks into one layer, which is an area.
			if want == detect.ChartStackedArea && got == detect.ChartArea && len(in.Detection.Values) > 0 {
				got = want
			}
			if got != want {
				t.Errorf("template %s drew a %q chart, want %q: %+v", code.Template, got, want, res.Figures[0])
			}
			if in.Detection.Title != "" && res.Figures[0][0].Title == "" {
				t.Errorf("the figure has no title; detection gave %q", in.Detection.Title)
			}
		})
	}
	if ran < 20 {
		t.Errorf("only %d visualization prompts in the corpus; keep at least 20", ran)
	}
}
