package controller

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// poolKey is the SandboxPool a request uses.
func poolKey(vr *vizv1.VisualizationRequest) types.NamespacedName {
	ns := vr.Spec.SandboxPoolRef.Namespace
	if ns == "" {
		ns = vr.Namespace
	}
	name := vr.Spec.SandboxPoolRef.Name
	if name == "" {
		name = "default"
	}
	return types.NamespacedName{Namespace: ns, Name: name}
}

// reconcilePool checks that the request's pool exists and admits its namespace. A
// missing pool is waited for briefly (pools and requests are often applied together),
// then the request fails with PoolNotFound.
func (r *VisualizationRequestReconciler) reconcilePool(ctx context.Context, s *scope) (bool, error) {
	key := poolKey(s.vr)
	if len(r.WatchNamespaces) > 0 && !slices.Contains(r.WatchNamespaces, key.Namespace) {
		msg := fmt.Sprintf("SandboxPool %s is in namespace %q, which this operator does not watch (its --watch-namespaces, the chart's watchNamespaces); use a pool in a watched namespace, or ask the platform team to watch %q", key, key.Namespace, key.Namespace)
		s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, vizv1.ReasonPoolNotFound, msg, true)
		s.finish(vizv1.PhaseFailed, vizv1.ReasonPoolNotFound, msg)
		return true, nil
	}
	pool := &vizv1.SandboxPool{}
	if err := r.Get(ctx, key, pool); err != nil {
		if !apierrors.IsNotFound(err) {
			return true, err
		}
		if r.Executor.Running(s.vr.UID) {
			// The pool went away mid-run; the execution fails and is handled then.
			return false, nil
		}
		waited := s.now.Sub(s.vr.CreationTimestamp.Time)
		msg := fmt.Sprintf("SandboxPool %s not found; create it or set spec.sandboxPoolRef to an existing pool", key)
		if waited < r.PoolNotFoundGrace {
			s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, vizv1.ReasonWaitingForPool, msg, false)
			s.result.RequeueAfter = r.PoolNotFoundGrace - waited
			return true, nil
		}
		s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, vizv1.ReasonPoolNotFound, msg, true)
		s.finish(vizv1.PhaseFailed, vizv1.ReasonPoolNotFound, msg)
		return true, nil
	}
	allowed, err := r.poolAdmitsNamespace(ctx, pool, s.vr.Namespace)
	if err != nil {
		return true, err
	}
	if !allowed {
		msg := fmt.Sprintf("SandboxPool %s does not admit requests from namespace %q: add the namespace to the pool's spec.namespaceSelector, or use a pool in this namespace", key, s.vr.Namespace)
		s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, vizv1.ReasonPoolNotAllowed, msg, true)
		s.finish(vizv1.PhaseFailed, vizv1.ReasonPoolNotAllowed, msg)
		return true, nil
	}
	r.mem.SetPoolCap(key.String(), int(pool.Spec.MaxSandboxes))
	s.pool = pool
	return false, nil
}

// poolAdmitsNamespace applies the pool's namespaceSelector: unset admits only the
// pool's own namespace (as kueue's ClusterQueue namespaceSelector does for its queue).
func (r *VisualizationRequestReconciler) poolAdmitsNamespace(ctx context.Context, pool *vizv1.SandboxPool, ns string) (bool, error) {
	if ns == pool.Namespace {
		return true, nil
	}
	if pool.Spec.NamespaceSelector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(pool.Spec.NamespaceSelector)
	if err != nil {
		// The API server validates selectors; one that still does not parse admits no one.
		return false, nil //nolint:nilerr // a refusal, not an error to retry
	}
	nsObj := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: ns}, nsObj); err != nil {
		return false, client404(err)
	}
	return sel.Matches(labels.Set(nsObj.Labels)), nil
}

func client404(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// poolReady reports the pool's Ready condition message when it is not ready.
func poolReady(pool *vizv1.SandboxPool) (bool, string) {
	c := meta.FindStatusCondition(pool.Status.Conditions, vizv1.PoolConditionReady)
	if c == nil {
		return false, "the pool is starting"
	}
	return c.Status == metav1.ConditionTrue, c.Message
}

func reqKey(vr *vizv1.VisualizationRequest) types.NamespacedName {
	return types.NamespacedName{Namespace: vr.Namespace, Name: vr.Name}
}
