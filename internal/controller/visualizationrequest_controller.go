// Package controller holds the thin reconcilers: they read state, call the capability
// packages (detect, codegen, admission, sandbox, artifacts) and write status once.
package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// VisualizationRequestReconciler drives a request through detect → generate → admit
// → execute → store → finish. Each step is a reconcileX function that changes only
// the in-memory status; Reconcile writes status once at the end and only then starts
// work that must not run unless status recorded it (an execution).
type VisualizationRequestReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Pools holds the live sandbox pools (kept by the SandboxPool controller).
	Pools *sandbox.Registry
	// Queue enforces the per-pool and operator-wide caps.
	Queue *admission.Queue
	// Executor runs executions off the reconcile workers.
	Executor *Executor
	// Pipeline generates code (templates or models) and runs it with repair.
	Pipeline Pipeline
	// PoolNotFoundGrace is how long a request waits for its pool to appear before it
	// fails with PoolNotFound (a pool and its requests are often applied together).
	PoolNotFoundGrace time.Duration
	// BackoffBase and BackoffMax shape the retry backoff.
	BackoffBase, BackoffMax time.Duration
	// DefaultPlotlyJSURL is where plotly HTML loads plotly.js from when the pool sets
	// no spec.plotlyJSURL; it goes into each HTML artifact's Content-Security-Policy.
	DefaultPlotlyJSURL string

	seed seeder
}

// +kubebuilder:rbac:groups=viz.vizops.io,resources=visualizationrequests,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=viz.vizops.io,resources=visualizationrequests/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=viz.vizops.io,resources=sandboxpools,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile runs the steps for one request.
func (r *VisualizationRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	if err := r.seed.once(ctx, r.Client, r.Queue); err != nil {
		return ctrl.Result{}, err
	}

	vr := &vizv1.VisualizationRequest{}
	if err := r.Get(ctx, req.NamespacedName, vr); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: stop its execution and free its slot.
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !vr.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}

	s := newScope(vr, r.Clock.Now())
	if vr.Status.Phase.Finished() {
		return r.reconcileTTL(ctx, s)
	}

	steps := []func(context.Context, *scope) (bool, error){
		r.reconcileDetection,
		r.reconcilePool,
		r.reconcileResult,
		r.reconcileBackoff,
		r.reconcileAdmission,
		r.reconcileExecution,
	}
	var stepErr error
	for _, step := range steps {
		stop, err := step(ctx, s)
		if err != nil {
			stepErr = err
			break
		}
		if stop {
			break
		}
	}

	s.computePhase()
	if err := r.patchStatus(ctx, s); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		log.Error(err, "status patch failed")
		return ctrl.Result{}, err
	}
	for _, e := range s.events {
		r.Recorder.Eventf(vr, nil, e.kind, e.reason, e.action, "%s", e.message)
	}
	// Work that status must have recorded first.
	for _, after := range s.afterPatch {
		after()
	}
	if stepErr != nil {
		return ctrl.Result{}, stepErr
	}
	if s.vr.Status.Phase.Finished() {
		r.release(req.NamespacedName)
		observeFinished(s.vr)
		return r.reconcileTTL(ctx, s)
	}
	return s.result, nil
}

func (r *VisualizationRequestReconciler) patchStatus(ctx context.Context, s *scope) error {
	s.vr.Status.ObservedGeneration = s.vr.Generation
	if equality.Semantic.DeepEqual(s.before.Status, s.vr.Status) {
		return nil
	}
	// The optimistic lock turns a pass over a stale cached object into a conflict (and
	// a requeue) instead of, say, starting an attempt that already started.
	return r.Status().Patch(ctx, s.vr, client.MergeFromWithOptions(s.before, client.MergeFromWithOptimisticLock{}))
}

// forget stops a deleted request's execution and frees its slot.
func (r *VisualizationRequestReconciler) forget(key types.NamespacedName) {
	r.Executor.Cancel(key)
	r.release(key)
}

// release frees a request's slot and wakes the requests whose turn may have come.
func (r *VisualizationRequestReconciler) release(key types.NamespacedName) {
	for _, k := range r.Queue.Release(key.String()) {
		r.Executor.Wake(parseKey(k))
	}
	updateQueueGauges(r.Queue)
}

// SetupWithManager wires the controller: it watches requests, is woken by finished
// executions and freed slots (a channel source), and by pool changes.
func (r *VisualizationRequestReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.PoolNotFoundGrace == 0 {
		r.PoolNotFoundGrace = 30 * time.Second
	}
	if r.BackoffBase == 0 {
		r.BackoffBase = 5 * time.Second
	}
	if r.BackoffMax == 0 {
		r.BackoffMax = 5 * time.Minute
	}
	if err := mgr.Add(r.Executor); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&vizv1.VisualizationRequest{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.ConfigMap{}).
		WatchesRawSource(source.Channel(r.Executor.events, &handler.TypedEnqueueRequestForObject[client.Object]{})).
		Watches(&vizv1.SandboxPool{}, handler.EnqueueRequestsFromMapFunc(r.requestsForPool),
			builder.WithPredicates(poolSpecOrReadinessChanged())).
		Named("visualizationrequest").
		Complete(r)
}

// requestsForPool wakes the unfinished requests that use a pool when it changes.
func (r *VisualizationRequestReconciler) requestsForPool(ctx context.Context, obj client.Object) []ctrl.Request {
	var list vizv1.VisualizationRequestList
	if err := r.List(ctx, &list); err != nil {
		return nil
	}
	var out []ctrl.Request
	for i := range list.Items {
		vr := &list.Items[i]
		if vr.Status.Phase.Finished() {
			continue
		}
		if poolKey(vr) == (types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}) {
			out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(vr)})
		}
	}
	return out
}

// poolSpecOrReadinessChanged passes pool events that can change a request's fate: a
// new spec or a change of the Ready condition, not the live counts that move all the time.
func poolSpecOrReadinessChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		oldPool, ok1 := e.ObjectOld.(*vizv1.SandboxPool)
		newPool, ok2 := e.ObjectNew.(*vizv1.SandboxPool)
		if !ok1 || !ok2 {
			return true
		}
		if oldPool.Generation != newPool.Generation {
			return true
		}
		a := meta.FindStatusCondition(oldPool.Status.Conditions, vizv1.PoolConditionReady)
		b := meta.FindStatusCondition(newPool.Status.Conditions, vizv1.PoolConditionReady)
		return (a == nil) != (b == nil) || (a != nil && (a.Status != b.Status || a.Reason != b.Reason))
	}}
}

// wakeEvent makes a channel event that enqueues key.
func wakeEvent(key types.NamespacedName) event.GenericEvent {
	vr := &vizv1.VisualizationRequest{}
	vr.Namespace, vr.Name = key.Namespace, key.Name
	return event.GenericEvent{Object: vr}
}
