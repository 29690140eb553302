package models_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/models/modelstest"
)

const secretKey = "sk-test-SECRET-0123456789abcdef"

func TestParseConfig(t *testing.T) {
	two, zero := 2, 0
	tests := map[string]struct {
		yaml    string
		want    *models.Config
		wantErr string // substring; the field must be named
	}{
		"defaults applied": {
			yaml: `
providers:
- name: ollama
  type: openai
  baseURL: http://ollama:11434/v1
  defaultModel: qwen2.5-coder:7b
- name: anthropic
  type: Anthropic
  apiKeySecretRef: {name: llm-keys, key: anthropic}
  apiKeyEnv: ANTHROPIC_API_KEY
  timeout: 30s
  maxRepairs: 0
`,
			want: &models.Config{Providers: []models.ProviderConfig{
				{Name: "ollama", Type: "openai", BaseURL: "http://ollama:11434/v1", DefaultModel: "qwen2.5-coder:7b",
					Timeout: models.Duration{Duration: 60 * time.Second}, MaxRepairs: &two, MaxRetries: &two},
				{Name: "anthropic", Type: "anthropic", APIKeySecretRef: &models.SecretRef{Name: "llm-keys", Key: "anthropic"},
					APIKeyEnv: "ANTHROPIC_API_KEY", Timeout: models.Duration{Duration: 30 * time.Second}, MaxRepairs: &zero, MaxRetries: &two},
			}},
		},
		"no providers":       {yaml: "providers: []", wantErr: "providers: no providers are configured"},
		"unknown field":      {yaml: "providers:\n- name: a\n  type: openai\n  apiKeySecretRf: {name: x, key: y}\n", wantErr: `unknown field "apiKeySecretRf"`},
		"missing name":       {yaml: "providers:\n- type: openai\n", wantErr: "providers[0].name: is required"},
		"bad name":           {yaml: "providers:\n- name: Open AI\n  type: openai\n", wantErr: "providers[0].name: \"Open AI\" is not a valid provider name"},
		"duplicate":          {yaml: "providers:\n- {name: a, type: openai}\n- {name: a, type: openai}\n", wantErr: "providers[1].name: provider \"a\" is also defined at providers[0]"},
		"missing type":       {yaml: "providers:\n- name: a\n", wantErr: "providers[0].type: is required"},
		"bad type":           {yaml: "providers:\n- {name: a, type: gemini}\n", wantErr: "providers[0].type: \"gemini\" is not supported"},
		"relative baseURL":   {yaml: "providers:\n- {name: a, type: openai, baseURL: ollama:11434}\n", wantErr: "providers[0].baseURL: \"ollama:11434\" is not an absolute http(s) URL"},
		"credentials in URL": {yaml: "providers:\n- {name: a, type: openai, baseURL: 'http://u:p@h/v1'}\n", wantErr: "providers[0].baseURL: must not contain credentials"},
		"secretRef no key":   {yaml: "providers:\n- {name: a, type: openai, apiKeySecretRef: {name: s}}\n", wantErr: "providers[0].apiKeySecretRef.key: is required"},
		"bad timeout":        {yaml: "providers:\n- {name: a, type: openai, timeout: soon}\n", wantErr: `"soon" is not a duration`},
		"maxRepairs range":   {yaml: "providers:\n- {name: a, type: openai, maxRepairs: 50}\n", wantErr: "providers[0].maxRepairs: 50 is out of range"},
		"bad env name":       {yaml: "providers:\n- {name: a, type: openai, apiKeyEnv: 'MY-KEY'}\n", wantErr: "providers[0].apiKeyEnv"},
		"not yaml":           {yaml: "providers: [", wantErr: "the providers file is not valid"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := models.ParseConfig([]byte(tc.yaml))
			if tc.wantErr != "" {
				var ce *models.ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("error = %v (%T), want *ConfigError", err, err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %q, want it to contain %q", err, tc.wantErr)
				}
				if ce.Reason() != "ProviderUnavailable" {
					t.Errorf("reason = %q", ce.Reason())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

func TestLoadConfigNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "providers.yaml")
	if err := os.WriteFile(p, []byte("providers:\n- {name: a, type: nope}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := models.LoadConfig(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "providers[0].type") {
		t.Fatalf("error = %v", err)
	}
	if _, err := models.LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); !models.IsTerminal(err) {
		t.Fatalf("missing file: error = %v, want *ConfigError", err)
	}
}

func TestParseModelRef(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    models.ModelRef
		wantErr bool
	}{
		"ollama tag":       {in: "ollama/qwen2.5-coder:7b", want: models.ModelRef{Provider: "ollama", Model: "qwen2.5-coder:7b"}},
		"model with slash": {in: "vllm/meta-llama/Llama-3.1-8B-Instruct", want: models.ModelRef{Provider: "vllm", Model: "meta-llama/Llama-3.1-8B-Instruct"}},
		"default model":    {in: "openai/", want: models.ModelRef{Provider: "openai"}},
		"provider only":    {in: "anthropic", want: models.ModelRef{Provider: "anthropic"}},
		"spaces trimmed":   {in: " openai/gpt-4o-mini ", want: models.ModelRef{Provider: "openai", Model: "gpt-4o-mini"}},
		"empty":            {in: "", wantErr: true},
		"no provider":      {in: "/gpt-4o", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := models.ParseModelRef(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func config(t *testing.T, yaml string) *models.Config {
	t.Helper()
	cfg, err := models.ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// secrets is a SecretReader over a map; a missing entry's error carries the key
// material of another entry to prove the registry does not echo reader errors.
func secrets(m map[string]string) models.SecretReader {
	return func(_ context.Context, name, key string) (string, error) {
		v, ok := m[name+"/"+key]
		if !ok {
			return "", fmt.Errorf("secrets %q not found (cache holds %s)", name, secretKey)
		}
		return v, nil
	}
}

func TestResolve(t *testing.T) {
	cfg := config(t, `
providers:
- {name: ollama, type: openai, baseURL: "http://127.0.0.1:1/v1", defaultModel: "qwen2.5-coder:7b"}
- {name: openai, type: openai, apiKeySecretRef: {name: llm-keys, key: openai}, apiKeyEnv: OPENAI_KEY_FOR_TEST}
- {name: anthropic, type: anthropic, apiKeySecretRef: {name: llm-keys, key: anthropic}, defaultModel: claude-sonnet-4-5}
`)
	operator := models.NewRegistry(cfg, models.Options{Secrets: secrets(map[string]string{"llm-keys/openai": secretKey})})
	local := models.NewRegistry(cfg, models.Options{LookupEnv: func(k string) (string, bool) {
		if k == "OPENAI_KEY_FOR_TEST" {
			return secretKey, true
		}
		return "", false
	}})
	tests := map[string]struct {
		reg      *models.Registry
		spec     string
		wantName string
		wantErr  string
	}{
		"default model":     {reg: operator, spec: "ollama/", wantName: "ollama/qwen2.5-coder:7b"},
		"explicit model":    {reg: operator, spec: "ollama/llama3.1:8b", wantName: "ollama/llama3.1:8b"},
		"secret key":        {reg: operator, spec: "openai/gpt-4o-mini", wantName: "openai/gpt-4o-mini"},
		"env key (local)":   {reg: local, spec: "openai/gpt-4o-mini", wantName: "openai/gpt-4o-mini"},
		"unknown provider":  {reg: operator, spec: "foo/bar", wantErr: `provider "foo" is not configured; configured providers: anthropic, ollama, openai`},
		"no default model":  {reg: operator, spec: "openai/", wantErr: `provider "openai" has no defaultModel`},
		"missing secret":    {reg: operator, spec: "anthropic/", wantErr: `cannot be read from key "anthropic" of Secret "llm-keys"`},
		"no reader, no env": {reg: local, spec: "anthropic/", wantErr: `set apiKeyEnv in the providers file`},
		"env not set":       {reg: models.NewRegistry(cfg, models.Options{LookupEnv: func(string) (string, bool) { return "", false }}), spec: "openai/x", wantErr: "environment variable OPENAI_KEY_FOR_TEST is not set"},
		"empty spec":        {reg: operator, spec: "", wantErr: "spec.model: is empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := tc.reg.Resolve(context.Background(), tc.spec)
			if tc.wantErr != "" {
				if !models.IsTerminal(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v (%T), want *ConfigError containing %q", err, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), secretKey) {
					t.Fatalf("error leaks the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Client.Name() != tc.wantName {
				t.Errorf("Name() = %q, want %q", r.Client.Name(), tc.wantName)
			}
		})
	}
}

// sleeper records retry waits instead of sleeping.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeper) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func resolve(t *testing.T, srv *modelstest.Server, typ, extra string, sl *sleeper) models.Client {
	t.Helper()
	cfg := config(t, fmt.Sprintf(`
providers:
- name: p
  type: %s
  baseURL: %s
  defaultModel: m:7b
  apiKeySecretRef: {name: keys, key: p}
%s`, typ, srv.BaseURL(), extra))
	reg := models.NewRegistry(cfg, models.Options{Secrets: secrets(map[string]string{"keys/p": secretKey}), Sleep: sl.sleep})
	r, err := reg.Resolve(context.Background(), "p/")
	if err != nil {
		t.Fatal(err)
	}
	return r.Client
}

type completeCase struct {
	replies   []modelstest.Reply
	extra     string // more provider YAML
	req       models.Request
	want      string
	wantErr   any // *models.UnavailableError, *models.ConfigError, *models.ResponseError
	errHas    string
	wantCalls int
	wantWaits []time.Duration // exact server-directed waits; nil = not checked
	keyOnSrv  string          // the key the server requires (default secretKey)
}

func runComplete(t *testing.T, typ string, tests map[string]completeCase) {
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var srv *modelstest.Server
			if typ == models.TypeAnthropic {
				srv = modelstest.NewAnthropic(t, tc.replies...)
			} else {
				srv = modelstest.NewOpenAI(t, tc.replies...)
			}
			key := tc.keyOnSrv
			if key == "" {
				key = secretKey
			}
			srv.RequireKey(key)
			sl := &sleeper{}
			c := resolve(t, srv, typ, tc.extra, sl)
			req := tc.req
			if req.User == "" {
				req = models.Request{System: "You write Python.", User: "bar chart of 3, 2, 4"}
			}
			got, err := c.Complete(context.Background(), req)
			if err != nil && strings.Contains(err.Error(), secretKey) {
				t.Fatalf("error leaks the API key: %v", err)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Complete: %v", err)
				}
				if got != tc.want {
					t.Errorf("text = %q, want %q", got, tc.want)
				}
			} else {
				if err == nil {
					t.Fatalf("no error; text %q", got)
				}
				if fmt.Sprintf("%T", err) != fmt.Sprintf("%T", tc.wantErr) {
					t.Fatalf("error %v is %T, want %T", err, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q does not contain %q", err, tc.errHas)
				}
			}
			if n := len(srv.Calls()); n != tc.wantCalls {
				t.Errorf("server saw %d calls, want %d", n, tc.wantCalls)
			}
			if tc.wantWaits != nil {
				if d := cmp.Diff(tc.wantWaits, sl.waits); d != "" {
					t.Errorf("waits (-want +got):\n%s", d)
				}
			}
			if calls := srv.Calls(); len(calls) > 0 {
				if calls[0].Model != "m:7b" || calls[0].System != req.System || calls[0].User != req.User {
					t.Errorf("request = %+v", calls[0])
				}
			}
		})
	}
}

func TestCompleteOpenAI(t *testing.T) {
	code := "```python\nimport matplotlib.pyplot as plt\nplt.bar(['a'], [1])\nplt.show()\n```"
	runComplete(t, models.TypeOpenAI, map[string]completeCase{
		"answer":                {replies: []modelstest.Reply{{Content: code}}, want: code, wantCalls: 1},
		"429 then answer":       {replies: []modelstest.Reply{{Status: 429, RetryAfter: "2"}, {Content: "ok"}}, want: "ok", wantCalls: 2, wantWaits: []time.Duration{2 * time.Second}},
		"500 twice then answer": {replies: []modelstest.Reply{{Status: 500}, {Status: 502}, {Content: "ok"}}, want: "ok", wantCalls: 3},
		"500 until retries run out": {
			replies: []modelstest.Reply{{Status: 500}, {Status: 500}, {Status: 503}},
			wantErr: &models.UnavailableError{}, errHas: "HTTP 503 Service Unavailable", wantCalls: 3,
		},
		"retry-after beyond timeout": {
			replies: []modelstest.Reply{{Status: 429, RetryAfter: "120"}}, extra: "  timeout: 5s",
			wantErr: &models.UnavailableError{}, errHas: "would pass the provider timeout of 5s", wantCalls: 1,
		},
		"no retries configured": {
			replies: []modelstest.Reply{{Status: 429}}, extra: "  maxRetries: 0",
			wantErr: &models.UnavailableError{}, errHas: "rate limited (HTTP 429 Too Many Requests: Rate limit reached", wantCalls: 1,
		},
		"slow model times out": {
			replies: []modelstest.Reply{{Delay: 5 * time.Second, Content: "late"}}, extra: "  timeout: 300ms",
			wantErr: &models.UnavailableError{}, errHas: "within the provider timeout of 300ms", wantCalls: 1,
		},
		"wrong key is terminal and redacted": {
			replies: []modelstest.Reply{{Content: "never"}}, keyOnSrv: "sk-the-right-one",
			wantErr: &models.ConfigError{}, errHas: `rejected the key in Secret "keys" (key "p") (HTTP 401 Unauthorized: Incorrect API key provided: [redacted])`, wantCalls: 1,
		},
		"unknown model is terminal": {
			replies: []modelstest.Reply{{Status: 404, ErrMessage: "model 'm:7b' not found, try pulling it first"}},
			wantErr: &models.ConfigError{}, errHas: "does not know model \"m:7b\"", wantCalls: 1,
		},
		"bad request": {
			replies: []modelstest.Reply{{Status: 400, ErrMessage: "maximum context length is 8192 tokens"}},
			wantErr: &models.ResponseError{}, errHas: "maximum context length", wantCalls: 1,
		},
		"empty content": {
			replies: []modelstest.Reply{{Content: "", FinishReason: "length"}},
			wantErr: &models.ResponseError{}, errHas: "empty (finish_reason length)", wantCalls: 1,
		},
		"not json": {
			replies: []modelstest.Reply{{RawBody: "<html>proxy error</html>"}},
			wantErr: &models.ResponseError{}, errHas: "could not be read", wantCalls: 1,
		},
		"json mode": {
			replies: []modelstest.Reply{{Content: `{"a":1}`}}, want: `{"a":1}`, wantCalls: 1,
			req: models.Request{System: "s", User: "u", JSON: true},
		},
	})
}

func TestCompleteAnthropic(t *testing.T) {
	runComplete(t, models.TypeAnthropic, map[string]completeCase{
		"answer":             {replies: []modelstest.Reply{{Content: "hello"}}, want: "hello", wantCalls: 1},
		"overloaded then ok": {replies: []modelstest.Reply{{Status: 529}, {Content: "ok"}}, want: "ok", wantCalls: 2},
		"429 retry-after":    {replies: []modelstest.Reply{{Status: 429, RetryAfter: "1"}, {Content: "ok"}}, want: "ok", wantCalls: 2, wantWaits: []time.Duration{time.Second}},
		"500 exhausted":      {replies: []modelstest.Reply{{Status: 500}, {Status: 500}, {Status: 500}}, wantErr: &models.UnavailableError{}, errHas: "server error (HTTP 500", wantCalls: 3},
		"wrong key":          {replies: []modelstest.Reply{{Content: "never"}}, keyOnSrv: "other", wantErr: &models.ConfigError{}, errHas: "Incorrect API key provided: [redacted]", wantCalls: 1},
		"slow":               {replies: []modelstest.Reply{{Delay: 5 * time.Second}}, extra: "  timeout: 300ms", wantErr: &models.UnavailableError{}, errHas: "within the provider timeout", wantCalls: 1},
		"refusal":            {replies: []modelstest.Reply{{Content: "I can't help with that.", FinishReason: "refusal"}}, wantErr: &models.ResponseError{}, errHas: "refused", wantCalls: 1},
	})
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	cfg := config(t, fmt.Sprintf("providers:\n- {name: ollama, type: openai, baseURL: %q, defaultModel: q}\n", url+"/v1"))
	sl := &sleeper{}
	r, err := models.NewRegistry(cfg, models.Options{Sleep: sl.sleep}).Resolve(context.Background(), "ollama/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Client.Complete(context.Background(), models.Request{User: "hi"})
	var ue *models.UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "connection refused at "+url+"/v1") || ue.Attempts != 3 {
		t.Fatalf("error = %v (%T)", err, err)
	}
	if len(sl.waits) != 2 {
		t.Errorf("waits = %v, want 2 backoffs", sl.waits)
	}
}

// A keyless provider (Ollama) must not receive a key from the process environment.
func TestKeylessProviderSendsNoAmbientKey(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-ambient-must-not-leak")
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-ambient-must-not-leak")
	for _, typ := range []string{models.TypeOpenAI, models.TypeAnthropic} {
		t.Run(typ, func(t *testing.T) {
			var srv *modelstest.Server
			if typ == models.TypeAnthropic {
				srv = modelstest.NewAnthropic(t, modelstest.Reply{Content: "ok"})
			} else {
				srv = modelstest.NewOpenAI(t, modelstest.Reply{Content: "ok"})
			}
			cfg := config(t, fmt.Sprintf("providers:\n- {name: local, type: %s, baseURL: %q, defaultModel: q}\n", typ, srv.BaseURL()))
			r, err := models.NewRegistry(cfg, models.Options{}).Resolve(context.Background(), "local/")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Client.Complete(context.Background(), models.Request{User: "hi"}); err != nil {
				t.Fatal(err)
			}
			for k, v := range srv.Calls()[0].Header {
				if strings.Contains(strings.Join(v, ","), "must-not-leak") {
					t.Errorf("header %s carries the ambient key", k)
				}
			}
		})
	}
}

func TestCallerCancellationIsNotUnavailability(t *testing.T) {
	srv := modelstest.NewOpenAI(t, modelstest.Reply{Delay: 5 * time.Second})
	c := resolve(t, srv, models.TypeOpenAI, "", &sleeper{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Complete(ctx, models.Request{User: "hi"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v (%T), want the context's error", err, err)
	}
}

// The controller treats any error with a Reason() method as terminal: transient errors
// must not have one.
func TestOnlyTerminalErrorsHaveReason(t *testing.T) {
	type reasoner interface{ Reason() string }
	for _, err := range []error{&models.UnavailableError{}, &models.ResponseError{}} {
		if _, ok := err.(reasoner); ok {
			t.Errorf("%T has Reason(): the controller would fail the request instead of degrading", err)
		}
	}
	if _, ok := error(&models.ConfigError{}).(reasoner); !ok {
		t.Error("*ConfigError lacks Reason()")
	}
}
