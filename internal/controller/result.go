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
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/pipeline"
	"github.com/vizops/viz-operator/internal/requeststatus"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// Status field caps (the CRD's maxLength values, in bytes to be safe).
const (
	maxStreamBytes    = 16 << 10
	maxTextBytes      = 4 << 10
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
	res, rs := recordPipelineResult(s, j.result, j.err)
	if res != nil {
		recordExecution(s, j, res)
		logf.FromContext(ctx).V(1).Info("execution finished", "attempt", j.attempt, "success", res.Success, "endedMsAgo", msSince(j.finished),
			"timedOut", res.TimedOut, "durationMs", res.ExecutionTime.Milliseconds(), "sandbox", res.SandboxID, "files", len(res.Files))
	}

	switch {
	case rs.Failed != nil:
		setCondition(s, *rs.Failed)
		s.finish(vizv1.PhaseFailed, rs.Failed.Reason, rs.Failed.Message)
		return true, nil
	case j.err != nil:
		reason := vizv1.ReasonSandboxFailed
		if errors.Is(j.err, sandbox.ErrUnavailable) {
			reason = vizv1.ReasonBackendUnavailable
		}
		logf.FromContext(ctx).Error(j.err, "execution failed", "attempt", j.attempt)
		r.retryOrFail(s, reason, j.err)
		return true, nil
	case rs.NotAVisualization != "":
		s.finish(vizv1.PhaseSkipped, vizv1.ReasonNotAVisualization, rs.NotAVisualization)
		return true, nil
	case res == nil:
		r.retryOrFail(s, vizv1.ReasonSandboxFailed, errors.New("the sandbox returned no result"))
		return true, nil
	}
	if err := r.storeArtifacts(ctx, s, res.Files); err != nil {
		return true, err
	}
	recordCharts(s, j.result.Charts)
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
		if rs.Verified != nil {
			setCondition(s, *rs.Verified)
		}
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

// recordPipelineResult writes what the pipeline decided, mapped by
// internal/requeststatus as `kubectl viz render --local` maps it: status.codeGeneration
// and CodeGenerated, and status.detection when a model refined it. It returns the
// last execution's result (nil when nothing ran) and the mapping, for the outcome.
func recordPipelineResult(s *scope, pres pipeline.Result, err error) (*sandbox.Result, requeststatus.Status) {
	rs := requeststatus.Of(pres, err)
	if rs.CodeGeneration != nil {
		s.vr.Status.CodeGeneration = rs.CodeGeneration
		metrics.CodegenTotal.WithLabelValues(rs.CodeGeneration.Path).Inc()
		setCondition(s, *rs.CodeGenerated)
	}
	if rs.Detection != nil {
		s.vr.Status.Detection = rs.Detection
	}
	return pres.Outcome.Result, rs
}

// setCondition sets a condition requeststatus decided.
func setCondition(s *scope, c requeststatus.Condition) {
	s.setCondition(c.Type, c.Status, c.Reason, c.Message, c.Warning)
}

// maxChartStatusBytes bounds the chart data of one request's status (JSON): past it,
// series keep fewer points (each series' `omitted` counts the rest).
const maxChartStatusBytes = 64 << 10

// recordCharts adds the chart data read back from each figure to the figure's first
// artifact (the png when there is one), and alt text to every artifact of the figure
// (pipeline.Run already embedded it in SVG and HTML files).
func recordCharts(s *scope, charts []chartdata.Chart) {
	arts := s.vr.Status.Artifacts
	for _, points := range []int{chartdata.MaxPoints, 100, 30, 10, 1} {
		size := 0
		seen := map[string]bool{}
		for i := range arts {
			a := &arts[i]
			a.Chart, a.AltText = nil, ""
			cs := pipeline.ChartsOf(charts, a.Name)
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
