package controller

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/requeststatus"
)

// scope is one reconcile pass over one request: the object as read, the object as it
// will be written, and what to do after the single status write.
type scope struct {
	before     *vizv1.VisualizationRequest
	vr         *vizv1.VisualizationRequest
	pool       *vizv1.SandboxPool // set by reconcilePool
	now        time.Time
	result     ctrl.Result
	events     []eventRecord
	afterPatch []func()
	// keepPlace gives an admitted request's slot back at the end of the pass while it
	// stays first in its queue (its pool is not live yet: admitting the next one would
	// only meet the same wait).
	keepPlace bool
}

type eventRecord struct{ kind, reason, action, message string }

func newScope(vr *vizv1.VisualizationRequest, now time.Time) *scope {
	return &scope{before: vr.DeepCopy(), vr: vr, now: now}
}

// setCondition sets a condition with observedGeneration and records an Event when it
// is new or changed (Normal when True or progressing, Warning for trouble).
func (s *scope) setCondition(condType string, status metav1.ConditionStatus, reason, message string, warning bool) {
	// Copy: FindStatusCondition points into the slice SetStatusCondition changes.
	var prev *metav1.Condition
	if c := meta.FindStatusCondition(s.vr.Status.Conditions, condType); c != nil {
		cp := *c
		prev = &cp
	}
	meta.SetStatusCondition(&s.vr.Status.Conditions, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            truncate(message, 32*1024),
		ObservedGeneration: s.vr.Generation,
		LastTransitionTime: metav1.NewTime(s.now),
	})
	if prev != nil && prev.Status == status && prev.Reason == reason && prev.Message == message {
		return
	}
	kind := corev1.EventTypeNormal
	if warning {
		kind = corev1.EventTypeWarning
	}
	s.events = append(s.events, eventRecord{kind: kind, reason: reason, action: condType, message: truncate(message, 1024)})
}

// eventsToRecord coalesces the Events the pass collected, so that a request costs an
// Event per thing a person would act on, not one per step: every Warning (trouble: a
// failed attempt, a dropped artifact, a chart that does not match), once per reason, and
// the outcome (Ready's Event) in the pass that finishes the request. Progress that the
// phase and conditions already show (Detected, Admitted, Running, CodeGenerated,
// Executed, ArtifactsStored, a Verified that is not False) records no Event: a request
// admitted at once costs two status patches and one Event.
func (s *scope) eventsToRecord() []eventRecord {
	finishing := s.vr.Status.Phase.Finished() && !s.before.Status.Phase.Finished()
	last := map[string]int{} // a Warning's reason → its last index
	for i, e := range s.events {
		if e.kind == corev1.EventTypeWarning {
			last[e.reason] = i
		}
	}
	var out []eventRecord
	for i, e := range s.events {
		switch {
		case e.kind == corev1.EventTypeWarning:
			if last[e.reason] == i { // the latest message of a reason (Ready's, when finishing)
				out = append(out, e)
			}
		case finishing && e.action == vizv1.ConditionReady:
			out = append(out, e)
		}
	}
	return out
}

// finish ends the request: phase is derived from the Ready condition.
func (s *scope) finish(phase vizv1.Phase, reason, message string) {
	status := metav1.ConditionFalse
	if phase == vizv1.PhaseSucceeded {
		status = metav1.ConditionTrue
	}
	s.vr.Status.Phase = phase
	s.vr.Status.QueuePosition = nil
	s.vr.Status.NextRetryTime = nil
	t := metav1.NewTime(s.now)
	s.vr.Status.CompletionTime = &t
	s.setCondition(vizv1.ConditionReady, status, reason, message, phase == vizv1.PhaseFailed)
	// No condition of a finished request stays in progress: a step still Unknown ends
	// with the request's reason, and the slot is given back. (No Events: Ready's says it.)
	// Verified is exempt: its Unknown means "could not be verified", a final answer.
	for i := range s.vr.Status.Conditions {
		c := &s.vr.Status.Conditions[i]
		switch {
		case c.Type == vizv1.ConditionReady, c.Type == vizv1.ConditionVerified:
			// Verified=Unknown is an outcome (the chart could not be checked), not progress.
		case c.Type == vizv1.ConditionAdmitted && c.Status == metav1.ConditionTrue:
			meta.SetStatusCondition(&s.vr.Status.Conditions, metav1.Condition{
				Type: c.Type, Status: metav1.ConditionFalse, Reason: vizv1.ReasonSlotReleased,
				Message: "the request finished; its sandbox slot was released", ObservedGeneration: s.vr.Generation,
				LastTransitionTime: metav1.NewTime(s.now),
			})
		case c.Status == metav1.ConditionUnknown:
			meta.SetStatusCondition(&s.vr.Status.Conditions, metav1.Condition{
				Type: c.Type, Status: metav1.ConditionFalse, Reason: reason,
				Message: truncate(message, 32*1024), ObservedGeneration: s.vr.Generation,
				LastTransitionTime: metav1.NewTime(s.now),
			})
		}
	}
}

// computePhase derives the phase from the conditions: the one place phase is set for
// unfinished requests.
func (s *scope) computePhase() {
	st := &s.vr.Status
	if st.Phase.Finished() {
		return
	}
	admitted := meta.FindStatusCondition(st.Conditions, vizv1.ConditionAdmitted)
	switch {
	case admitted != nil && admitted.Status == metav1.ConditionTrue:
		st.Phase = vizv1.PhaseRunning
		st.QueuePosition = nil
	case admitted != nil && admitted.Reason == vizv1.ReasonQueued:
		st.Phase = vizv1.PhaseQueued
	default:
		st.Phase = vizv1.PhasePending
		st.QueuePosition = nil
	}
	if st.Phase == vizv1.PhasePending && meta.FindStatusCondition(st.Conditions, vizv1.ConditionReady) == nil {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: vizv1.ConditionReady, Status: metav1.ConditionFalse, Reason: vizv1.ReasonInProgress,
			Message: "the request is being processed", ObservedGeneration: s.vr.Generation,
			LastTransitionTime: metav1.NewTime(s.now),
		})
	}
}

// observeFinished counts a finished request once (the pass that finished it).
func observeFinished(vr *vizv1.VisualizationRequest) {
	reason := ""
	if c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionReady); c != nil {
		reason = c.Reason
	}
	metrics.RequestsTotal.WithLabelValues(string(vr.Status.Phase), reason).Inc()
}

// truncate cuts s to at most n bytes with a visible marker.
func truncate(s string, n int) string { return requeststatus.Truncate(s, n) }
