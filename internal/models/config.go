package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Provider types.
const (
	// TypeOpenAI is any OpenAI-compatible chat-completions API: OpenAI, Ollama's /v1,
	// vLLM, llama.cpp's server, LiteLLM.
	TypeOpenAI = "openai"
	// TypeAnthropic is Anthropic's Messages API (Claude).
	TypeAnthropic = "anthropic"
)

// Defaults applied by LoadConfig/ParseConfig.
const (
	DefaultTimeout    = 60 * time.Second
	DefaultMaxRepairs = 2
	DefaultMaxRetries = 2
	// DefaultMaxTokens bounds a completion when a Request does not say.
	DefaultMaxTokens = 2048
)

// Config is the providers file (mounted from a ConfigMap in the operator, passed with
// --providers to kubectl-viz). See docs/models.md.
type Config struct {
	Providers []ProviderConfig `json:"providers"`
}

// SecretRef names a key of a Secret in the operator's namespace.
type SecretRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// ProviderConfig is one model provider.
type ProviderConfig struct {
	// Name is the provider part of spec.model ("ollama" in "ollama/qwen2.5-coder:7b").
	Name string `json:"name"`
	// Type is "openai" (any OpenAI-compatible API) or "anthropic".
	Type string `json:"type"`
	// BaseURL is the API root, e.g. "http://ollama:11434/v1", "https://api.openai.com/v1",
	// "https://api.anthropic.com". Empty means the vendor's public API (openai and
	// anthropic types only).
	BaseURL string `json:"baseURL,omitempty"`
	// APIKeySecretRef is where the operator reads the API key. Optional (Ollama needs none).
	APIKeySecretRef *SecretRef `json:"apiKeySecretRef,omitempty"`
	// APIKeyEnv is the environment variable kubectl-viz render --local reads the key
	// from. The operator never reads keys from its environment.
	APIKeyEnv string `json:"apiKeyEnv,omitempty"`
	// DefaultModel is used when spec.model is "provider/" or just "provider".
	DefaultModel string `json:"defaultModel,omitempty"`
	// Timeout bounds one Complete call, retries included (default 60s).
	Timeout Duration `json:"timeout,omitempty"`
	// MaxRepairs is how many times a failing program goes back to the model (default 2).
	MaxRepairs *int `json:"maxRepairs,omitempty"`
	// MaxRetries is how many times a transient failure (429, 5xx, connection refused) is
	// retried within Timeout (default 2).
	MaxRetries *int `json:"maxRetries,omitempty"`
}

// Duration is a time.Duration written as "30s" or "2m" in YAML.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "30s", "2m" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (write e.g. \"30s\" or \"2m\")", s)
		}
		d.Duration = v
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("%s is not a duration (write e.g. \"30s\" or \"2m\")", b)
	}
	d.Duration = time.Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// LoadConfig reads and validates a providers file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Message: fmt.Sprintf("cannot read the providers file: %v", err)}
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		if ce := (*ConfigError)(nil); errors.As(err, &ce) {
			ce.Message += " (in " + path + ")"
		}
		return nil, err
	}
	return cfg, nil
}

var providerName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseConfig parses and validates a providers file's content and applies defaults.
// Unknown fields are errors (a misspelt "apiKeySecretRef" must not silently drop the key).
func ParseConfig(b []byte) (*Config, error) {
	var cfg Config
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return nil, &ConfigError{Message: "the providers file is not valid: " + cleanYAMLError(err)}
	}
	if len(cfg.Providers) == 0 {
		return nil, &ConfigError{Field: "providers", Message: "no providers are configured; add at least one {name, type, baseURL}"}
	}
	seen := map[string]int{}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		field := func(f string) string { return fmt.Sprintf("providers[%d].%s", i, f) }
		bad := func(f, msg string) error { return &ConfigError{Provider: p.Name, Field: field(f), Message: msg} }
		switch {
		case p.Name == "":
			return nil, bad("name", "is required (it is the part before the \"/\" in spec.model)")
		case !providerName.MatchString(p.Name):
			return nil, bad("name", fmt.Sprintf("%q is not a valid provider name: use lower-case letters, digits, '.', '_' and '-'", p.Name))
		}
		if j, dup := seen[p.Name]; dup {
			return nil, bad("name", fmt.Sprintf("provider %q is also defined at providers[%d]; names must be unique", p.Name, j))
		}
		seen[p.Name] = i
		p.Type = strings.ToLower(p.Type)
		switch p.Type {
		case TypeOpenAI, TypeAnthropic:
		case "":
			return nil, bad("type", "is required: \"openai\" (OpenAI, Ollama, vLLM, llama.cpp) or \"anthropic\"")
		default:
			return nil, bad("type", fmt.Sprintf("%q is not supported: use \"openai\" (OpenAI, Ollama, vLLM, llama.cpp) or \"anthropic\"", p.Type))
		}
		if p.BaseURL != "" {
			u, err := url.Parse(p.BaseURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, bad("baseURL", fmt.Sprintf("%q is not an absolute http(s) URL", p.BaseURL))
			}
			if u.User != nil {
				return nil, bad("baseURL", "must not contain credentials; put the key in a Secret and name it in apiKeySecretRef")
			}
		}
		if r := p.APIKeySecretRef; r != nil && (r.Name == "" || r.Key == "") {
			f := "apiKeySecretRef.name"
			if r.Name != "" {
				f = "apiKeySecretRef.key"
			}
			return nil, bad(f, "is required when apiKeySecretRef is set")
		}
		if p.APIKeyEnv != "" && !envName.MatchString(p.APIKeyEnv) {
			return nil, bad("apiKeyEnv", fmt.Sprintf("%q is not an environment variable name", p.APIKeyEnv))
		}
		if p.Timeout.Duration < 0 {
			return nil, bad("timeout", "must be positive")
		}
		if p.Timeout.Duration == 0 {
			p.Timeout.Duration = DefaultTimeout
		}
		if p.MaxRepairs == nil {
			p.MaxRepairs = ptr(DefaultMaxRepairs)
		} else if *p.MaxRepairs < 0 || *p.MaxRepairs > 10 {
			return nil, bad("maxRepairs", fmt.Sprintf("%d is out of range: use 0 to 10", *p.MaxRepairs))
		}
		if p.MaxRetries == nil {
			p.MaxRetries = ptr(DefaultMaxRetries)
		} else if *p.MaxRetries < 0 || *p.MaxRetries > 10 {
			return nil, bad("maxRetries", fmt.Sprintf("%d is out of range: use 0 to 10", *p.MaxRetries))
		}
	}
	return &cfg, nil
}

// Names lists the configured providers, sorted.
func (c *Config) Names() []string {
	var names []string
	for _, p := range c.Providers {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}

// Provider returns the named provider's config.
func (c *Config) Provider(name string) (ProviderConfig, bool) {
	for _, p := range c.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return ProviderConfig{}, false
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	s = strings.TrimPrefix(s, "error unmarshaling JSON: while decoding JSON: ")
	s = strings.ReplaceAll(s, "json: unknown field", "unknown field")
	s = strings.ReplaceAll(s, "Go struct field ", "")
	return s
}

func ptr[T any](v T) *T { return &v }
