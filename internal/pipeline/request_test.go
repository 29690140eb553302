package pipeline

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// fakeExec records the code it is given and answers with res (a stand-in for a
// sandbox: it runs nothing).
type fakeExec struct {
	ran []string
	res sandbox.Result
}

func (f *fakeExec) exec(_ context.Context, code string) (*sandbox.Result, error) {
	f.ran = append(f.ran, code)
	r := f.res
	return &r, nil
}

var visits = chartdata.Chart{Type: chartdata.TypeBar, Figure: "figure_1", Title: "Visits",
	Series: []chartdata.Series{{Type: chartdata.TypeBar, Labels: []string{"A", "B", "C"}, Y: []float64{1, 2, 3}}}}

const visitsPrompt = "Bar chart of visits: A 1, B 2, C 3"

// TestRunTakesTheDecidedDetection: Run works from the detection it is given and never
// detects again (the caller ran it once): a decided "not a chart" runs nothing, and a
// decided pie chart is drawn as a pie although the prompt's words say bar.
func TestRunTakesTheDecidedDetection(t *testing.T) {
	ctx := context.Background()
	keywords := detect.Detect(visitsPrompt)
	if !keywords.Visualization || keywords.ChartType != detect.ChartBar {
		t.Fatalf("keyword detection of %q: %+v, want a bar chart", visitsPrompt, keywords)
	}

	notAChart := detect.Result{Tool: detect.ToolWebSearch, ChartType: detect.ChartAuto, Source: detect.SourceKeywords}
	f := &fakeExec{}
	res, err := Run(ctx, nil, Request{Input: codegen.Input{Prompt: visitsPrompt, Detection: notAChart}}, f.exec)
	if err != nil || len(f.ran) != 0 || !cmp.Equal(res.Detection, notAChart) {
		t.Errorf("decided not a chart: err %v, ran %d programs, detection %+v", err, len(f.ran), res.Detection)
	}

	pie := keywords
	pie.ChartType = detect.ChartPie
	f = &fakeExec{res: sandbox.Result{Success: true, Files: []sandbox.Artifact{{Name: "figure_1.png", Data: []byte("png")}}}}
	res, err = Run(ctx, nil, Request{Input: codegen.Input{Prompt: visitsPrompt, Detection: pie}}, f.exec)
	if err != nil || res.Outcome.Code.Template != "pie" || res.Detection.ChartType != detect.ChartPie {
		t.Errorf("decided pie: err %v, template %q, detection %s", err, res.Outcome.Code.Template, res.Detection.ChartType)
	}
}

// TestRunUserCode: spec.code runs as it is, once; its charts are verified against the
// prompt when the run succeeds, and nothing is verified when it fails.
func TestRunUserCode(t *testing.T) {
	const code = "import matplotlib.pyplot as plt\nplt.bar(['A', 'B', 'C'], [1, 2, 3])\nplt.show()\n"
	tests := map[string]struct {
		prompt  string
		res     sandbox.Result
		verdict chartdata.Reason
	}{
		"verified against the prompt": {prompt: visitsPrompt, res: sandbox.Result{Success: true, Charts: []chartdata.Chart{visits}}, verdict: chartdata.ReasonChartVerified},
		"differs from the prompt": {prompt: "Bar chart of visits: A 1, B 2, C 4",
			res: sandbox.Result{Success: true, Charts: []chartdata.Chart{visits}}, verdict: chartdata.ReasonDataMismatch},
		"the code failed: no verdict": {prompt: visitsPrompt, res: sandbox.Result{Error: &sandbox.ExecError{Name: "NameError"}, Charts: []chartdata.Chart{visits}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := &fakeExec{res: tc.res}
			in := codegen.Input{Prompt: tc.prompt, Detection: detect.Detect(tc.prompt)}
			res, err := Run(context.Background(), nil, Request{Input: in, Code: code}, f.exec)
			if err != nil {
				t.Fatal(err)
			}
			if !cmp.Equal(f.ran, []string{code}) {
				t.Errorf("ran %q, want the user's code once", f.ran)
			}
			if res.Outcome.Path != codegen.PathUser || res.Outcome.Code.Source != codegen.SourceUser || res.Outcome.Result == nil {
				t.Errorf("outcome %+v, want the user's code", res.Outcome)
			}
			if res.Verdict.Reason != tc.verdict {
				t.Errorf("verdict %+v, want reason %q", res.Verdict, tc.verdict)
			}
		})
	}
}
