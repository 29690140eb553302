package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/requeststatus"
	"github.com/vizops/viz-operator/internal/requeststatus/statustest"
)

// TestRenderResultIsTheStatus: render prints, for each result of the shared table, the
// code generation, Verified condition and failure the controller writes into the
// request's status (internal/controller's TestPipelineResultStatus runs the same
// table).
func TestRenderResultIsTheStatus(t *testing.T) {
	for name, tc := range statustest.Cases() {
		t.Run(name, func(t *testing.T) {
			out, code := renderResult(tc.Result, tc.Err)
			w := tc.Want
			want := renderOutput{Detection: out.Detection}
			if w.Detection != nil {
				d := w.Detection
				want.Detection = renderDetection{Visualization: d.Visualization, ChartType: d.ChartType, Tool: d.Tool, Keywords: d.Keywords, Source: d.Source}
				if want.Detection.Keywords == nil {
					want.Detection.Keywords = []string{}
				}
			}
			if cg := w.CodeGeneration; cg != nil {
				want.CodeGeneration = &renderCodegen{DataSource: string(cg.DataSource), Source: string(cg.Source), Path: cg.Path, Template: cg.Template,
					Model: cg.Model, Attempts: int(cg.Attempts), Repairs: tc.Result.Outcome.Repairs, FallbackReason: cg.FallbackReason, Code: cg.Code}
			}
			if v := w.Verified; v != nil {
				want.Verified = &renderVerified{Status: string(v.Status), Reason: v.Reason, Message: v.Message}
			}
			wantCode := 0
			switch {
			case w.Terminal:
				want.Error, wantCode = w.CodeGenerated.Reason+": "+w.CodeGenerated.Message, 2
			case tc.Err != nil:
				want.Error, wantCode = tc.Err.Error(), 1
			}
			if d := cmp.Diff(want, out); d != "" {
				t.Errorf("render output (-want +got):\n%s", d)
			}
			if code != wantCode {
				t.Errorf("exit code %d, want %d", code, wantCode)
			}
			if w.CodeGenerated != nil && !w.Terminal && w.CodeGenerated.Status != metav1.ConditionTrue {
				t.Errorf("the table's CodeGenerated is %s without a terminal failure", w.CodeGenerated.Status)
			}
		})
	}
	// The detection printed is status.detection's form of the pipeline's.
	out, _ := renderResult(statustest.Cases()["template, verified"].Result, nil)
	want := requeststatus.Detection(statustest.Cases()["template, verified"].Result.Detection)
	if out.Detection.ChartType != want.ChartType || out.Detection.Source != want.Source || !cmp.Equal(out.Detection.Keywords, want.Keywords) {
		t.Errorf("detection %+v, want %+v", out.Detection, want)
	}
}

// TestRenderDetectsOnce: render --local runs the keyword detection once, and the
// pipeline draws from that detection as decided: the counting detector below says
// "pie" for a bar chart prompt, and the pie template draws it.
func TestRenderDetectsOnce(t *testing.T) {
	calls := map[string]int{}
	keywords := detectPrompt
	detectPrompt = func(p string) detect.Result {
		calls[p]++
		d := keywords(p)
		if d.Visualization {
			d.ChartType = detect.ChartPie
		}
		return d
	}
	defer func() { detectPrompt = keywords }()
	const prompt = "Create a bar chart of visits: Monday 3, Tuesday 5, Wednesday 4"
	stdout, stderr, exit := runCLI(t, "render", "--local", "--prompt", prompt, "--json", "-o", filepath.Join(t.TempDir(), "out"))
	if exit != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", exit, stdout, stderr)
	}
	var got renderOutput
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if calls[prompt] != 1 || len(calls) != 1 {
		t.Errorf("detection ran %v, want once for the prompt", calls)
	}
	if got.Detection.ChartType != "pie" || got.CodeGeneration == nil || got.CodeGeneration.Template != "pie" {
		t.Errorf("detection %+v, code generation %+v: want the decided pie chart drawn", got.Detection, got.CodeGeneration)
	}

	const notAChart = "What do recent clinical trials say about voxelotor efficacy?"
	stdout, stderr, exit = runCLI(t, "render", "--local", "--prompt", notAChart)
	if exit != 0 || calls[notAChart] != 1 {
		t.Errorf("not a chart: exit %d, detection ran %d times, want once\nstdout: %s\nstderr: %s", exit, calls[notAChart], stdout, stderr)
	}
}
