package controller

import (
	"context"

	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/models"
)

// CodegenPipeline is the production Pipeline: a model (when spec.model names one)
// refines the detection, generates code, and repairs it from tracebacks, falling back to
// the template of the detected chart type; without a model the template runs directly.
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
	in := job.Input
	var refined *detect.Result
	if gen.Client != nil {
		// On any error the keyword decision stands.
		if d, err := detect.Refine(ctx, gen.Client, in.Prompt, in.Detection); err == nil && d.Source == detect.SourceModel {
			in.Detection, refined = d, &d
			if !d.Visualization {
				return Outcome{Detection: refined}, nil
			}
		}
	}
	out, err := gen.Run(ctx, in, codegen.Exec(exec))
	return Outcome{
		Code:           out.Code,
		Path:           out.Path,
		ModelAttempts:  out.Attempts,
		FallbackReason: out.FallbackReason,
		Result:         out.Result,
		Detection:      refined,
	}, err
}
