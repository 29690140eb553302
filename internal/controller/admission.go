package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/metrics"
)

// seeder fills the admission queue from live state once, before the first decision:
// requests that status says hold a slot keep it, so the caps hold across a restart.
type seeder struct {
	mu   sync.Mutex
	done bool
}

func (s *seeder) once(ctx context.Context, c client.Client, q *admission.Queue) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	var list vizv1.VisualizationRequestList
	if err := c.List(ctx, &list); err != nil {
		return fmt.Errorf("listing requests to seed the admission queue: %w", err)
	}
	n := 0
	for i := range list.Items {
		vr := &list.Items[i]
		if !vr.Status.Phase.Finished() && meta.IsStatusConditionTrue(vr.Status.Conditions, vizv1.ConditionAdmitted) {
			q.MarkRunning(reqKey(vr).String(), poolKey(vr).String())
			n++
		}
	}
	logf.FromContext(ctx).Info("admission queue seeded from live state", "running", n)
	s.done = true
	return nil
}

// reconcileAdmission asks the queue for a slot under the pool's and the operator's
// caps. A request that must wait is Queued with its position; it is woken when a slot
// frees (no polling).
func (r *VisualizationRequestReconciler) reconcileAdmission(ctx context.Context, s *scope) (bool, error) {
	key := reqKey(s.vr)
	if r.Executor.Running(key) {
		return false, nil
	}
	pk := poolKey(s.vr)
	waiting, err := r.waitingFor(ctx, pk, s.now)
	if err != nil {
		return true, err
	}
	r.Queue.Enqueue(waiting...)
	d := r.Queue.Admit(admission.Item{Key: key.String(), Pool: pk.String(), Created: s.vr.CreationTimestamp.Time})
	defer updateQueueGauges(r.Queue)
	for _, k := range d.Others {
		r.Executor.Wake(parseKey(k))
	}
	if d.Admitted {
		return false, nil
	}
	pos := int32(d.Position)
	s.vr.Status.QueuePosition = &pos
	_, inPool := r.Queue.Running(pk.String())
	msg := fmt.Sprintf("waiting for a sandbox slot: position %d in pool %s (%d running there)", pos, pk, inPool)
	// Position changes are not Events (they would flood); only entering the queue is.
	prev := meta.FindStatusCondition(s.vr.Status.Conditions, vizv1.ConditionAdmitted)
	if prev != nil && prev.Reason == reasonQueued {
		meta.SetStatusCondition(&s.vr.Status.Conditions, metav1.Condition{
			Type: vizv1.ConditionAdmitted, Status: metav1.ConditionFalse, Reason: reasonQueued,
			Message: msg, ObservedGeneration: s.vr.Generation,
		})
		return true, nil
	}
	s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, reasonQueued, msg, false)
	return true, nil
}

// waitingFor lists, from the cache, the requests that wait for a slot of pool: past
// detection, not admitted, not finished, not in backoff. It is linear in the number of
// requests; an index by pool is the next step if that ever matters.
func (r *VisualizationRequestReconciler) waitingFor(ctx context.Context, pool types.NamespacedName, now time.Time) ([]admission.Item, error) {
	var list vizv1.VisualizationRequestList
	if err := r.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []admission.Item
	for i := range list.Items {
		vr := &list.Items[i]
		st := vr.Status
		if st.Phase.Finished() || poolKey(vr) != pool ||
			!meta.IsStatusConditionTrue(st.Conditions, vizv1.ConditionDetected) ||
			meta.IsStatusConditionTrue(st.Conditions, vizv1.ConditionAdmitted) ||
			(st.NextRetryTime != nil && st.NextRetryTime.After(now)) {
			continue
		}
		out = append(out, admission.Item{Key: reqKey(vr).String(), Pool: pool.String(), Created: vr.CreationTimestamp.Time})
	}
	return out, nil
}

func updateQueueGauges(q *admission.Queue) {
	metrics.QueueDepth.Set(float64(q.Waiting()))
	total, _ := q.Running("")
	metrics.ExecutionsInFlight.Set(float64(total))
}

func parseKey(k string) types.NamespacedName {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return types.NamespacedName{Namespace: k[:i], Name: k[i+1:]}
		}
	}
	return types.NamespacedName{Name: k}
}
