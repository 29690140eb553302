package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// SandboxPoolReconciler keeps a live sandbox pool for each SandboxPool and reports its
// state in status. It knows no backend: each is an adapter registered in Backends
// (internal/backends), which it asks to resolve the pool's own options, keep its live
// pool, map its errors to reasons and, through the optional interfaces, finalize,
// watch and throttle.
type SandboxPoolReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Pools    *sandbox.Registry
	// Backends are the backends this manager runs; a pool of any other reports
	// BackendNotImplemented.
	Backends *backends.Set
	// StatusInterval is how often a pool's live counts are written to status.
	StatusInterval time.Duration
	// DefaultPlotlyJSURL is used when a pool does not set spec.plotlyJSURL.
	DefaultPlotlyJSURL string
}

// +kubebuilder:rbac:groups=viz.vizops.io,resources=sandboxpools,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=viz.vizops.io,resources=sandboxpools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=viz.vizops.io,resources=sandboxpools/finalizers,verbs=update

// Reconcile makes or resizes the pool's sandboxes and writes its status.
func (r *SandboxPoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	key := req.String()
	sp := &vizv1.SandboxPool{}
	if err := r.Get(ctx, req.NamespacedName, sp); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: its sandboxes go; running executions fail and are retried.
			return ctrl.Result{}, r.Pools.Remove(key)
		}
		return ctrl.Result{}, err
	}
	// The class decides the backend and everything about where code runs; a class
	// that cannot be used is reported below (classErr), a passing error retried.
	class, classErr := r.resolveClass(ctx, sp)
	var se *backends.SettingsError
	if classErr != nil && !errors.As(classErr, &se) && sp.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, classErr
	}
	var name vizv1.Backend
	if class != nil {
		name = class.Spec.Backend
	}
	backend, known := r.Backends.Get(name)
	if !sp.DeletionTimestamp.IsZero() {
		// Its live pool stops claiming at once; then what backends made in the
		// cluster goes, and with it their finalizers.
		if err := r.Pools.Remove(key); err != nil {
			return ctrl.Result{}, err
		}
		done, err := r.finalize(ctx, sp, class, nil)
		if err != nil || done {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: r.StatusInterval}, nil
	}
	// A pool that is no longer of a backend with a finalizer (another class, or
	// none): what that backend made goes first.
	if done, err := r.finalize(ctx, sp, class, backend); err != nil || !done {
		return ctrl.Result{RequeueAfter: r.StatusInterval}, err
	}
	if f, ok := backend.(backends.Finalizer); ok && !controllerutil.ContainsFinalizer(sp, f.FinalizerName()) {
		// Before the backend makes anything: the pool's deletion then waits for it.
		base := sp.DeepCopy()
		controllerutil.AddFinalizer(sp, f.FinalizerName())
		if err := r.Patch(ctx, sp, client.MergeFrom(base)); err != nil {
			return ctrl.Result{}, err
		}
	}
	before := sp.DeepCopy()
	now := metav1.NewTime(r.Clock.Now())

	sp.Status.Backend = name
	sp.Status.ClassName = ""
	if class != nil {
		sp.Status.ClassName = class.Name
	}
	err := classErr
	var cfg sandbox.PoolConfig
	if err == nil {
		cfg, err = poolConfig(sp, class, r.DefaultPlotlyJSURL)
	}
	if err != nil {
		// A pool that cannot run on its class holds no sandboxes.
		_ = r.Pools.Remove(key)
	}
	in := backends.Input{Key: key, Pool: sp, Class: class, Config: cfg, Pools: r.Pools}
	var ensured backends.Ensured
	switch {
	case err != nil:
	case !known:
		// A backend this operator does not run says so, whatever its settings; a
		// pool it had goes once its running jobs end.
		err = r.Backends.NotImplemented(name)
		r.Pools.Retire(key)
	default:
		ensured, err = backend.Ensure(ctx, in)
		if errors.As(err, &se) {
			// Its settings went away (a Secret deleted): the live pool must not keep
			// running on settings that no longer exist.
			_ = r.Pools.Remove(key)
		}
	}
	cond := metav1.Condition{Type: vizv1.PoolConditionReady, ObservedGeneration: sp.Generation, LastTransitionTime: now}
	switch {
	case errors.Is(err, sandbox.ErrBackendNotImplemented):
		cond.Status, cond.Reason = metav1.ConditionFalse, vizv1.ReasonBackendNotImplemented
		cond.Message = strings.TrimPrefix(err.Error(), sandbox.ErrBackendNotImplemented.Error()+": ") + "; use one of the available backends"
	case errors.Is(err, sandbox.ErrQuotaExceeded):
		cond.Status, cond.Reason = metav1.ConditionFalse, vizv1.ReasonQuotaExceeded
		cond.Message = err.Error()
	case backends.ReasonOf(backend, err) != "":
		cond.Status, cond.Reason = metav1.ConditionFalse, backends.ReasonOf(backend, err)
		cond.Message = err.Error()
	case err != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, vizv1.ReasonBackendUnavailable
		cond.Message = err.Error()
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, vizv1.ReasonPoolReady
		cond.Message = fmt.Sprintf("%s pool of class %s running: %d warm sandbox(es) wanted, at most %d", name, class.Name, ptr.Deref(sp.Spec.MinReady, 1), sp.Spec.MaxSandboxes)
		st := ensured.Pool.Status()
		if st.Degraded != "" {
			cond.Message += "; " + st.Degraded
		}
		writePoolStatus(&sp.Status, st)
		r.setThrottled(sp, backend, st.Throttled, now)
		if o, ok := backend.(backends.ReadyOverrider); ok {
			if reason, msg := o.NotReady(in, st, ensured.StepErr); reason != "" {
				cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reason, msg
			}
		}
	}
	if err != nil {
		sp.Status.Ready, sp.Status.Busy, sp.Status.Starting, sp.Status.Total, sp.Status.Sandboxes = 0, 0, 0, 0, nil
	}
	prev := meta.FindStatusCondition(sp.Status.Conditions, vizv1.PoolConditionReady)
	if prev == nil || prev.Status != cond.Status || prev.Reason != cond.Reason {
		kind := corev1.EventTypeNormal
		if cond.Status != metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(sp, nil, kind, cond.Reason, "Reconcile", "%s", cond.Message)
		if err != nil {
			log.Error(err, "sandbox pool unavailable")
		}
	}
	meta.SetStatusCondition(&sp.Status.Conditions, cond)
	sp.Status.ObservedGeneration = sp.Generation
	if !equality.Semantic.DeepEqual(before.Status, sp.Status) {
		if err := r.Status().Patch(ctx, sp, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, err
		}
	}
	if ensured.StepErr != nil {
		return ctrl.Result{}, ensured.StepErr
	}
	if err != nil {
		// A backend may come back (a package installed, an API up again): try again,
		// but not as often as live counts are refreshed. The error is in the pool's
		// Ready condition; returning it would retry at the workqueue's pace instead.
		return ctrl.Result{RequeueAfter: 6 * r.StatusInterval}, nil //nolint:nilerr // reported in status
	}
	return ctrl.Result{RequeueAfter: r.StatusInterval}, nil
}

