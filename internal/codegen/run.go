package codegen

import (
	"context"
	"errors"
	"fmt"

	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// Exec runs code in a sandbox (the caller adds data files, formats and timeout). Its
// error means the sandbox failed, not the code.
type Exec func(ctx context.Context, code string) (*sandbox.Result, error)

// Outcome is how a request's code came about and what running it gave.
type Outcome struct {
	// Code is the code that ran last (the fallback template's after a fallback).
	Code Code
	// Path is Template, Model, Repaired or TemplateFallback.
	Path Path
	// Attempts counts model calls made (first answer and repairs, failed calls included).
	Attempts int
	// Repairs counts repair requests sent to the model.
	Repairs int
	// Result is the last execution's result (nil when nothing ran).
	Result *sandbox.Result
	// FallbackReason says why the model's code was abandoned for the template (empty
	// unless Path is TemplateFallback). It never contains secrets.
	FallbackReason string
}

// Run generates code for in and runs it with exec.
//
// Without a model it fills the template (Path Template). With one: generate, extract,
// validate, execute; when the code raises (Result.Success false, not a timeout) or runs
// but produces no artifact (a "NoFigure" failure), the
// traceback tail and the code go back to the model, up to MaxRepairs times (Path
// Repaired when a repair ran). It falls back to the template of the detected chart
// type (Path TemplateFallback, FallbackReason set) when the model is unavailable
// (*models.UnavailableError), answers unusably (*models.ResponseError, no code, code
// rejected by Validate), times out in the sandbox, or still fails after the repairs.
//
// Errors: a *models.ConfigError (terminal) is returned; exec's error (the sandbox
// failed, transient) is returned as-is so the caller can retry; the context's error;
// and an error from FromTemplate (e.g. unreadable CSV) when the template path is taken.
// The Outcome is filled as far as it got in every case.
func (g *Generator) Run(ctx context.Context, in Input, exec Exec) (Outcome, error) {
	if g == nil || g.Client == nil {
		return runTemplate(ctx, in, exec, Outcome{Path: PathTemplate})
	}
	var out Outcome
	packages := packagesOf(in)
	answer, err := g.ask(ctx, &out, modelsRequest(SystemPrompt(in), UserPrompt(in)))
	if err != nil {
		return g.degrade(ctx, in, exec, out, "the model is unavailable", err)
	}
	code, err := prepare(answer, packages)
	if err != nil {
		return g.degrade(ctx, in, exec, out, "the model's answer was unusable", err)
	}
	mismatchRepaired := false
	for {
		res, err := exec(ctx, code)
		out.Code = Code{Code: code, Source: SourceModel, Model: g.Client.Name()}
		out.Result = res
		if err != nil {
			return out, err
		}
		mismatch := ""
		if res.Success && len(res.Files) > 0 && g.Check != nil {
			mismatch = g.Check(res)
		}
		if res.Success && len(res.Files) > 0 && mismatch == "" {
			out.Path = PathModel
			if out.Repairs > 0 {
				out.Path = PathRepaired
			}
			return out, nil
		}
		f := failureOf(res)
		if mismatch != "" && (mismatchRepaired || out.Repairs >= g.MaxRepairs) {
			// One repair round with the verifier's message; then the request fails
			// clearly rather than falling back to a template that may be as wrong.
			what := "after a repair round"
			if !mismatchRepaired {
				what = "and repairs are off (maxRepairs 0)"
			}
			return out, &UnfaithfulError{Why: ReasonDataNotAccounted,
				Message: fmt.Sprintf("the model's chart does not show the request's data %s: %s", what, mismatch)}
		}
		switch {
		case mismatch != "":
			mismatchRepaired = true
			// It drew a chart, but not the one asked for: as repairable as an error.
			f = Failure{Name: "ChartMismatch", Value: mismatch + "; plot exactly the numbers and labels the request gives"}
		case res.Success:
			// It ran, but drew nothing: as useless as an exception, and as repairable.
			f = Failure{Name: "NoFigure", Value: "the program ran without errors but produced no chart; draw the chart and end with plt.show() (fig.show() for plotly)", Stderr: res.Stdout}
		}
		if res.TimedOut {
			return g.fallback(ctx, in, exec, out, "the model's program timed out in the sandbox: "+f.Summary())
		}
		if out.Repairs >= g.MaxRepairs {
			reason := fmt.Sprintf("the model's program failed (%s) and repairs are off (maxRepairs 0)", f.Summary())
			if g.MaxRepairs > 0 {
				reason = fmt.Sprintf("the model's program still failed after %d repairs: %s", out.Repairs, f.Summary())
			}
			return g.fallback(ctx, in, exec, out, reason)
		}
		out.Repairs++
		answer, err := g.ask(ctx, &out, modelsRequest(SystemPrompt(in), RepairPrompt(in, code, f)))
		if err != nil {
			return g.degrade(ctx, in, exec, out, "the model is unavailable for a repair", err)
		}
		fixed, err := prepare(answer, packages)
		if err != nil {
			return g.degrade(ctx, in, exec, out, "the model's repair was unusable", err)
		}
		code = fixed
	}
}

func modelsRequest(system, user string) models.Request {
	return models.Request{System: system, User: user}
}

// degrade decides what a model or preparation error means: terminal (returned), the
// caller's context ending (returned), or a reason to fall back to the template.
func (g *Generator) degrade(ctx context.Context, in Input, exec Exec, out Outcome, what string, err error) (Outcome, error) {
	var ce *models.ConfigError
	if errors.As(err, &ce) {
		return out, err
	}
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	return g.fallback(ctx, in, exec, out, what+": "+err.Error())
}

func (g *Generator) fallback(ctx context.Context, in Input, exec Exec, out Outcome, reason string) (Outcome, error) {
	out.Path = PathTemplateFallback
	out.FallbackReason = reason
	if g.Unreadable != nil {
		if why := g.Unreadable(in); why != "" {
			return out, &UnfaithfulError{Why: ReasonDataNotUnderstood, Message: reason + "; and " + why}
		}
	}
	return runTemplate(ctx, in, exec, out)
}

func runTemplate(ctx context.Context, in Input, exec Exec, out Outcome) (Outcome, error) {
	code, err := FromTemplate(in)
	if err != nil {
		if out.FallbackReason != "" {
			return out, fmt.Errorf("%s, and no template could be filled: %w", out.FallbackReason, err)
		}
		return out, err
	}
	out.Code = code
	res, err := exec(ctx, code.Code)
	out.Result = res
	return out, err
}

func failureOf(res *sandbox.Result) Failure {
	f := Failure{Stderr: res.Stderr}
	if res.Error != nil {
		f.Name, f.Value, f.Traceback = res.Error.Name, res.Error.Value, res.Error.Traceback
	}
	return f
}
