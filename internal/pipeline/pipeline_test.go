package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/local"
)

var (
	poolOnce sync.Once
	testPool *local.Pool
	poolErr  error
)

func sharedPool(t *testing.T) *local.Pool {
	t.Helper()
	poolOnce.Do(func() {
		testPool, poolErr = local.NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2}, local.Options{})
	})
	if poolErr != nil {
		t.Fatalf("the Local sandbox cannot start: %v", poolErr)
	}
	return testPool
}

func execIn(p *local.Pool, formats ...sandbox.Format) codegen.Exec {
	return func(ctx context.Context, code string) (*sandbox.Result, error) {
		return sandbox.Run(ctx, p, "pipeline-test", sandbox.Request{Code: code, Timeout: 60 * time.Second, Formats: formats})
	}
}

// scriptedModel answers with the given programs in turn (a stand-in for a provider:
// it covers the answer text only, not HTTP, tokens or errors).
type scriptedModel struct {
	answers []string
	asked   []models.Request
}

func (m *scriptedModel) Complete(_ context.Context, req models.Request) (string, error) {
	m.asked = append(m.asked, req)
	if len(m.answers) == 0 {
		return "", &models.ResponseError{Provider: "test", Message: "no more answers"}
	}
	a := m.answers[0]
	m.answers = m.answers[1:]
	return a, nil
}

func (m *scriptedModel) Name() string { return "test/scripted" }

const ldhPrompt = "Line chart of LDH at days 1, 3, 5, 7: 520, 480, 430, 390"

// The days plotted as values: what issue 13 saw.
const wrongLDH = "```python\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3, 4], [1, 3, 5, 7])\nplt.title('LDH')\nplt.show()\n```"
const rightLDH = "```python\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 5, 7], [520, 480, 430, 390])\nplt.title('LDH')\nplt.show()\n```"

func TestModelChartMismatchIsRepaired(t *testing.T) {
	p := sharedPool(t)
	tests := map[string]struct {
		answers    []string
		maxRepairs int
		wantPath   codegen.Path
		wantSource codegen.Source
		// wantErr is the reason of the UnfaithfulError Run must return.
		wantErr string
	}{
		"repaired from the difference": {answers: []string{wrongLDH, rightLDH}, maxRepairs: 2, wantPath: codegen.PathRepaired, wantSource: codegen.SourceModel},
		// One repair round with the verifier's message, then a clear failure: no
		// template fallback that could be as wrong.
		"still wrong after one repair: fails": {answers: []string{wrongLDH, wrongLDH}, maxRepairs: 2, wantPath: codegen.PathModel, wantSource: codegen.SourceModel, wantErr: codegen.ReasonDataNotAccounted},
		"wrong, repairs off: fails":           {answers: []string{wrongLDH}, maxRepairs: 0, wantPath: codegen.PathModel, wantSource: codegen.SourceModel, wantErr: codegen.ReasonDataNotAccounted},
		"right at once":                       {answers: []string{rightLDH}, maxRepairs: 2, wantPath: codegen.PathModel, wantSource: codegen.SourceModel},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := &scriptedModel{answers: append([]string{`{"visualization": true, "tool": "CodeInterpreter", "chartType": "line"}`}, tc.answers...)}
			gen := &codegen.Generator{Client: m, MaxRepairs: tc.maxRepairs}
			res, err := Run(context.Background(), gen, Request{Input: codegen.Input{Prompt: ldhPrompt, Packages: codegen.DefaultPackages}}, execIn(p))
			if tc.wantErr != "" {
				var ue *codegen.UnfaithfulError
				if !errors.As(err, &ue) || ue.Reason() != tc.wantErr || !strings.Contains(ue.Error(), "520") {
					t.Fatalf("err %v, want an UnfaithfulError %s naming the missing values", err, tc.wantErr)
				}
				if res.Outcome.Code.Source != codegen.SourceModel || len(m.answers) != 0 {
					t.Fatalf("source %s, %d answers left: the model's answers must be used, and no template", res.Outcome.Code.Source, len(m.answers))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome.Path != tc.wantPath || res.Outcome.Code.Source != tc.wantSource {
				t.Fatalf("path %s source %s, want %s %s (fallback: %s)", res.Outcome.Path, res.Outcome.Code.Source, tc.wantPath, tc.wantSource, res.Outcome.FallbackReason)
			}
			if !res.Verdict.Verified {
				t.Errorf("final chart not verified: %+v", res.Verdict)
			}
			if res.DataSource != codegen.DataPrompt {
				t.Errorf("dataSource %s, want Prompt", res.DataSource)
			}
			if tc.answers[0] == wrongLDH {
				repair := m.asked[2].User
				if !strings.Contains(repair, "ChartMismatch") || !strings.Contains(repair, "520, 480, 430, 390") {
					t.Errorf("the repair request does not give the difference:\n%s", repair)
				}
			}
		})
	}
}

