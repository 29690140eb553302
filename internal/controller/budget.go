package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/controller/state"
)

// DefaultStatusBudgetBytes bounds a request as stored (metadata, spec and status). etcd
// refuses requests over 1.5 MiB by default; the rest is headroom for managedFields and
// the API server's own additions.
const DefaultStatusBudgetBytes = 1200 << 10

// Stream caps used when the whole object does not fit the budget.
const tightStreamBytes = 2 << 10

// objectSize is the request's serialized size.
func objectSize(vr *vizv1.VisualizationRequest) int {
	b, err := json.Marshal(vr)
	if err != nil {
		return 0
	}
	return len(b)
}

// roomForStatus is how many bytes the request's status may use under the budget: the
// budget less what metadata and spec take.
func (r *VisualizationRequestReconciler) roomForStatus(vr *vizv1.VisualizationRequest) int {
	shell := vr.DeepCopy()
	shell.Status = vizv1.VisualizationRequestStatus{}
	shell.ManagedFields = nil
	return r.StatusBudgetBytes - objectSize(shell)
}

// fitStatus keeps the request within StatusBudgetBytes: it cuts the streams, code and
// traceback further, and when that is not enough it fails the request with
// StatusTooLarge, keeping only what fits. Artifacts were already placed against the same
// budget (storeArtifacts spills them to a ConfigMap).
func (r *VisualizationRequestReconciler) fitStatus(s *scope) {
	size := objectSize(s.vr)
	if size <= r.StatusBudgetBytes {
		return
	}
	st := &s.vr.Status
	if ex := st.Execution; ex != nil {
		ex.Stdout = truncate(ex.Stdout, tightStreamBytes)
		ex.Stderr = truncate(ex.Stderr, tightStreamBytes)
		ex.Text = truncate(ex.Text, tightStreamBytes)
		if ex.Error != nil {
			ex.Error.Value = truncate(ex.Error.Value, tightStreamBytes)
			ex.Error.Traceback = truncate(ex.Error.Traceback, tightStreamBytes)
		}
	}
	if cg := st.CodeGeneration; cg != nil {
		cg.Code = truncate(cg.Code, 4*tightStreamBytes)
	}
	after := objectSize(s.vr)
	if after <= r.StatusBudgetBytes {
		return
	}
	// Nothing more can go: the metadata and spec themselves leave no room.
	var inline int
	for _, a := range st.Artifacts {
		inline += len(a.Data)
	}
	msg := fmt.Sprintf("the request would be stored as %s (metadata and spec %s, inline artifacts %s), over the %s the operator keeps a request within (etcd's limit is 1.5 MiB); shrink metadata.annotations or spec.data.csv, or use artifactStorage: ConfigMap",
		humanBytes(after), humanBytes(r.StatusBudgetBytes-r.roomForStatus(s.vr)), humanBytes(inline), humanBytes(r.StatusBudgetBytes))
	stripForTooLarge(st)
	s.setCondition(vizv1.ConditionExecuted, metav1.ConditionFalse, vizv1.ReasonStatusTooLarge, msg, true)
	s.finish(vizv1.PhaseFailed, vizv1.ReasonStatusTooLarge, msg)
}

// stripForTooLarge drops the bulky parts of a status that cannot be stored.
func stripForTooLarge(st *vizv1.VisualizationRequestStatus) {
	for i := range st.Artifacts {
		st.Artifacts[i].Data = nil
	}
	st.Artifacts = nil
	if ex := st.Execution; ex != nil {
		ex.Stdout, ex.Stderr, ex.Text = "", "", ""
		if ex.Error != nil {
			ex.Error.Traceback = ""
		}
	}
	if cg := st.CodeGeneration; cg != nil {
		cg.Code = ""
	}
}

// isTooLarge reports the API server's or etcd's refusal of an object for its size.
func isTooLarge(err error) bool {
	if apierrors.IsRequestEntityTooLargeError(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "request is too large") || strings.Contains(msg, "Too long: may not be more than") ||
		strings.Contains(msg, "exceeds the maximum")
}

// failTooLarge ends a request whose status write was refused for its size, which the
// budget should prevent: it writes a small terminal status instead of retrying forever.
func (r *VisualizationRequestReconciler) failTooLarge(ctx context.Context, s *scope, cause error) (ctrl.Result, error) {
	logf.FromContext(ctx).Error(cause, "status refused for its size; failing the request")
	cur := &vizv1.VisualizationRequest{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(s.vr), cur); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	fs := newScope(cur, s.now)
	stripForTooLarge(&fs.vr.Status)
	msg := fmt.Sprintf("the API server refused the request's status for its size (%v); shrink metadata.annotations or spec.data.csv, or use artifactStorage: ConfigMap", truncate(cause.Error(), 256))
	fs.setCondition(vizv1.ConditionExecuted, metav1.ConditionFalse, vizv1.ReasonStatusTooLarge, msg, true)
	fs.finish(vizv1.PhaseFailed, vizv1.ReasonStatusTooLarge, msg)
	if err := r.patchStatus(ctx, fs); err != nil {
		return ctrl.Result{}, err
	}
	r.emit(fs)
	r.settle(fs, state.Before{}, nil)
	return ctrl.Result{}, nil
}

func humanBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
