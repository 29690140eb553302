package codegen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/models/modelstest"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// Realistic model answers.
const (
	cleanAnswer = "```python\nimport matplotlib.pyplot as plt\n\ntreatments = ['Hydroxyurea', 'Voxelotor']\neffect = [85, 70]\nplt.bar(treatments, effect)\nplt.title('Effectiveness')\nplt.show()\n```"

	proseAnswer = "Certainly! Below is a Python script that creates the bar chart you asked for.\n\n```python\nimport matplotlib.pyplot as plt\nplt.bar(['Hydroxyurea', 'Voxelotor'], [85, 70])\nplt.ylabel('Effectiveness (%)')\nplt.show()\n```\n\nThe chart shows each treatment's effectiveness. You can change the colors with the `color` argument."

	severalBlocksAnswer = "You may need matplotlib:\n```bash\npip install matplotlib\n```\nHere's the chart:\n```python\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.bar(['A', 'B', 'C'], [3, 2, 4])\nax.set_title('Episodes')\nplt.show()\n```\nAnd to check the values:\n```python\nprint([3, 2, 4])\n```"

	// brokenAnswer has a typo: the sandbox raises NameError.
	brokenAnswer = "```python\nimport matplotlib.pyplot as plt\nvalues = [85, 70]\nplt.bar(['Hydroxyurea', 'Voxelotor'], valuez)\nplt.show()\n```"
	fixedAnswer  = "You're right, there was a typo. Fixed:\n```python\nimport matplotlib.pyplot as plt\nvalues = [85, 70]\nplt.bar(['Hydroxyurea', 'Voxelotor'], values)\nplt.show()\n```"

	forbiddenAnswer = "```python\nimport subprocess\nimport matplotlib.pyplot as plt\nsubprocess.run(['pip', 'install', 'seaborn'])\nplt.bar(['a'], [1])\nplt.show()\n```"

	loopAnswer = "```python\nimport matplotlib.pyplot as plt\nwhile True:\n    pass\n```"

	nothingAnswer = "```python\nprint('Hydroxyurea is the most effective treatment.')\n```"

	refusalAnswer = "I'm sorry, but I can't produce that chart without more information about the data."
)

// fakeSandbox stands in for a sandbox: it "runs" code by inspecting it. It raises
// NameError for the typo "valuez", times out on "while True", succeeds without a
// figure when the code never calls plt./fig., and otherwise succeeds with a PNG. It records every program.
type fakeSandbox struct {
	mu    sync.Mutex
	codes []string
	err   error // returned instead of a result (the sandbox failed)
}

func (f *fakeSandbox) exec(_ context.Context, code string) (*sandbox.Result, error) {
	f.mu.Lock()
	f.codes = append(f.codes, code)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	switch {
	case strings.Contains(code, "valuez"):
		return &sandbox.Result{Success: false, Error: &sandbox.ExecError{
			Name: "NameError", Value: "name 'valuez' is not defined",
			Traceback: "Traceback (most recent call last):\n  File \"<cell>\", line 4, in <module>\n    plt.bar(['Hydroxyurea', 'Voxelotor'], valuez)\n                                          ^^^^^^\nNameError: name 'valuez' is not defined",
		}, SandboxID: "fake-0"}, nil
	case strings.Contains(code, "while True"):
		return &sandbox.Result{Success: false, TimedOut: true, Error: &sandbox.ExecError{Name: "Timeout", Value: "execution exceeded 30s"}, SandboxID: "fake-0"}, nil
	case !strings.Contains(code, "plt.") && !strings.Contains(code, "fig."):
		return &sandbox.Result{Success: true, Stdout: "Hydroxyurea is the most effective treatment.\n", SandboxID: "fake-0"}, nil
	}
	return &sandbox.Result{Success: true, Files: []sandbox.Artifact{{Name: "figure-1.png", MIMEType: "image/png", Data: []byte("\x89PNG")}}, SandboxID: "fake-0"}, nil
}

func barInput() Input {
	return Input{
		Prompt: "Create a bar chart of treatment effectiveness: Hydroxyurea (85%), Voxelotor (70%)",
		Detection: detect.Result{Visualization: true, Tool: detect.ToolCodeInterpreter, ChartType: detect.ChartBar,
			Source: detect.SourceKeywords, Labels: []string{"Hydroxyurea", "Voxelotor"}, Values: []float64{85, 70}},
		Formats:  []string{"png"},
		Packages: DefaultPackages,
	}
}