// finalize runs the finalizers of the registered backends that sp carries, but
// keep's (the pool's own backend, nil when it is deleted or has none), and removes
// each that is done. done: none is left to wait for.
func (r *SandboxPoolReconciler) finalize(ctx context.Context, sp *vizv1.SandboxPool, class *vizv1.SandboxClass, keep backends.Backend) (done bool, err error) {
	done = true
	for _, b := range r.Backends.All() {
		f, ok := b.(backends.Finalizer)
		if !ok || b == keep || !controllerutil.ContainsFinalizer(sp, f.FinalizerName()) {
			continue
		}
		cfg, _ := poolConfig(sp, class, r.DefaultPlotlyJSURL)
		ok, err := f.Finalize(ctx, sp, cfg)
		if err != nil {
			return false, err
		}
		if !ok {
			done = false
			continue
		}
		before := sp.DeepCopy()
		controllerutil.RemoveFinalizer(sp, f.FinalizerName())
		if err := client.IgnoreNotFound(r.Patch(ctx, sp, client.MergeFrom(before))); err != nil {
			return false, err
		}
	}
	return done, nil
}

// setThrottled writes the Throttled condition of a pool whose backend may be
// throttled (backends.Throttler), or that has one, with an Event when it changes.
func (r *SandboxPoolReconciler) setThrottled(sp *vizv1.SandboxPool, b backends.Backend, throttled string, now metav1.Time) {
	prev := meta.FindStatusCondition(sp.Status.Conditions, vizv1.PoolConditionThrottled)
	t, ok := b.(backends.Throttler)
	if (!ok || !t.Throttles()) && prev == nil && throttled == "" {
		return
	}
	cond := metav1.Condition{Type: vizv1.PoolConditionThrottled, ObservedGeneration: sp.Generation, LastTransitionTime: now,
		Status: metav1.ConditionFalse, Reason: vizv1.ReasonNotThrottled, Message: "sandboxes are created at full rate"}
	if throttled != "" {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, vizv1.ReasonRateLimited, throttled
	}
	if prev != nil && prev.Status != cond.Status {
		kind := corev1.EventTypeNormal
		if cond.Status == metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(sp, nil, kind, cond.Reason, "Reconcile", "%s", cond.Message)
	} else if prev == nil && cond.Status == metav1.ConditionTrue {
		r.Recorder.Eventf(sp, nil, corev1.EventTypeWarning, cond.Reason, "Reconcile", "%s", cond.Message)
	}
	meta.SetStatusCondition(&sp.Status.Conditions, cond)
}

