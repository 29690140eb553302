package controller

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// reconcileTTL deletes a finished request once spec.ttlSecondsAfterFinished has
// passed since its completion; its artifact ConfigMap goes with it (owner reference).
func (r *VisualizationRequestReconciler) reconcileTTL(ctx context.Context, s *scope) (ctrl.Result, error) {
	ttl := s.vr.Spec.TTLSecondsAfterFinished
	done := s.vr.Status.CompletionTime
	if ttl == nil || done == nil {
		return ctrl.Result{}, nil
	}
	expiry := done.Add(secondsDuration(*ttl))
	if wait := expiry.Sub(r.Clock.Now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	logf.FromContext(ctx).Info("deleting finished request: its TTL passed", "ttlSecondsAfterFinished", *ttl)
	policy := metav1.DeletePropagationBackground
	err := r.Delete(ctx, s.vr, &client.DeleteOptions{PropagationPolicy: &policy})
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}
