package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/models/modelstest"
)

const (
	barPrompt    = "Create a bar chart of treatment effectiveness: Hydroxyurea (85%), Voxelotor (70%), Crizanlizumab (75%)"
	refineReply  = "```json\n{\"visualization\": true, \"tool\": \"CodeInterpreter\", \"chartType\": \"bar\", \"title\": \"Treatment effectiveness\"}\n```"
	brokenReply  = "Here is the chart:\n```python\nimport matplotlib.pyplot as plt\nvalues = [85, 70, 75]\nplt.bar(['Hydroxyurea', 'Voxelotor', 'Crizanlizumab'], valuez)\nplt.title('Treatment effectiveness')\nplt.show()\n```"
	fixedReply   = "Sorry, a typo. Fixed:\n```python\nvalues = [85, 70, 75]\nplt.bar(['Hydroxyurea', 'Voxelotor', 'Crizanlizumab'], values)\nplt.title('Treatment effectiveness')\nplt.show()\n```"
	droppedReply = "```python\nimport matplotlib.pyplot as plt\nplt.bar(['Hydroxyurea', 'Voxelotor'], [85, 70])\nplt.title('Treatment effectiveness')\nplt.show()\n```"
	evilReply    = "```python\nimport socket\nimport matplotlib.pyplot as plt\nsocket.create_connection(('example.com', 80))\nplt.bar(['a'], [1])\nplt.show()\n```"
)

