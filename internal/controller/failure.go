package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/metrics"
)

// terminalError is implemented by errors that no retry can fix (an unknown model
// provider, a missing Secret): the request fails with Reason().
type terminalError interface {
	error
	Reason() string
}

// retryOrFail records a transient failure of the current attempt: it schedules the
// next attempt with exponential backoff from the attempt count in status (so a
// restarted operator resumes the same schedule), or fails the request with
// BackoffLimitExceeded when the attempts are used up.
func (r *VisualizationRequestReconciler) retryOrFail(s *scope, reason string, cause error) {
	st := &s.vr.Status
	if st.Attempts >= s.vr.Spec.MaxAttempts {
		msg := fmt.Sprintf("gave up after %d of %d attempts (spec.maxAttempts); last failure: %s: %v",
			st.Attempts, s.vr.Spec.MaxAttempts, reason, cause)
		s.setCondition(vizv1.ConditionExecuted, metav1.ConditionFalse, vizv1.ReasonBackoffLimit, msg, true)
		s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, vizv1.ReasonBackoffLimit, msg, false)
		s.finish(vizv1.PhaseFailed, vizv1.ReasonBackoffLimit, msg)
		return
	}
	delay := backoff(st.Attempts, r.BackoffBase, r.BackoffMax)
	next := metav1.NewTime(s.now.Add(delay))
	st.NextRetryTime = &next
	msg := fmt.Sprintf("attempt %d of %d failed (%s: %v); retrying in %s",
		st.Attempts, s.vr.Spec.MaxAttempts, reason, cause, delay.Round(time.Second))
	s.setCondition(vizv1.ConditionExecuted, metav1.ConditionFalse, reason, msg, true)
	s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, vizv1.ReasonRetrying, msg, false)
	s.result.RequeueAfter = delay
	metrics.RetriesTotal.WithLabelValues(reason).Inc()
}

// backoff is base·2^(attempts-1), at most limit.
func backoff(attempts int32, base, limit time.Duration) time.Duration {
	d := base
	for i := int32(1); i < attempts && d < limit; i++ {
		d *= 2
	}
	if d > limit {
		d = limit
	}
	return d
}

// reconcileBackoff holds a request until its next retry time.
func (r *VisualizationRequestReconciler) reconcileBackoff(_ context.Context, s *scope) (bool, error) {
	next := s.vr.Status.NextRetryTime
	if next == nil || r.Executor.Running(s.vr.UID) {
		return false, nil
	}
	if wait := next.Sub(s.now); wait > 0 {
		s.result.RequeueAfter = wait
		return true, nil
	}
	return false, nil
}

func asTerminal(err error) (terminalError, bool) {
	var t terminalError
	if errors.As(err, &t) {
		return t, true
	}
	return nil, false
}
