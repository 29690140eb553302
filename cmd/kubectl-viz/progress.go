package main

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// requestProgress describes where a request is: its phase, its queue position while
// Queued, and the attempts made. The key leaves out the elapsed time.
func requestProgress(vr *vizv1.VisualizationRequest, elapsed time.Duration) (key, line string) {
	phase := string(vr.Status.Phase)
	if phase == "" {
		phase = "Pending"
	}
	parts := []string{phase}
	if vr.Status.Phase == vizv1.PhaseQueued && vr.Status.QueuePosition != nil {
		parts = append(parts, fmt.Sprintf("queue position %d", *vr.Status.QueuePosition))
	}
	if vr.Status.Attempts > 0 {
		parts = append(parts, fmt.Sprintf("attempt %d/%d", vr.Status.Attempts, max(vr.Spec.MaxAttempts, vr.Status.Attempts)))
	}
	if c := blockingCondition(vr); c != nil && !vr.Status.Phase.Finished() {
		parts = append(parts, c.Reason)
	}
	key = vr.Name + ": " + strings.Join(parts, ", ")
	return key, fmt.Sprintf("%s (%s)", key, elapsed.Truncate(time.Second))
}

// stepConditions are the request's step conditions, in the order the steps run.
var stepConditions = []string{vizv1.ConditionDetected, vizv1.ConditionCodeGenerated, vizv1.ConditionAdmitted, vizv1.ConditionExecuted, vizv1.ConditionArtifactsStored}

// blockingCondition is the first step condition that is False: what an unfinished
// request waits for (e.g. Admitted=False WaitingForPool), or nil.
func blockingCondition(vr *vizv1.VisualizationRequest) *metav1.Condition {
	for _, t := range stepConditions {
		if c := meta.FindStatusCondition(vr.Status.Conditions, t); c != nil && c.Status == metav1.ConditionFalse {
			return c
		}
	}
	return nil
}