// End to end: keyword detection, model refinement and generation against a scripted
// OpenAI-compatible server, execution in the real Local sandbox (bubblewrap), artifact
// checks, output files and JSON.
func TestRenderCommand(t *testing.T) {
	dir := t.TempDir()
	const key = "sk-render-test-0123456789"
	t.Setenv("VIZOPS_TEST_OPENAI_KEY", key)

	type want struct {
		exit       int
		success    bool
		detSource  string
		chartType  string
		path       string // codeGeneration.path
		attempts   int
		artifacts  []string
		reasonHas  string
		stdoutHas  string
		stderrHas  string
		serverCall int
	}
	tests := map[string]struct {
		replies []modelstest.Reply
		args    []string // after render --local
		keyEnv  string   // apiKeyEnv in the providers file (default VIZOPS_TEST_OPENAI_KEY)
		want    want
	}{
		"templates only": {
			args: []string{"--prompt", barPrompt, "--json"},
			want: want{success: true, detSource: "Keywords", chartType: "bar", path: "Template", artifacts: []string{"figure_1.png"}},
		},
		"model repairs its typo in the sandbox": {
			replies: []modelstest.Reply{{Content: refineReply}, {Content: brokenReply}, {Content: fixedReply}},
			args:    []string{"--prompt", barPrompt, "--model", "test/coder:7b", "--format", "png,svg", "--json"},
			want: want{success: true, detSource: "Model", chartType: "bar", path: "Repaired", attempts: 2,
				artifacts: []string{"figure_1.png", "figure_1.svg"}, serverCall: 3},
		},
		"forbidden import falls back to the template": {
			replies: []modelstest.Reply{{Content: refineReply}, {Content: evilReply}},
			args:    []string{"--prompt", barPrompt, "--model", "test/", "--json"},
			want: want{success: true, detSource: "Model", chartType: "bar", path: "TemplateFallback", attempts: 1,
				artifacts: []string{"figure_1.png"}, reasonHas: `import socket: module "socket" is not allowed`, serverCall: 2},
		},
		"model down: keywords and template": {
			replies: []modelstest.Reply{{Status: 500}, {Status: 500}, {Status: 500}, {Status: 503}, {Status: 503}, {Status: 503}},
			args:    []string{"--prompt", barPrompt, "--model", "test/", "--json"},
			want: want{success: true, detSource: "Keywords", chartType: "bar", path: "TemplateFallback", attempts: 1,
				artifacts: []string{"figure_1.png"}, reasonHas: "server error (HTTP 503", serverCall: 6},
		},
		"templates refuse data they cannot read": {
			args: []string{"--prompt", "Line chart of LDH, which fell from 520 to 480, then 430 and finally 390"},
			want: want{exit: 2, stderrHas: "DataNotUnderstood: the templates could not read the request's data: the request gives 520,"},
		},
		"model drops a value twice: one repair, then a clear failure": {
			replies: []modelstest.Reply{{Content: refineReply}, {Content: droppedReply}, {Content: droppedReply}},
			args:    []string{"--prompt", barPrompt, "--model", "test/"},
			want:    want{exit: 2, stderrHas: "DataNotAccounted: the model's chart does not show the request's data after a repair round", serverCall: 3},
		},
		"not a visualization": {
			args: []string{"--prompt", "What do recent clinical trials say about voxelotor efficacy?"},
			want: want{stdoutHas: "not a visualization (tool: PubMedSearch)"},
		},
		"unknown provider": {
			args: []string{"--prompt", barPrompt, "--model", "nope/x"},
			want: want{exit: 2, stderrHas: `provider "nope" is not configured; configured providers: test`},
		},
		"key variable not set": {
			keyEnv: "VIZOPS_TEST_UNSET_KEY",
			args:   []string{"--prompt", barPrompt, "--model", "test/"},
			want:   want{exit: 2, stderrHas: "environment variable VIZOPS_TEST_UNSET_KEY is not set"},
		},
		"model without providers": {
			args: []string{"--prompt", barPrompt, "--model", "test/", "--providers", ""},
			want: want{exit: 2, stderrHas: "needs --providers FILE"},
		},
		"bad format": {
			args: []string{"--prompt", barPrompt, "--format", "gif"},
			want: want{exit: 2, stderrHas: `--format "gif" is not supported`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := modelstest.NewOpenAI(t, tc.replies...)
			srv.RequireKey(key)
			keyEnv := tc.keyEnv
			if keyEnv == "" {
				keyEnv = "VIZOPS_TEST_OPENAI_KEY"
			}
			providers := filepath.Join(t.TempDir(), "providers.yaml")
			yaml := fmt.Sprintf("providers:\n- name: test\n  type: openai\n  baseURL: %s\n  defaultModel: coder:7b\n  apiKeyEnv: %s\n  apiKeySecretRef: {name: llm, key: test}\n  timeout: 20s\n", srv.BaseURL(), keyEnv)
			if err := os.WriteFile(providers, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			args := append([]string{"render", "--local", "-o", out, "--providers", providers}, tc.args...)
			stdout, stderr, exit := runCLI(t, args...)
			if exit != tc.want.exit {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", exit, tc.want.exit, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, key) {
				t.Fatal("the API key appears in the output")
			}
			if tc.want.stdoutHas != "" && !strings.Contains(stdout, tc.want.stdoutHas) {
				t.Errorf("stdout lacks %q:\n%s", tc.want.stdoutHas, stdout)
			}
			if tc.want.stderrHas != "" && !strings.Contains(stderr, tc.want.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tc.want.stderrHas, stderr)
			}
			if n := len(srv.Calls()); n != tc.want.serverCall {
				t.Errorf("model server saw %d calls, want %d", n, tc.want.serverCall)
			}
			if tc.want.path == "" {
				return
			}
			var got renderOutput
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
			}
			var names []string
			for _, a := range got.Artifacts {
				names = append(names, a.Name)
				data, err := os.ReadFile(a.Path)
				if err != nil || int64(len(data)) != a.SizeBytes || len(a.SHA256) != 64 {
					t.Errorf("artifact %s: file %d bytes (%v), reported %d, sha %q", a.Name, len(data), err, a.SizeBytes, a.SHA256)
				}
			}
			cg := got.CodeGeneration
			if cg == nil {
				t.Fatalf("no codeGeneration in %s", stdout)
			}
			type summary struct {
				Success              bool
				DetSource, ChartType string
				Path                 string
				Attempts             int
				Artifacts            []string
			}
			if d := cmp.Diff(
				summary{tc.want.success, tc.want.detSource, tc.want.chartType, tc.want.path, tc.want.attempts, tc.want.artifacts},
				summary{got.Success, got.Detection.Source, got.Detection.ChartType, cg.Path, cg.Attempts, names}); d != "" {
				t.Errorf("outcome (-want +got):\n%s\nstderr: %s\nerror: %s", d, stderr, got.Error)
			}
			if !strings.Contains(cg.FallbackReason, tc.want.reasonHas) || (tc.want.reasonHas == "") != (cg.FallbackReason == "") {
				t.Errorf("fallbackReason = %q, want %q", cg.FallbackReason, tc.want.reasonHas)
			}
			if cg.Path == "Repaired" {
				if calls := srv.Calls(); !strings.Contains(calls[2].User, "NameError: name 'valuez' is not defined") {
					t.Errorf("the repair prompt lacks the sandbox's traceback:\n%s", calls[2].User)
				}
				if !strings.HasPrefix(cg.Code, "import matplotlib.pyplot as plt\n") || cg.Model != "test/coder:7b" {
					t.Errorf("final code/model = %q / %q", cg.Code, cg.Model)
				}
			}
		})
	}
}
