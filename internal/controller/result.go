package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/pipeline"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// Status field caps (the CRD's maxLength values, in bytes to be safe).
const (
	maxStreamBytes    = 16 << 10
	maxTextBytes      = 4 << 10
	maxCodeBytes      = 64 << 10
	maxErrValueBytes  = 4 << 10
	maxTracebackBytes = 16 << 10
)

// reconcileResult records a finished execution: code and execution status, then the
// artifacts, then the outcome (success, a terminal failure, or a retry). The execution
// is forgotten and its slot freed only after status has recorded it.
func (r *VisualizationRequestReconciler) reconcileResult(ctx context.Context, s *scope) (bool, error) {
	uid := s.vr.UID
	j, ok := r.Executor.Finished(uid)
	if !ok {
		return false, nil
	}
	switch {
	case j.attempt > s.vr.Status.Attempts:
		// The cache has not yet seen the status that started this attempt: wait for it.
		s.result.RequeueAfter = 200 * time.Millisecond
		return true, nil
	case j.attempt < s.vr.Status.Attempts:
		// A result of an attempt that status has moved past: never record it.
		r.Executor.Forget(uid, j)
		return false, nil
	}
	// Forgotten once status has recorded it; the slot is freed by settle (or drop) as
	// soon as the status written no longer says Admitted.
	s.afterPatch = append(s.afterPatch, func() { r.Executor.Forget(uid, j) })
	st := &s.vr.Status
	out := j.outcome
	if out.Code.Code != "" {
		st.CodeGeneration = &vizv1.CodeGenerationStatus{
			Source:         vizv1.CodeGenerationSource(out.Code.Source),
			Path:           string(out.Path),
			Template:       out.Code.Template,
			Model:          out.Code.Model,
			Attempts:       int32(out.ModelAttempts),
			FallbackReason: truncate(out.FallbackReason, 1024),
			Code:           truncate(out.Code.Code, maxCodeBytes),
			DataSource:     vizv1.ChartDataSource(out.Code.DataSource),
		}
		metrics.CodegenTotal.WithLabelValues(string(out.Path)).Inc()
		s.setCondition(vizv1.ConditionCodeGenerated, metav1.ConditionTrue, string(out.Path), codegenMessage(out), false)
	}
	if out.Detection != nil {
		st.Detection = detectionStatus(*out.Detection)
	}
	if res := out.Result; res != nil {
		recordExecution(s, j, res)
		logf.FromContext(ctx).V(1).Info("execution finished", "attempt", j.attempt, "success", res.Success,
			"timedOut", res.TimedOut, "durationMs", res.ExecutionTime.Milliseconds(), "sandbox", res.SandboxID, "files", len(res.Files))
	}

	switch {
	case j.err != nil:
		if t, ok := asTerminal(j.err); ok {
			s.setCondition(vizv1.ConditionCodeGenerated, metav1.ConditionFalse, t.Reason(), t.Error(), true)
			s.finish(vizv1.PhaseFailed, t.Reason(), t.Error())
			return true, nil
		}
		reason := vizv1.ReasonSandboxFailed
		if errors.Is(j.err, sandbox.ErrUnavailable) {
			reason = vizv1.ReasonBackendUnavailable
		}
		logf.FromContext(ctx).Error(j.err, "execution failed", "attempt", j.attempt)
		r.retryOrFail(s, reason, j.err)
		return true, nil
	case out.Detection != nil && !out.Detection.Visualization:
		msg := fmt.Sprintf("the model judged that the prompt does not ask for a chart; route it to the %s tool", out.Detection.Tool)
		s.finish(vizv1.PhaseSkipped, vizv1.ReasonNotAVisualization, msg)
		return true, nil
	case out.Result == nil:
		r.retryOrFail(s, vizv1.ReasonSandboxFailed, errors.New("the sandbox returned no result"))
		return true, nil
	}

	res := out.Result
	if err := r.storeArtifacts(ctx, s, res.Files); err != nil {
		return true, err
	}
	recordCharts(s, res)
	if s.vr.Status.Phase.Finished() { // the artifacts did not fit
		return true, nil
	}
	switch {
	case res.TimedOut:
		msg := fmt.Sprintf("the code ran longer than spec.timeoutSeconds (%ds) and was stopped; %d artifact(s) produced before that were kept. Raise timeoutSeconds or simplify the chart",
			s.vr.Spec.TimeoutSeconds, len(s.vr.Status.Artifacts))
		s.setCondition(vizv1.ConditionExecuted, metav1.ConditionFalse, vizv1.ReasonTimeout, msg, true)
		s.finish(vizv1.PhaseFailed, vizv1.ReasonTimeout, msg)
	case !res.Success && res.Error != nil && res.Error.Name == sandbox.ErrNameOutputLimitExceeded:
		msg := fmt.Sprintf("%s: %s; %d artifact(s) were kept", vizv1.ReasonOutputLimitExceeded, truncate(res.Error.Value, 1024), len(s.vr.Status.Artifacts))
		s.setCondition(vizv1.ConditionExecuted, metav1.ConditionFalse, vizv1.ReasonOutputLimitExceeded, msg, true)
		s.finish(vizv1.PhaseFailed, vizv1.ReasonOutputLimitExceeded, msg)
	case !res.Success:
		msg := "the code failed"
		if e := res.Error; e != nil {
			msg = fmt.Sprintf("the code raised %s: %s", e.Name, truncate(e.Value, 512))
		}
		msg += fmt.Sprintf("; %d artifact(s) produced before the error were kept. See status.execution.traceback (kubectl viz logs %s)", len(s.vr.Status.Artifacts), s.vr.Name)
		s.setCondition(vizv1.ConditionExecuted, metav1.ConditionFalse, vizv1.ReasonCodeError, msg, true)
		s.finish(vizv1.PhaseFailed, vizv1.ReasonCodeError, msg)
	default:
		msg := fmt.Sprintf("the code ran in %dms in sandbox %s", res.ExecutionTime.Milliseconds(), res.SandboxID)
		s.setCondition(vizv1.ConditionExecuted, metav1.ConditionTrue, vizv1.ReasonExecuted, msg, false)
		recordVerification(s, out, res)
		done := fmt.Sprintf("%d artifact(s) ready", len(s.vr.Status.Artifacts))
		if len(s.vr.Status.Artifacts) == 0 {
			done = "the code ran but produced no chart or file"
		}
		s.finish(vizv1.PhaseSucceeded, vizv1.ReasonSucceeded, done)
	}
	return true, nil
}

