package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/metrics"
)

// reconcileDetection classifies the prompt once (keywords; a model may refine it
// during execution). A prompt that is not a visualization ends Skipped with the tool
// to route it to; spec.code skips detection.
func (r *VisualizationRequestReconciler) reconcileDetection(_ context.Context, s *scope) (bool, error) {
	if meta.IsStatusConditionTrue(s.vr.Status.Conditions, vizv1.ConditionDetected) {
		return false, nil
	}
	var d detect.Result
	if s.vr.Spec.Code != "" {
		d = detect.Result{Visualization: true, Tool: detect.ToolCodeInterpreter, Source: detect.SourceUser}
	} else {
		d = detect.Detect(s.vr.Spec.Prompt)
	}
	s.vr.Status.Detection = detectionStatus(d)
	metrics.ChartRequestsTotal.WithLabelValues(string(d.ChartType), string(d.Tool)).Inc()
	if !d.Visualization {
		msg := fmt.Sprintf("the prompt does not ask for a chart; route it to the %s tool instead", d.Tool)
		s.setCondition(vizv1.ConditionDetected, metav1.ConditionTrue, vizv1.ReasonNotAVisualization, msg, false)
		s.finish(vizv1.PhaseSkipped, vizv1.ReasonNotAVisualization, msg)
		return true, nil
	}
	msg := "code given in spec.code; detection skipped"
	if d.Source != detect.SourceUser {
		msg = fmt.Sprintf("a %s chart was requested (tool %s)", chartName(d.ChartType), d.Tool)
	}
	s.setCondition(vizv1.ConditionDetected, metav1.ConditionTrue, vizv1.ReasonVisualizationDetected, msg, false)
	return false, nil
}

func detectionStatus(d detect.Result) *vizv1.DetectionStatus {
	kw := d.Keywords
	if len(kw) > 10 {
		kw = kw[:10]
	}
	out := &vizv1.DetectionStatus{
		Visualization: d.Visualization,
		Tool:          string(d.Tool),
		ChartType:     string(d.ChartType),
		Source:        string(d.Source),
	}
	for _, k := range kw {
		out.Keywords = append(out.Keywords, truncate(k, 64))
	}
	return out
}

func chartName(c detect.ChartType) string {
	if c == "" || c == detect.ChartAuto {
		return "suitable"
	}
	return string(c)
}
