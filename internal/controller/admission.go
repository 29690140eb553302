package controller

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/controller/state"
	"github.com/vizops/viz-operator/internal/metrics"
)

// IndexPool is the field index of requests by their resolved pool ("namespace/name").
const IndexPool = "spec.sandboxPoolRef.resolved"

// SetupIndexes registers the field indexes the controller looks requests up by.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &vizv1.VisualizationRequest{}, IndexPool, func(o client.Object) []string {
		return []string{poolKey(o.(*vizv1.VisualizationRequest)).String()}
	})
}

// seeder fills the admission queue from live state once, before the first decision:
// requests that status says hold a slot keep it, so the caps hold across a restart, and
// requests that were waiting keep their order.
type seeder struct {
	mu   sync.Mutex
	done bool
}

func (s *seeder) once(ctx context.Context, r *VisualizationRequestReconciler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	var list vizv1.VisualizationRequestList
	// Read-only: no deep copy of every request (and its inline artifacts).
	if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing requests to seed the admission queue: %w", err)
	}
	now := r.Clock.Now()
	seen := map[types.NamespacedName]types.UID{}
	var running, waiting []admission.Item
	for i := range list.Items {
		vr := &list.Items[i]
		st := vr.Status
		if st.Phase.Finished() || !vr.DeletionTimestamp.IsZero() {
			continue
		}
		seen[reqKey(vr)] = vr.UID
		switch {
		case meta.IsStatusConditionTrue(st.Conditions, vizv1.ConditionAdmitted):
			running = append(running, queueItem(vr))
		case meta.IsStatusConditionTrue(st.Conditions, vizv1.ConditionDetected) &&
			(st.NextRetryTime == nil || !st.NextRetryTime.After(now)):
			waiting = append(waiting, queueItem(vr))
		}
	}
	// Oldest first, so the queue's arrival order (its tie-break) is creation order.
	sort.SliceStable(waiting, func(i, j int) bool {
		if !waiting[i].Created.Equal(waiting[j].Created) {
			return waiting[i].Created.Before(waiting[j].Created)
		}
		return waiting[i].Key < waiting[j].Key
	})
	r.mem.Seed(seen, running, waiting)
	logf.FromContext(ctx).Info("admission queue seeded from live state", "running", len(running), "waiting", len(waiting))
	s.done = true
	return nil
}

// reconcileAdmission asks the queue for a slot under the pool's and the operator's
// caps. A request that must wait is Queued with its position; it is woken when it is
// admitted (no polling), or when its position moves into another bucket.
func (r *VisualizationRequestReconciler) reconcileAdmission(_ context.Context, s *scope) (bool, error) {
	uid := s.vr.UID
	if r.mem.Admit(queueItem(s.vr)) {
		return false, nil
	}
	pk := poolKey(s.vr)
	pos := int32(r.mem.Position(uid))
	if cur := s.vr.Status.QueuePosition; cur == nil || state.PositionOutdated(int(*cur), int(pos)) {
		s.vr.Status.QueuePosition = &pos
	}
	// The message does not carry the position, so a move in the queue is one field
	// of one patch, never an Event.
	msg := fmt.Sprintf("waiting for a sandbox slot in pool %s (status.queuePosition is the place in its queue)", pk)
	s.setCondition(vizv1.ConditionAdmitted, metav1.ConditionFalse, vizv1.ReasonQueued, msg, false)
	return true, nil
}

// positionRefresher recomputes queue positions every PositionInterval and wakes only the
// waiting requests whose written position is outdated (state.PositionOutdated), so positions
// are written in batches, in proportion to the work, not once per waiter per completion.
type positionRefresher struct {
	r *VisualizationRequestReconciler
}

func (p *positionRefresher) NeedLeaderElection() bool { return true }

func (p *positionRefresher) Start(ctx context.Context) error {
	t := time.NewTicker(p.r.PositionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.refresh()
		}
	}
}

func (p *positionRefresher) refresh() { p.r.mem.RefreshPositions() }

func queueItem(vr *vizv1.VisualizationRequest) admission.Item {
	return admission.Item{
		ID:      string(vr.UID),
		Key:     reqKey(vr).String(),
		Pool:    poolKey(vr).String(),
		Created: vr.CreationTimestamp.Time,
	}
}

func updateQueueGauges(q *admission.Queue) {
	metrics.QueueDepth.Set(float64(q.Depth()))
	total, _ := q.Running("")
	metrics.ExecutionsInFlight.Set(float64(total))
}

// CacheOptions is the manager's cache: ConfigMaps only with the artifact label, and
// what the backends bs cache only with their own filters (Kubernetes: Pods and
// NetworkPolicies only with a pool's label), so an accidental cached read can never
// make the manager hold every ConfigMap or Pod of the cluster. (Secrets are never
// cached: pools' token Secrets are written, not read.)
func CacheOptions(bs *backends.Set) cache.Options {
	req, err := labels.NewRequirement(vizv1.LabelRequestUID, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant key: cannot fail
	}
	byObject := bs.CacheObjects(nil)
	byObject[&corev1.ConfigMap{}] = cache.ByObject{Label: labels.NewSelector().Add(*req)}
	return cache.Options{ByObject: byObject}
}