// poolConfig turns a SandboxPool spec and its class into the backend-neutral pool
// config: sizes from the pool, resources within the class's bounds, network from the
// class (egress only where the class lists some). class may be nil (a pool being
// deleted whose class is gone): built-in limits, no network.
func poolConfig(sp *vizv1.SandboxPool, class *vizv1.SandboxClass, defaultPlotly string) (sandbox.PoolConfig, error) {
	var backend vizv1.Backend
	if class != nil {
		backend = class.Spec.Backend
	}
	cfg := sandbox.PoolConfig{
		MinReady:     int(ptr.Deref(sp.Spec.MinReady, 1)),
		MaxSandboxes: int(sp.Spec.MaxSandboxes),
		Network:      sandbox.NetworkNone,
		PlotlyJSURL:  sp.Spec.PlotlyJSURL,
		OnSandboxStarted: func(d time.Duration) {
			metrics.SandboxCreationSeconds.WithLabelValues(string(backend)).Observe(d.Seconds())
		},
	}
	if cfg.PlotlyJSURL == "" {
		cfg.PlotlyJSURL = defaultPlotly
	}
	if class != nil && len(class.Spec.Egress) > 0 {
		cfg.Network = sandbox.NetworkEgress
	}
	res, err := effectiveResources(sp, class)
	cfg.Resources.CPUMillis = res.CPU.MilliValue()
	cfg.Resources.MemoryBytes = res.Memory.Value()
	cfg.Resources.Pids = int64(*res.Pids)
	cfg.Resources.ScratchBytes = res.Scratch.Value()
	return cfg, err
}

// writePoolStatus copies live counts, listing at most 100 sandboxes.
func writePoolStatus(st *vizv1.SandboxPoolStatus, ps sandbox.PoolStatus) {
	st.Ready, st.Busy, st.Starting, st.Total = int32(ps.Ready), int32(ps.Busy), int32(ps.Starting), int32(ps.Total)
	st.Sandboxes = nil
	for i, sb := range ps.Sandboxes {
		if i == 100 {
			break
		}
		since := metav1.NewTime(sb.Since.Truncate(time.Second)) // status keeps seconds: compare like with like
		st.Sandboxes = append(st.Sandboxes, vizv1.SandboxState{ID: sb.ID, State: string(sb.State), Since: &since, RequestRef: sb.Owner})
	}
}

// SetupWithManager wires the controller, with each backend's own watches.
func (r *SandboxPoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.StatusInterval == 0 {
		r.StatusInterval = 5 * time.Second
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&vizv1.SandboxPool{}).
		Watches(&vizv1.SandboxClass{}, handler.EnqueueRequestsFromMapFunc(r.poolsForClass)).
		Named("sandboxpool")
	for _, be := range r.Backends.All() {
		if w, ok := be.(backends.Watcher); ok {
			var err error
			if b, err = w.Watch(mgr, b); err != nil {
				return fmt.Errorf("the %s backend's watches: %w", be.Name(), err)
			}
		}
	}
	return b.Complete(r)
}