func generator(t *testing.T, srv *modelstest.Server, typ, extra string) *Generator {
	t.Helper()
	cfg, err := models.ParseConfig([]byte(fmt.Sprintf("providers:\n- name: p\n  type: %s\n  baseURL: %s\n  defaultModel: coder:7b\n%s", typ, srv.BaseURL(), extra)))
	if err != nil {
		t.Fatal(err)
	}
	reg := models.NewRegistry(cfg, models.Options{Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	g, err := NewGenerator(context.Background(), reg, "p/")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRun(t *testing.T) {
	type want struct {
		Path           Path
		Attempts       int
		Repairs        int
		Execs          int
		Source         Source
		Model          string
		Success        bool
		FallbackReason string // substring
	}
	r := func(c string) modelstest.Reply { return modelstest.Reply{Content: c} }
	tests := map[string]struct {
		typ     string // provider type (default openai)
		extra   string // provider YAML
		replies []modelstest.Reply
		want    want
		check   func(t *testing.T, srv *modelstest.Server, sb *fakeSandbox, out Outcome)
	}{
		"clean code": {
			replies: []modelstest.Reply{r(cleanAnswer)},
			want:    want{Path: PathModel, Attempts: 1, Execs: 1, Source: SourceModel, Model: "p/coder:7b", Success: true},
			check: func(t *testing.T, srv *modelstest.Server, sb *fakeSandbox, out Outcome) {
				c := srv.Calls()[0]
				for _, s := range []string{"matplotlib, numpy, pandas, seaborn, plotly", "no network and no file access", "plt.show()", "single fenced code block"} {
					if !strings.Contains(c.System, s) {
						t.Errorf("system prompt lacks %q", s)
					}
				}
				if !strings.Contains(c.User, "Hydroxyurea (85%)") || !strings.Contains(c.User, "Chart type: bar chart") {
					t.Errorf("user prompt = %q", c.User)
				}
			},
		},
		"code wrapped in prose": {
			replies: []modelstest.Reply{r(proseAnswer)},
			want:    want{Path: PathModel, Attempts: 1, Execs: 1, Source: SourceModel, Model: "p/coder:7b", Success: true},
			check: func(t *testing.T, _ *modelstest.Server, sb *fakeSandbox, _ Outcome) {
				if strings.Contains(sb.codes[0], "Certainly") || strings.Contains(sb.codes[0], "```") {
					t.Errorf("prose reached the sandbox:\n%s", sb.codes[0])
				}
			},
		},
		"several blocks": {
			replies: []modelstest.Reply{r(severalBlocksAnswer)},
			want:    want{Path: PathModel, Attempts: 1, Execs: 1, Source: SourceModel, Model: "p/coder:7b", Success: true},
			check: func(t *testing.T, _ *modelstest.Server, sb *fakeSandbox, _ Outcome) {
				if !strings.Contains(sb.codes[0], "ax.bar") || strings.Contains(sb.codes[0], "pip") {
					t.Errorf("wrong block ran:\n%s", sb.codes[0])
				}
			},
		},
		"broken code repaired": {
			replies: []modelstest.Reply{r(brokenAnswer), r(fixedAnswer)},
			want:    want{Path: PathRepaired, Attempts: 2, Repairs: 1, Execs: 2, Source: SourceModel, Model: "p/coder:7b", Success: true},
			check: func(t *testing.T, srv *modelstest.Server, _ *fakeSandbox, _ Outcome) {
				repair := srv.Calls()[1].User
				for _, s := range []string{"NameError: name 'valuez' is not defined", "plt.bar(['Hydroxyurea', 'Voxelotor'], valuez)", "Fix the program"} {
					if !strings.Contains(repair, s) {
						t.Errorf("repair prompt lacks %q:\n%s", s, repair)
					}
				}
			},
		},
		"draws nothing, then repaired": {
			replies: []modelstest.Reply{r(nothingAnswer), r(cleanAnswer)},
			want:    want{Path: PathRepaired, Attempts: 2, Repairs: 1, Execs: 2, Source: SourceModel, Model: "p/coder:7b", Success: true},
			check: func(t *testing.T, srv *modelstest.Server, _ *fakeSandbox, _ Outcome) {
				if repair := srv.Calls()[1].User; !strings.Contains(repair, "NoFigure: the program ran without errors but produced no chart") {
					t.Errorf("repair prompt:\n%s", repair)
				}
			},
		},
		"still broken after repairs": {
			extra:   "  maxRepairs: 1",
			replies: []modelstest.Reply{r(brokenAnswer), r(brokenAnswer)},
			want: want{Path: PathTemplateFallback, Attempts: 2, Repairs: 1, Execs: 3, Source: SourceTemplate, Success: true,
				FallbackReason: "the model's program still failed after 1 repairs: NameError: name 'valuez' is not defined"},
		},
		"repairs off": {
			extra:   "  maxRepairs: 0",
			replies: []modelstest.Reply{r(brokenAnswer)},
			want: want{Path: PathTemplateFallback, Attempts: 1, Execs: 2, Source: SourceTemplate, Success: true,
				FallbackReason: "repairs are off"},
		},
		"forbidden import": {
			replies: []modelstest.Reply{r(forbiddenAnswer)},
			want: want{Path: PathTemplateFallback, Attempts: 1, Execs: 1, Source: SourceTemplate, Success: true,
				FallbackReason: "the model's answer was unusable: the code was rejected before running: line 1: import subprocess: module \"subprocess\" is not allowed"},
			check: func(t *testing.T, _ *modelstest.Server, sb *fakeSandbox, _ Outcome) {
				if strings.Contains(sb.codes[0], "subprocess") {
					t.Error("rejected code reached the sandbox")
				}
			},
		},
		"no code in the answer": {
			replies: []modelstest.Reply{r(refusalAnswer)},
			want:    want{Path: PathTemplateFallback, Attempts: 1, Execs: 1, Source: SourceTemplate, Success: true, FallbackReason: "the model's answer was unusable: the answer contains no Python code"},
		},
		"code times out in the sandbox": {
			replies: []modelstest.Reply{r(loopAnswer)},
			want:    want{Path: PathTemplateFallback, Attempts: 1, Execs: 2, Source: SourceTemplate, Success: true, FallbackReason: "the model's program timed out in the sandbox: Timeout: execution exceeded 30s"},
		},
		"429 until retries run out": {
			replies: []modelstest.Reply{{Status: 429, RetryAfter: "1"}, {Status: 429, RetryAfter: "1"}, {Status: 429, RetryAfter: "1"}},
			want: want{Path: PathTemplateFallback, Attempts: 1, Execs: 1, Source: SourceTemplate, Success: true,
				FallbackReason: "the model is unavailable: provider \"p\" is unavailable: rate limited (HTTP 429 Too Many Requests"},
		},
		"500 then an answer": {
			replies: []modelstest.Reply{{Status: 500}, r(cleanAnswer)},
			want:    want{Path: PathModel, Attempts: 1, Execs: 1, Source: SourceModel, Model: "p/coder:7b", Success: true},
		},
		"model too slow": {
			extra:   "  timeout: 200ms",
			replies: []modelstest.Reply{{Delay: 3 * time.Second, Content: cleanAnswer}},
			want:    want{Path: PathTemplateFallback, Attempts: 1, Execs: 1, Source: SourceTemplate, Success: true, FallbackReason: "within the provider timeout of 200ms"},
		},
		"repair call fails": {
			extra:   "  maxRetries: 0",
			replies: []modelstest.Reply{r(brokenAnswer), {Status: 503}},
			want: want{Path: PathTemplateFallback, Attempts: 2, Repairs: 1, Execs: 2, Source: SourceTemplate, Success: true,
				FallbackReason: "the model is unavailable for a repair: provider \"p\" is unavailable: server error (HTTP 503"},
		},
		"anthropic clean": {
			typ:     models.TypeAnthropic,
			replies: []modelstest.Reply{r(proseAnswer)},
			want:    want{Path: PathModel, Attempts: 1, Execs: 1, Source: SourceModel, Model: "p/coder:7b", Success: true},
		},
		"anthropic repaired after overload": {
			typ:     models.TypeAnthropic,
			replies: []modelstest.Reply{r(brokenAnswer), {Status: 529}, r(fixedAnswer)},
			want:    want{Path: PathRepaired, Attempts: 2, Repairs: 1, Execs: 2, Source: SourceModel, Model: "p/coder:7b", Success: true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var srv *modelstest.Server
			typ := tc.typ
			if typ == models.TypeAnthropic {
				srv = modelstest.NewAnthropic(t, tc.replies...)
			} else {
				typ = models.TypeOpenAI
				srv = modelstest.NewOpenAI(t, tc.replies...)
			}
			g := generator(t, srv, typ, tc.extra)
			sb := &fakeSandbox{}
			out, err := g.Run(context.Background(), barInput(), sb.exec)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := want{Path: out.Path, Attempts: out.Attempts, Repairs: out.Repairs, Execs: len(sb.codes),
				Source: out.Code.Source, Model: out.Code.Model, Success: out.Result != nil && out.Result.Success, FallbackReason: tc.want.FallbackReason}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("outcome (-want +got):\n%s", d)
			}
			if !strings.Contains(out.FallbackReason, tc.want.FallbackReason) || (tc.want.FallbackReason == "") != (out.FallbackReason == "") {
				t.Errorf("FallbackReason = %q, want it to contain %q", out.FallbackReason, tc.want.FallbackReason)
			}
			if out.Path == PathTemplateFallback {
				tmpl, _ := FromTemplate(barInput())
				if d := cmp.Diff(tmpl, out.Code); d != "" {
					t.Errorf("fallback code is not the bar template (-want +got):\n%s", d)
				}
			}
			if srv.Remaining() != 0 {
				t.Errorf("%d scripted replies unused", srv.Remaining())
			}
			if tc.check != nil {
				tc.check(t, srv, sb, out)
			}
		})
	}
}

func TestRunWithoutModelUsesTemplate(t *testing.T) {
	sb := &fakeSandbox{}
	for _, g := range []*Generator{nil, {}} {
		out, err := g.Run(context.Background(), barInput(), sb.exec)
		if err != nil {
			t.Fatal(err)
		}
		if out.Path != PathTemplate || out.Attempts != 0 || out.Code.Source != SourceTemplate || out.Code.Template != "bar" || !out.Result.Success {
			t.Errorf("outcome = %+v", out)
		}
	}
}

func TestRunReturnsTerminalAndSandboxErrors(t *testing.T) {
	t.Run("rejected key is terminal", func(t *testing.T) {
		srv := modelstest.NewOpenAI(t, modelstest.Reply{Content: cleanAnswer})
		srv.RequireKey("sk-right")
		cfg, _ := models.ParseConfig([]byte(fmt.Sprintf("providers:\n- {name: p, type: openai, baseURL: %q, defaultModel: m, apiKeySecretRef: {name: s, key: k}}\n", srv.BaseURL())))
		const key = "sk-wrong-0123456789"
		reg := models.NewRegistry(cfg, models.Options{Secrets: func(context.Context, string, string) (string, error) { return key, nil }})
		g, err := NewGenerator(context.Background(), reg, "p/")
		if err != nil {
			t.Fatal(err)
		}
		sb := &fakeSandbox{}
		out, err := g.Run(context.Background(), barInput(), sb.exec)
		var ce *models.ConfigError
		if !errors.As(err, &ce) || ce.Reason() != "ProviderUnavailable" {
			t.Fatalf("err = %v (%T), want *models.ConfigError", err, err)
		}
		if strings.Contains(err.Error(), key) || strings.Contains(out.FallbackReason, key) {
			t.Fatalf("the key leaked: %v", err)
		}
		if out.Attempts != 1 || len(sb.codes) != 0 {
			t.Errorf("attempts %d, execs %d; want 1, 0", out.Attempts, len(sb.codes))
		}
	})
	t.Run("unknown provider", func(t *testing.T) {
		cfg, _ := models.ParseConfig([]byte("providers:\n- {name: ollama, type: openai}\n- {name: openai, type: openai}\n"))
		_, err := NewGenerator(context.Background(), models.NewRegistry(cfg, models.Options{}), "foo/bar")
		if !models.IsTerminal(err) || !strings.Contains(err.Error(), `provider "foo" is not configured; configured providers: ollama, openai`) {
			t.Fatalf("err = %v", err)
		}
		_, err = NewGenerator(context.Background(), nil, "ollama/x")
		if !models.IsTerminal(err) {
			t.Fatalf("nil registry: err = %v", err)
		}
	})
	t.Run("sandbox failure is returned as-is", func(t *testing.T) {
		srv := modelstest.NewOpenAI(t, modelstest.Reply{Content: cleanAnswer})
		g := generator(t, srv, models.TypeOpenAI, "")
		sb := &fakeSandbox{err: fmt.Errorf("sandbox local-1: %w", sandbox.ErrSandboxLost)}
		out, err := g.Run(context.Background(), barInput(), sb.exec)
		if !errors.Is(err, sandbox.ErrSandboxLost) || out.Attempts != 1 {
			t.Fatalf("err = %v, attempts %d", err, out.Attempts)
		}
	})
	t.Run("caller's context ends", func(t *testing.T) {
		srv := modelstest.NewOpenAI(t, modelstest.Reply{Delay: 3 * time.Second, Content: cleanAnswer})
		g := generator(t, srv, models.TypeOpenAI, "")
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		sb := &fakeSandbox{}
		_, err := g.Run(ctx, barInput(), sb.exec)
		if !errors.Is(err, context.DeadlineExceeded) || len(sb.codes) != 0 {
			t.Fatalf("err = %v, execs %d", err, len(sb.codes))
		}
	})
}

func TestPromptWithCSVAndPlotly(t *testing.T) {
	in := barInput()
	in.CSV = []byte("month,sales\nJan,10\nFeb,12\n")
	in.Formats = []string{"html"}
	sys, user := SystemPrompt(in), UserPrompt(in)
	for _, s := range []string{"already loaded as the pandas DataFrame `df`", `"data.csv"`, "fig.show()", "plotly"} {
		if !strings.Contains(sys, s) {
			t.Errorf("system prompt lacks %q:\n%s", s, sys)
		}
	}
	for _, s := range []string{`"month"`, `"sales"`, "2 rows"} {
		if !strings.Contains(user, s) {
			t.Errorf("user prompt lacks %q:\n%s", s, user)
		}
	}
}
