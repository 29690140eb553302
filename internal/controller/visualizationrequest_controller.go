// Package controller holds the thin reconcilers: they read state, call the capability
// packages (detect, codegen, admission, sandbox, artifacts) and write status once.
package controller

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/controller/state"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// DefaultRequestWorkers is how many requests are reconciled at once unless set. A
// reconcile mostly waits for its one status patch (tens of milliseconds on a busy API
// server), so the workers bound the intake of a burst: with 4, 2,000 new requests were
// read and queued 7 to 8 s after the last was created; with 16, within 0.3 s (the API
// server then bounds it). See docs/benchmarks.md.
const DefaultRequestWorkers = 16

// VisualizationRequestReconciler drives a request through detect → generate → admit
// → execute → store → finish. Each step is a reconcileX function that changes only
// the in-memory status; Reconcile writes status once at the end and only then starts
// work that must not run unless status recorded it (an execution).
//
// What it holds in memory (queue places, slots, jobs) is keyed by the request's UID and
// follows the status it writes: an admission whose status write fails is undone, and
// every path that ends a request (finished, deleted, its name re-used) frees its slot
// and stops its job through drop.
type VisualizationRequestReconciler struct {
	client.Client
	// APIReader reads what the manager must not cache: the ConfigMaps named in
	// spec.data, and ConfigMaps that block an artifact ConfigMap's name. Defaults to
	// the client.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// Pools holds the live sandbox pools (kept by the SandboxPool controller).
	Pools *sandbox.Registry
	// Queue enforces the per-pool and operator-wide caps.
	Queue *admission.Queue
	// Executor runs executions off the reconcile workers.
	Executor *Executor
	// Pipeline generates code (templates or models) and runs it with repair.
	Pipeline Pipeline
	// Detect is the keyword detection of a prompt, run once per request (see
	// detection); nil means detect.Detect. Tests count its calls.
	Detect func(prompt string) detect.Result
	// PoolNotFoundGrace is how long a request waits for its pool to appear before it
	// fails with PoolNotFound (a pool and its requests are often applied together).
	PoolNotFoundGrace time.Duration
	// BackoffBase and BackoffMax shape the retry backoff.
	BackoffBase, BackoffMax time.Duration
	// PositionInterval is how often queue positions are recomputed; a waiting request
	// is rewritten only when its written position is outdated (see state.PositionOutdated).
	PositionInterval time.Duration
	// RequireDataLabel restricts spec.data.configMapKeyRef to ConfigMaps labelled
	// viz.vizops.io/data: "true".
	RequireDataLabel bool
	// StatusBudgetBytes bounds the serialized request (metadata, spec and status); past
	// it streams are cut further, then the request fails with StatusTooLarge.
	StatusBudgetBytes int
	// Workers is how many requests are reconciled at once (default
	// DefaultRequestWorkers). Reconciles are short: executions run in the Executor.
	Workers int
	// DefaultPlotlyJSURL is where plotly HTML loads plotly.js from when the pool sets
	// no spec.plotlyJSURL; it goes into each HTML artifact's Content-Security-Policy.
	DefaultPlotlyJSURL string
	// WatchNamespaces are the namespaces the manager watches (--watch-namespaces);
	// empty: every namespace. A request naming a pool in another namespace fails at
	// once with PoolNotFound: that pool is not in the cache, and never will be.
	WatchNamespaces []string

	seed seeder
	// mem is the memory of requests between reconciles (queue places and slots, names,
	// written positions), kept in step with the status written.
	mem *state.Memory
}

