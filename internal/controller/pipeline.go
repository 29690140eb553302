package controller

import (
	"context"

	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/models"
	"github.com/vizops/viz-operator/internal/pipeline"
)

// CodegenPipeline is the production Pipeline: internal/pipeline's Run (model
// refinement of the detection, code generation with repair, verification of the chart
// against the request, template fallback), the same path `kubectl viz render --local`
// takes.
type CodegenPipeline struct {
	// Models resolves spec.model; nil means no providers are configured, and a request
	// that names a model fails with ProviderUnavailable.
	Models *models.Registry
}

// Run implements Pipeline.
func (p CodegenPipeline) Run(ctx context.Context, job Job, exec ExecFunc) (Outcome, error) {
	gen, err := codegen.NewGenerator(ctx, p.Models, job.Model)
	if err != nil {
		return Outcome{}, err
	}
	res, err := pipeline.Run(ctx, gen, pipeline.Request{Input: job.Input}, codegen.Exec(exec))
	out := Outcome{
		Code:           res.Outcome.Code,
		Path:           res.Outcome.Path,
		ModelAttempts:  res.Outcome.Attempts,
		FallbackReason: res.Outcome.FallbackReason,
		Result:         res.Outcome.Result,
	}
	if res.Refined {
		d := res.Detection
		out.Detection = &d
	}
	return out, err
}
