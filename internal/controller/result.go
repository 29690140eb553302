package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/metrics"
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
		}
		metrics.CodegenTotal.WithLabelValues(string(out.Path)).Inc()
		s.setCondition(vizv1.ConditionCodeGenerated, metav1.ConditionTrue, string(out.Path), codegenMessage(out), false)
	}
	if out.Detection != nil {
		st.Detection = detectionStatus(*out.Detection)
	}
	if res := out.Result; res != nil {
		recordExecution(s, j, res)
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
	if s.vr.Status.Phase.Finished() { // the artifacts did not fit
		return true, nil
	}
	switch {
	case res.TimedOut:
		msg := fmt.Sprintf("the code ran longer than spec.timeoutSeconds (%ds) and was stopped; %d artifact(s) produced before that were kept. Raise timeoutSeconds or simplify the chart",
			s.vr.Spec.TimeoutSeconds, len(s.vr.Status.Artifacts))
		s.setCondition(vizv1.ConditionExecuted, metav1.ConditionFalse, vizv1.ReasonTimeout, msg, true)
		s.finish(vizv1.PhaseFailed, vizv1.ReasonTimeout, msg)
	case !res.Success && res.Error != nil && res.Error.Name == vizv1.ReasonOutputLimitExceeded:
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