// TestTemplatesVerify runs every template (matplotlib and plotly) with data from a
// prompt and with none, reads the chart back, and requires that it verifies; without
// data the chart says "illustrative data" on its face and dataSource says so.
func TestTemplatesVerify(t *testing.T) {
	p := sharedPool(t)
	for _, name := range codegen.TemplateNames() {
		chart := detect.ChartType(strings.TrimPrefix(name, "plotly_"))
		var formats []string
		var sformats []sandbox.Format
		if strings.HasPrefix(name, "plotly_") {
			formats, sformats = []string{"html"}, []sandbox.Format{sandbox.FormatHTML}
		}
		for _, data := range []string{"prompt data", "two series", "illustrative"} {
			withData := data != "illustrative"
			t.Run(name+"/"+data, func(t *testing.T) {
				d := detect.Result{Visualization: true, Tool: detect.ToolCodeInterpreter, ChartType: chart, Source: detect.SourceKeywords}
				switch data {
				case "prompt data":
					d.Labels = []string{"A", "B", "C", "D"}
					d.Values = []float64{4, 7, 5, 9}
					if chart == detect.ChartBox || chart == detect.ChartHistogram {
						d.Labels = nil
					}
				case "two series":
					// Every series must be plotted, whatever the chart: grouped or
					// stacked bars, a line, area or pie per series, a heatmap row each.
					d.Labels = []string{"Q1", "Q2", "Q3"}
					d.Series = []detect.Series{{Name: "2022", Values: []float64{4, 6, 5}}, {Name: "2023", Values: []float64{3, 8, 2}}}
					d.Values = d.Series[0].Values
				}
				in := codegen.Input{Detection: d, Formats: formats}
				res, err := Run(context.Background(), nil, Request{Input: in}, execIn(p, sformats...))
				if err != nil {
					t.Fatal(err)
				}
				if res.Outcome.Code.Template != name {
					t.Fatalf("ran template %s, want %s", res.Outcome.Code.Template, name)
				}
				if len(res.Charts) == 0 {
					t.Fatalf("no chart data read back")
				}
				if !res.Verdict.Verified {
					t.Errorf("Verified=%s: %s", res.Verdict.Reason, res.Verdict.Message)
				}
				wantSource := map[bool]codegen.DataSource{true: codegen.DataPrompt, false: codegen.DataIllustrative}[withData]
				if res.DataSource != wantSource {
					t.Errorf("dataSource %s, want %s", res.DataSource, wantSource)
				}
				if !withData && !strings.Contains(res.Charts[0].Title, "illustrative data") {
					t.Errorf("title %q does not say the data is illustrative", res.Charts[0].Title)
				}
				if alt := chartdata.AltText(res.Charts); alt == "" {
					t.Error("no alt text")
				}
			})
		}
	}
}

func TestNotAVisualization(t *testing.T) {
	called := false
	exec := func(context.Context, string) (*sandbox.Result, error) { called = true; return nil, nil }
	res, err := Run(context.Background(), nil, Request{Input: codegen.Input{Prompt: "Summarize the plot of Moby-Dick in two sentences."}}, exec)
	if err != nil || res.Detection.Visualization || called || res.Verdict.Reason != "" {
		t.Fatalf("err %v viz %v exec called %v verdict %+v", err, res.Detection.Visualization, called, res.Verdict)
	}
}

func TestAnnotateFiles(t *testing.T) {
	charts := []chartdata.Chart{{Type: chartdata.TypeBar, Figure: "figure_1", Title: "A <b>", Series: []chartdata.Series{{Type: chartdata.TypeBar, Labels: []string{"x"}, Y: []float64{1}}}}}
	files := []sandbox.Artifact{
		{Name: "figure_1.svg", Data: []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><g/></svg>`)},
		{Name: "plotly_1.html", Data: []byte(`<div id="x" class="plotly-graph-div"></div>`)},
		{Name: "figure_1.png", Data: []byte("png")},
	}
	AnnotateFiles(files, append(charts, chartdata.Chart{Type: chartdata.TypeBar, Figure: "plotly_1", Title: "P"}))
	if got := string(files[0].Data); !strings.Contains(got, "<title>A &lt;b&gt;</title>") || !strings.Contains(got, "<desc>Bar chart &#39;A &lt;b&gt;&#39;: x 1.</desc>") {
		t.Errorf("svg: %s", got)
	}
	if got := string(files[1].Data); !strings.Contains(got, `role="img" aria-label="Bar chart &#39;P&#39;."`) {
		t.Errorf("html: %s", got)
	}
	if string(files[2].Data) != "png" {
		t.Error("a PNG was changed")
	}
}

// TestFallbackRefusesUnreadableData: a model that fails falls back to a template only
// when the template can draw the request's data; otherwise the request fails with
// DataNotUnderstood, and nothing runs.
func TestFallbackRefusesUnreadableData(t *testing.T) {
	const prompt = "Line chart of LDH, which fell from 520 to 480, then 430 and finally 390"
	m := &scriptedModel{answers: []string{`{"visualization": true, "tool": "CodeInterpreter", "chartType": "line"}`, "I cannot write code for that."}}
	ran := false
	exec := func(context.Context, string) (*sandbox.Result, error) { ran = true; return nil, nil }
	res, err := Run(context.Background(), &codegen.Generator{Client: m, MaxRepairs: 1}, Request{Input: codegen.Input{Prompt: prompt, Packages: codegen.DefaultPackages}}, exec)
	var ue *codegen.UnfaithfulError
	if !errors.As(err, &ue) || ue.Reason() != codegen.ReasonDataNotUnderstood || !strings.Contains(ue.Error(), "the request gives 520,") {
		t.Fatalf("err %v, want DataNotUnderstood naming 520", err)
	}
	if ran || res.Outcome.Path != codegen.PathTemplateFallback {
		t.Fatalf("ran %v, path %s: no template may run", ran, res.Outcome.Path)
	}
}