// +kubebuilder:rbac:groups=viz.vizops.io,resources=visualizationrequests,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=viz.vizops.io,resources=visualizationrequests/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=viz.vizops.io,resources=sandboxpools,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile runs the steps for one request.
func (r *VisualizationRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	if err := r.seed.once(ctx, r); err != nil {
		return ctrl.Result{}, err
	}

	vr := &vizv1.VisualizationRequest{}
	if err := r.Get(ctx, req.NamespacedName, vr); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: stop its execution and free its slot.
			r.mem.Gone(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if old := r.mem.See(req.NamespacedName, vr.UID); old != "" {
		// The name now holds a new object: the old one was deleted without a reconcile
		// seeing it gone (kubectl replace --force, GitOps). Its job and slot went.
		log.Info("request re-created under the same name; stopped the earlier one's work", "oldUID", old, "uid", vr.UID)
	}
	if !vr.DeletionTimestamp.IsZero() {
		r.mem.Drop(vr.UID)
		return ctrl.Result{}, nil
	}

	s := newScope(vr, r.Clock.Now())
	if vr.Status.Phase.Finished() {
		r.mem.Finish(vr.UID)
		return r.reconcileTTL(ctx, s)
	}
	if r.mem.Finished(vr.UID) {
		// This process wrote the request finished; the cache has not caught up. Acting
		// on the stale copy could admit or start it again.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}

	mem := r.mem.Remember(vr.UID)
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
	r.fitStatus(s)
	writeStart := time.Now()
	if err := r.patchStatus(ctx, s); err != nil {
		r.mem.Rollback(vr.UID, mem)
		switch {
		case apierrors.IsConflict(err):
			return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
		case isTooLarge(err):
			return r.failTooLarge(ctx, s, err)
		}
		log.Error(err, "status patch failed")
		return ctrl.Result{}, err
	}
	r.emit(s)
	if s.before.Status.Phase != s.vr.Status.Phase || s.before.Status.Attempts != s.vr.Status.Attempts {
		// Per-step detail: --zap-log-level=1 (or debug) shows each transition.
		log.V(1).Info("status written", "phase", s.vr.Status.Phase, "previousPhase", s.before.Status.Phase,
			"attempts", s.vr.Status.Attempts, "uid", vr.UID, "writeMs", msSince(writeStart))
	}
	// Work that status must have recorded first (start a job, forget a recorded one),
	// then memory follows the status written.
	for _, after := range s.afterPatch {
		after()
	}
	r.settle(s, mem, stepErr)
	if stepErr != nil {
		return ctrl.Result{}, stepErr
	}
	if s.vr.Status.Phase.Finished() {
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
	// An update of the status subresource: the whole status as this pass decided it,
	// with the resourceVersion read, so a pass over a stale cached object meets a
	// conflict (and a requeue) instead of, say, starting an attempt that already
	// started. Not a merge patch: computing one serializes both objects and diffs them
	// (with inline artifacts, most of a reconcile's CPU), and the API server then
	// re-encodes, merges and decodes the stored object; see docs/benchmarks.md.
	return r.Status().Update(ctx, s.vr)
}

// emit records the pass's Events, coalesced (see scope.eventsToRecord): a Warning
// for each trouble and one Event for the outcome, not one per step.
func (r *VisualizationRequestReconciler) emit(s *scope) {
	for _, e := range s.eventsToRecord() {
		r.Recorder.Eventf(s.vr, nil, e.kind, e.reason, e.action, "%s", e.message)
	}
}

// SetupWithManager wires the controller: it watches requests, is woken by finished
// executions and freed slots (a channel source), and by pool changes.
func (r *VisualizationRequestReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.APIReader == nil {
		r.APIReader = r.Client
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
	if r.PositionInterval == 0 {
		r.PositionInterval = 2 * time.Second
	}
	if r.Workers == 0 {
		r.Workers = DefaultRequestWorkers
	}
	if r.StatusBudgetBytes == 0 {
		r.StatusBudgetBytes = DefaultStatusBudgetBytes
	}
	r.mem = state.New(r.Queue, r.Executor, updateQueueGauges)
	if err := SetupIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := mgr.Add(r.Executor); err != nil {
		return err
	}
	if err := mgr.Add(&positionRefresher{r: r}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&vizv1.VisualizationRequest{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WatchesRawSource(source.Channel(r.Executor.events, wakeHandler)).
		Watches(&vizv1.SandboxPool{}, handler.EnqueueRequestsFromMapFunc(r.requestsForPool),
			builder.WithPredicates(poolSpecOrReadinessChanged())).
		Named("visualizationrequest").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Workers}).
		Complete(r)
}

// requestsForPool wakes the unfinished requests that use a pool when its spec or
// readiness changes (rare), found through the pool index, not a List of every request.
// A raised maxSandboxes admits waiting requests here.
func (r *VisualizationRequestReconciler) requestsForPool(ctx context.Context, obj client.Object) []ctrl.Request {
	pk := client.ObjectKeyFromObject(obj).String()
	if sp, ok := obj.(*vizv1.SandboxPool); ok {
		r.mem.SetPoolCap(pk, int(sp.Spec.MaxSandboxes))
	}
	var list vizv1.VisualizationRequestList
	if err := r.List(ctx, &list, client.MatchingFields{IndexPool: pk}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []ctrl.Request
	for i := range list.Items {
		vr := &list.Items[i]
		if !vr.Status.Phase.Finished() {
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

// msSince is the time since t in milliseconds, for debug logs of where a request's
// time goes.
func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
