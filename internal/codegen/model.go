package codegen

import (
	"context"
	"fmt"
	"strings"

	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// Generator produces a request's code and runs it: from a model with validation,
// repair and template fallback, or from templates alone when Client is nil.
type Generator struct {
	// Client is the model; nil means templates only (Path Template).
	Client models.Client
	// MaxRepairs is how many times failing code goes back to the model (the provider's
	// maxRepairs, default 2, when built by NewGenerator). 0 means no repairs.
	MaxRepairs int
	// MaxTokens bounds each answer (models.DefaultMaxTokens when 0).
	MaxTokens int
	// Check, when set, looks at a model program's successful result and returns what
	// differs from the request (empty when nothing does). A difference goes back to
	// the model like a traceback ("ChartMismatch") once; still different, Run fails
	// with an UnfaithfulError.
	Check func(res *sandbox.Result) string
	// Unreadable, when set, says why the templates cannot draw the request faithfully
	// (empty when they can). A fallback to a template that cannot fails with an
	// UnfaithfulError (DataNotUnderstood) instead of drawing a wrong chart.
	Unreadable func(in Input) string
}

// NewGenerator builds the Generator for spec.model. An empty model gives a
// templates-only Generator. A nil registry with a model, an unknown provider or an
// unreadable key is a *models.ConfigError (terminal, reason ProviderUnavailable).
func NewGenerator(ctx context.Context, reg *models.Registry, model string) (*Generator, error) {
	if strings.TrimSpace(model) == "" {
		return &Generator{}, nil
	}
	if reg == nil {
		return nil, &models.ConfigError{Message: fmt.Sprintf(
			"spec.model is %q but no model providers are configured; configure providers (the providers file) or remove spec.model to use templates", model)}
	}
	r, err := reg.Resolve(ctx, model)
	if err != nil {
		return nil, err
	}
	g := &Generator{Client: r.Client, MaxRepairs: models.DefaultMaxRepairs}
	if r.Provider.MaxRepairs != nil {
		g.MaxRepairs = *r.Provider.MaxRepairs
	}
	return g, nil
}

// generate asks the model and prepares its answer: extract, then validate.
func (g *Generator) ask(ctx context.Context, out *Outcome, req models.Request) (string, error) {
	req.MaxTokens = g.MaxTokens
	out.Attempts++
	return g.Client.Complete(ctx, req)
}

// prepare turns an answer into code that passed validation.
func prepare(answer string, packages []string) (string, error) {
	code, err := Extract(answer)
	if err != nil {
		return "", err
	}
	if err := Validate(code, packages); err != nil {
		return code, err
	}
	return code, nil
}
