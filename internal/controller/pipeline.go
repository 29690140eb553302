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
// takes. spec.code runs as it is, with no model.
type CodegenPipeline struct {
	// Models resolves spec.model; nil means no providers are configured, and a request
	// that names a model fails with ProviderUnavailable.
	Models *models.Registry
}

// Run implements Pipeline.
func (p CodegenPipeline) Run(ctx context.Context, req pipeline.Request, exec pipeline.Exec) (pipeline.Result, error) {
	var gen *codegen.Generator
	if req.Code == "" {
		g, err := codegen.NewGenerator(ctx, p.Models, req.Model)
		if err != nil {
			return pipeline.Result{Detection: req.Input.Detection}, err
		}
		gen = g
	}
	return pipeline.Run(ctx, gen, req, exec)
}
