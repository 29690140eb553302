// Package models talks to language-model providers: one OpenAI-compatible client
// (OpenAI, Ollama's /v1, vLLM, llama.cpp) and one Anthropic client, configured from a
// providers file, with API keys read only through an injected SecretReader.
//
// Errors are typed: *ConfigError is terminal (reason ProviderUnavailable),
// *UnavailableError is transient (already retried within the provider's timeout),
// *ResponseError is a call whose answer could not be used. No error, log line or
// message ever contains an API key.
package models

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Request is one completion.
type Request struct {
	// System is the system prompt (instructions).
	System string
	// User is the user turn.
	User string
	// MaxTokens bounds the answer (DefaultMaxTokens when zero).
	MaxTokens int
	// JSON asks for a JSON object (OpenAI response_format json_object; for Anthropic
	// the instruction lives in the prompt and the answer is parsed leniently).
	JSON bool
}

// Client completes prompts with one provider's model.
type Client interface {
	// Complete returns the model's text answer. Errors are *UnavailableError,
	// *ResponseError, *ConfigError (e.g. the key was rejected) or the context's error
	// when ctx itself ended.
	Complete(ctx context.Context, req Request) (string, error)
	// Name is "provider/model", as recorded in status.codeGeneration.model.
	Name() string
}

// SecretReader returns the value of key in the Secret name (in the operator's
// namespace). A missing Secret or key is reported as an error; the error text must not
// contain the value.
type SecretReader func(ctx context.Context, name, key string) (string, error)

// Options configure a Registry.
type Options struct {
	// Secrets reads apiKeySecretRef keys (the operator). Nil means no Secrets can be read.
	Secrets SecretReader
	// LookupEnv reads apiKeyEnv keys (kubectl-viz render --local only; pass
	// os.LookupEnv). Nil means keys never come from the environment.
	LookupEnv func(string) (string, bool)
	// HTTPClient is used for every call (tests, proxies). Nil means a default client.
	HTTPClient *http.Client
	// Sleep waits between retries (tests can make it instant). Nil means a timer that
	// honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Registry resolves spec.model values to Clients. It and the Clients it returns are
// safe for concurrent use; build a new Registry when the providers file changes.
type Registry struct {
	cfg  *Config
	opts Options
}

// NewRegistry returns a Registry over a validated Config.
func NewRegistry(cfg *Config, opts Options) *Registry {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	return &Registry{cfg: cfg, opts: opts}
}

// Config returns the registry's configuration.
func (r *Registry) Config() *Config { return r.cfg }

// ModelRef is a parsed spec.model.
type ModelRef struct {
	Provider string
	// Model is everything after the first "/"; it may itself contain ':' and '/'
	// ("qwen2.5-coder:7b", "meta-llama/Llama-3.1-8B-Instruct"). Empty means the
	// provider's defaultModel.
	Model string
}

func (m ModelRef) String() string { return m.Provider + "/" + m.Model }

// ParseModelRef splits "provider/model". "provider/" and "provider" select the
// provider's default model.
func ParseModelRef(s string) (ModelRef, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ModelRef{}, &ConfigError{Field: "spec.model", Message: "is empty; write \"provider/model\", e.g. \"ollama/qwen2.5-coder:7b\""}
	}
	provider, model, _ := strings.Cut(s, "/")
	if provider == "" {
		return ModelRef{}, &ConfigError{Field: "spec.model", Message: fmt.Sprintf("%q has no provider; write \"provider/model\", e.g. \"ollama/qwen2.5-coder:7b\"", s)}
	}
	return ModelRef{Provider: provider, Model: strings.TrimSpace(model)}, nil
}

// Resolved is a ready client with its provider's settings.
type Resolved struct {
	Client   Client
	Provider ProviderConfig
	Ref      ModelRef // with the default model filled in
}

// Resolve parses spec.model, finds the provider, reads its key and builds a Client.
// Every failure is a *ConfigError (terminal, reason ProviderUnavailable) except a
// context error.
func (r *Registry) Resolve(ctx context.Context, spec string) (Resolved, error) {
	ref, err := ParseModelRef(spec)
	if err != nil {
		return Resolved{}, err
	}
	p, ok := r.cfg.Provider(ref.Provider)
	if !ok {
		return Resolved{}, &ConfigError{Provider: ref.Provider, Message: fmt.Sprintf(
			"provider %q is not configured; configured providers: %s. Fix spec.model or add the provider to the providers file",
			ref.Provider, strings.Join(r.cfg.Names(), ", "))}
	}
	if ref.Model == "" {
		if p.DefaultModel == "" {
			return Resolved{}, &ConfigError{Provider: p.Name, Message: fmt.Sprintf(
				"spec.model %q names no model and provider %q has no defaultModel; write \"%s/<model>\" or set defaultModel",
				spec, p.Name, p.Name)}
		}
		ref.Model = p.DefaultModel
	}
	key, err := r.apiKey(ctx, p)
	if err != nil {
		return Resolved{}, err
	}
	c := &client{
		provider: p,
		model:    ref.Model,
		key:      key,
		http:     r.opts.HTTPClient,
		sleep:    r.opts.Sleep,
	}
	switch p.Type {
	case TypeAnthropic:
		c.call = c.anthropicCall()
	default:
		c.call = c.openAICall()
	}
	return Resolved{Client: c, Provider: p, Ref: ref}, nil
}

func (r *Registry) apiKey(ctx context.Context, p ProviderConfig) (string, error) {
	if ref := p.APIKeySecretRef; ref != nil && r.opts.Secrets != nil {
		v, err := r.opts.Secrets(ctx, ref.Name, ref.Key)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			// The reader's error is not echoed: it is ours to describe, and keeps values out.
			return "", &ConfigError{Provider: p.Name, Message: fmt.Sprintf(
				"the API key for provider %q cannot be read from key %q of Secret %q in the operator's namespace; create the Secret or fix apiKeySecretRef",
				p.Name, ref.Key, ref.Name)}
		}
		v = strings.TrimSpace(v)
		if v == "" {
			return "", &ConfigError{Provider: p.Name, Message: fmt.Sprintf(
				"key %q of Secret %q (the API key for provider %q) is empty; put the key in it", ref.Key, ref.Name, p.Name)}
		}
		return v, nil
	}
	if p.APIKeyEnv != "" && r.opts.LookupEnv != nil {
		v, ok := r.opts.LookupEnv(p.APIKeyEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return "", &ConfigError{Provider: p.Name, Message: fmt.Sprintf(
				"environment variable %s is not set; provider %q reads its API key from it (apiKeyEnv)", p.APIKeyEnv, p.Name)}
		}
		return strings.TrimSpace(v), nil
	}
	if p.APIKeySecretRef != nil {
		return "", &ConfigError{Provider: p.Name, Message: fmt.Sprintf(
			"provider %q needs an API key from Secret %q, but no Secret reader is available here; set apiKeyEnv in the providers file for local use",
			p.Name, p.APIKeySecretRef.Name)}
	}
	return "", nil // keyless (Ollama, a local vLLM)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// IsTerminal reports whether err is a *ConfigError.
func IsTerminal(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}
