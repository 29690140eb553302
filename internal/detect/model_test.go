package detect

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/models/modelstest"
)

// fakeModel answers every Complete with a fixed text or error.
type fakeModel struct {
	answer string
	err    error
	got    []models.Request
}

func (f *fakeModel) Complete(_ context.Context, r models.Request) (string, error) {
	f.got = append(f.got, r)
	return f.answer, f.err
}
func (f *fakeModel) Name() string { return "fake/model" }

func TestRefine(t *testing.T) {
	vizKW := Result{Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartAuto, Keywords: []string{"chart"},
		Source: SourceKeywords, Title: "Treatment effectiveness", Labels: []string{"A", "B"}, Values: []float64{1, 2}}
	noKW := Result{Tool: ToolNone, ChartType: ChartAuto, Source: SourceKeywords}
	unavailable := &models.UnavailableError{Provider: "p", Message: "rate limited"}
	tests := map[string]struct {
		prompt  string
		kw      Result
		answer  string
		err     error
		want    Result
		wantErr string
	}{
		"plain JSON sets the chart type": {
			kw: vizKW, answer: `{"visualization": true, "tool": "CodeInterpreter", "chartType": "bar", "title": "X"}`,
			want: Result{Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartBar, Keywords: []string{"chart"}, Source: SourceModel,
				Title: "Treatment effectiveness", Labels: []string{"A", "B"}, Values: []float64{1, 2}},
		},
		"fenced JSON with prose, wrong case and synonyms": {
			kw:     vizKW,
			answer: "Sure, here is my decision:\n```json\n{\"Visualization\": \"TRUE\", \"Tool\": \"e2b_code_interpreter\", \"Chart_Type\": \"Horizontal Bar Chart\"}\n```\nHope that helps {not json}.",
			want: Result{Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartBarH, Keywords: []string{"chart"}, Source: SourceModel,
				Title: "Treatment effectiveness", Labels: []string{"A", "B"}, Values: []float64{1, 2}},
		},
		"auto keeps the keyword chart type": {
			kw:     Result{Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartPie, Source: SourceKeywords},
			answer: `{"visualization": true, "tool": "CodeInterpreter", "chartType": "auto", "title": "Share of patients"}`,
			want:   Result{Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartPie, Source: SourceModel, Title: "Share of patients"},
		},
		"model says it is a literature question": {
			kw: vizKW, answer: `{"visualization": false, "tool": "PubMedSearch", "chartType": "auto"}`,
			want: Result{Visualization: false, Tool: ToolPubMedSearch, ChartType: ChartAuto, Keywords: []string{"chart"}, Source: SourceModel,
				Title: "Treatment effectiveness", Labels: []string{"A", "B"}, Values: []float64{1, 2}},
		},
		"visualization only, no tool": {
			kw: noKW, prompt: "I'd love to see HbF rise: 10, 12, 15",
			answer: `{"visualization": "yes", "chartType": "Line"}`,
		},
		"no JSON": {
			kw: vizKW, answer: "It is probably a chart.", want: vizKW, wantErr: "no JSON object",
		},
		"unknown chart type": {
			kw: vizKW, answer: `{"visualization": true, "tool": "CodeInterpreter", "chartType": "sankey"}`, want: vizKW, wantErr: `chartType "sankey" is not a known chart type`,
		},
		"unknown tool": {
			kw: vizKW, answer: `{"tool": "Calculator"}`, want: vizKW, wantErr: `tool "Calculator" is not one of`,
		},
		"truncated JSON": {
			kw: vizKW, answer: `{"visualization": true, "tool": "CodeInt`, want: vizKW, wantErr: "never closed",
		},
		"model unavailable": {
			kw: vizKW, err: unavailable, want: vizKW, wantErr: "rate limited",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := &fakeModel{answer: tc.answer, err: tc.err}
			prompt := tc.prompt
			if prompt == "" {
				prompt = "Create a chart of treatment effectiveness: A 1, B 2"
			}
			got, err := Refine(context.Background(), m, prompt, tc.kw)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if name == "visualization only, no tool" {
				if !got.Visualization || got.Tool != ToolCodeInterpreter || got.ChartType != ChartLine || got.Source != SourceModel || len(got.Values) != 3 {
					t.Errorf("result = %+v; want a line chart with the prompt's three values", got)
				}
				return
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			if len(m.got) != 1 || !m.got[0].JSON || !strings.Contains(m.got[0].User, prompt) {
				t.Errorf("request = %+v", m.got)
			}
		})
	}
}

func TestRefineNilClient(t *testing.T) {
	kw := Result{Visualization: true, Tool: ToolCodeInterpreter, ChartType: ChartBar, Source: SourceKeywords}
	got, err := Refine(context.Background(), nil, "a bar chart", kw)
	if err != nil || got.Source != SourceKeywords {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// Over the wire: the OpenAI-compatible server sees response_format json_object and the
// typed error comes back unchanged.
func TestRefineOverHTTP(t *testing.T) {
	srv := modelstest.NewOpenAI(t,
		modelstest.Reply{Content: `{"visualization": true, "tool": "CodeInterpreter", "chartType": "scatter"}`},
		modelstest.Reply{Status: 500}, modelstest.Reply{Status: 500}, modelstest.Reply{Status: 500})
	cfg, err := models.ParseConfig([]byte("providers:\n- {name: ollama, type: openai, baseURL: " + srv.BaseURL() + ", defaultModel: q, maxRetries: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg := models.NewRegistry(cfg, models.Options{Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	r, err := reg.Resolve(context.Background(), "ollama/")
	if err != nil {
		t.Fatal(err)
	}
	kw := Detect("plot dosage against HbF")
	got, err := Refine(context.Background(), r.Client, "plot dosage against HbF", kw)
	if err != nil || got.ChartType != ChartScatter || got.Source != SourceModel {
		t.Fatalf("got %+v, %v", got, err)
	}
	if !srv.Calls()[0].JSON {
		t.Error("the request did not ask for a JSON object")
	}
	got, err = Refine(context.Background(), r.Client, "plot dosage against HbF", kw)
	var ue *models.UnavailableError
	if !errors.As(err, &ue) || got.Source != SourceKeywords {
		t.Fatalf("got %+v, %v (%T)", got, err, err)
	}
}
