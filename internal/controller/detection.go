package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/requeststatus"
)

// userDetection is a spec.code request's detection: no detection ran.
var userDetection = detect.Result{Visualization: true, Tool: detect.ToolCodeInterpreter, Source: detect.SourceUser}

// reconcileDetection classifies the prompt once (keywords; a model may refine it
// during execution). A prompt that is not a visualization ends Skipped with the tool
// to route it to; spec.code skips detection.
func (r *VisualizationRequestReconciler) reconcileDetection(_ context.Context, s *scope) (bool, error) {
	if meta.IsStatusConditionTrue(s.vr.Status.Conditions, vizv1.ConditionDetected) {
		return false, nil
	}
	d := userDetection
	if s.vr.Spec.Code == "" {
		d = r.detection(s.vr)
	}
	s.vr.Status.Detection = requeststatus.Detection(d)
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

// detection is the request's keyword detection of spec.prompt, run once per request:
// intake records its summary in status, and the execution hands the whole of it to the
// pipeline, which does not detect again. The spec is immutable, so it is remembered by
// UID until the request finishes or goes (internal/controller/state); a manager restarted in
// between reads the prompt once more.
func (r *VisualizationRequestReconciler) detection(vr *vizv1.VisualizationRequest) detect.Result {
	if d, ok := r.mem.Detection(vr.UID); ok {
		return d
	}
	detectFn := r.Detect
	if detectFn == nil {
		detectFn = detect.Detect
	}
	d := detectFn(vr.Spec.Prompt)
	r.mem.SetDetection(vr.UID, d)
	return d
}

func chartName(c detect.ChartType) string {
	if c == "" || c == detect.ChartAuto {
		return "suitable"
	}
	return string(c)
}