func recordExecution(s *scope, j *job, res *sandbox.Result) {
	ex := s.vr.Status.Execution
	if ex == nil {
		ex = &vizv1.ExecutionStatus{}
		s.vr.Status.Execution = ex
	}
	done := metav1.NewTime(s.now)
	ex.SandboxID = res.SandboxID
	ex.CompletionTime = &done
	ex.DurationMillis = res.ExecutionTime.Milliseconds()
	ex.Stdout = truncate(res.Stdout, maxStreamBytes)
	ex.Stderr = truncate(res.Stderr, maxStreamBytes)
	ex.Text = truncate(res.Text, maxTextBytes)
	ex.Error = nil
	if e := res.Error; e != nil {
		ex.Error = &vizv1.ExecutionError{
			Name:      truncate(e.Name, 256),
			Value:     truncate(e.Value, maxErrValueBytes),
			Traceback: truncate(e.Traceback, maxTracebackBytes),
		}
	}
}

func codegenMessage(out Outcome) string {
	switch out.Path {
	case codegen.PathUser:
		return "running the code given in spec.code"
	case codegen.PathTemplate:
		return fmt.Sprintf("generated from the built-in %q template", out.Code.Template)
	case codegen.PathModel:
		return fmt.Sprintf("generated by %s", out.Code.Model)
	case codegen.PathRepaired:
		return fmt.Sprintf("generated by %s and repaired after an error (%d model calls)", out.Code.Model, out.ModelAttempts)
	case codegen.PathTemplateFallback:
		return fmt.Sprintf("the model's code was not usable (%s); used the built-in %q template", out.FallbackReason, out.Code.Template)
	}
	return string(out.Path)
}

// maxChartStatusBytes bounds the chart data of one request's status (JSON): past it,
// series keep fewer points (each series' `omitted` counts the rest).
const maxChartStatusBytes = 64 << 10

