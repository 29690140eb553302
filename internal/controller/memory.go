package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/controller/state"
)

// settle brings memory (internal/controller/state) in line with the status the pass
// just wrote; the rules are state.Memory.Settle's.
func (r *VisualizationRequestReconciler) settle(s *scope, before state.Before, stepErr error) {
	r.mem.Settle(s.vr.UID, written(s, stepErr), before)
}

// written is what a pass's status says of the request, as memory reads it.
func written(s *scope, stepErr error) state.Written {
	st := &s.vr.Status
	w := state.Written{
		Finished:  st.Phase.Finished(),
		Admitted:  meta.IsStatusConditionTrue(st.Conditions, vizv1.ConditionAdmitted),
		InBackoff: st.NextRetryTime != nil && st.NextRetryTime.After(s.now),
		KeepPlace: s.keepPlace,
		Failed:    stepErr != nil,
	}
	if st.QueuePosition != nil {
		w.QueuePosition = int(*st.QueuePosition)
	}
	return w
}