// recordCharts adds the chart data read back from each figure to the figure's first
// artifact (the png when there is one), and alt text to every artifact of the figure
// (pipeline.Run already embedded it in SVG and HTML files).
func recordCharts(s *scope, res *sandbox.Result) {
	arts := s.vr.Status.Artifacts
	for _, points := range []int{chartdata.MaxPoints, 100, 30, 10, 1} {
		size := 0
		seen := map[string]bool{}
		for i := range arts {
			a := &arts[i]
			a.Chart, a.AltText = nil, ""
			cs := pipeline.ChartsOf(res.Charts, a.Name)
			if len(cs) == 0 {
				continue
			}
			a.AltText = chartdata.AltText(cs)
			if fig := pipeline.FigureOf(a.Name); !seen[fig] {
				seen[fig] = true
				a.Chart = chartStatus(cs[0], points)
				if b, err := json.Marshal(a.Chart); err == nil {
					size += len(b)
				}
			}
		}
		if size <= maxChartStatusBytes {
			return
		}
	}
}

// chartStatus converts read-back chart data to its API form (numbers as strings),
// within the CRD's bounds.
func chartStatus(c chartdata.Chart, points int) *vizv1.ChartData {
	c = chartdata.BoundPoints([]chartdata.Chart{c}, points)[0]
	out := &vizv1.ChartData{Type: string(c.Type), Library: c.Library, Title: c.Title, XLabel: c.XLabel, YLabel: c.YLabel,
		XUnit: c.XUnit, YUnit: c.YUnit, OmittedSeries: int32(c.OmittedSeries)}
	nums := func(v []float64) []string {
		if len(v) == 0 {
			return nil
		}
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = strconv.FormatFloat(x, 'g', 10, 64)
		}
		return out
	}
	for _, sr := range c.Series {
		cs := vizv1.ChartSeries{Name: sr.Name, Type: string(sr.Type), Labels: sr.Labels, X: nums(sr.X), Y: nums(sr.Y), Omitted: int32(sr.Omitted)}
		for _, b := range sr.Boxes {
			v := nums([]float64{b.Min, b.Q1, b.Median, b.Q3, b.Max})
			cs.Boxes = append(cs.Boxes, vizv1.ChartBox{Label: b.Label, Min: v[0], Q1: v[1], Median: v[2], Q3: v[3], Max: v[4]})
		}
		out.Series = append(out.Series, cs)
	}
	return out
}

// recordVerification sets the Verified condition: True when the chart shows what the
// request asked for, False with the difference, Unknown when it cannot be checked.
// It never fails the request.
func recordVerification(s *scope, out Outcome, res *sandbox.Result) {
	in := codegen.Input{Prompt: s.vr.Spec.Prompt}
	switch {
	case out.Detection != nil:
		in.Detection = *out.Detection
	case s.vr.Spec.Prompt != "":
		in.Detection = detect.Detect(s.vr.Spec.Prompt)
	}
	v := pipeline.Verify(in, out.Code, res.Charts)
	status := metav1.ConditionUnknown
	switch {
	case v.Verified:
		status = metav1.ConditionTrue
	case pipeline.ReasonMismatch(v) != "":
		status = metav1.ConditionFalse
	}
	msg := v.Message
	if out.Code.DataSource == codegen.DataIllustrative {
		msg += "; the request gave no data, so the chart shows illustrative data (said so on the chart)"
	}
	s.setCondition(vizv1.ConditionVerified, status, verifiedReason(v.Reason), msg, status == metav1.ConditionFalse)
}

// verifiedReasons maps a verdict's reason to the Verified condition's.
var verifiedReasons = map[chartdata.Reason]string{
	chartdata.ReasonChartVerified:     vizv1.ReasonChartVerified,
	chartdata.ReasonChartTypeMismatch: vizv1.ReasonChartTypeMismatch,
	chartdata.ReasonDataMismatch:      vizv1.ReasonDataMismatch,
	chartdata.ReasonSeriesMismatch:    vizv1.ReasonSeriesMismatch,
	chartdata.ReasonNotVerifiable:     vizv1.ReasonNotVerifiable,
	chartdata.ReasonDataNotAccounted:  vizv1.ReasonDataNotAccounted,
}

// verifiedReason is the Verified condition's reason for a verdict's reason.
func verifiedReason(r chartdata.Reason) string {
	if reason, ok := verifiedReasons[r]; ok {
		return reason
	}
	return string(r) // not reached: TestVerifiedReason checks every chartdata.Reason is mapped
}
