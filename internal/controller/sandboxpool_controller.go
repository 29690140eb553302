package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
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
	"sigs.k8s.io/controller-runtime/pkg/source"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/metrics"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// SandboxPoolReconciler keeps a live sandbox pool for each SandboxPool and reports its
// state in status.
type SandboxPoolReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Pools    *sandbox.Registry
	// APIReader reads backends' Secrets uncached (nil: the Client).
	APIReader client.Reader
	// OperatorNamespace holds the Secrets classes name (E2B API keys); the manager
	// reads Secrets nowhere else.
	OperatorNamespace string
	// StatusInterval is how often a pool's live counts are written to status.
	StatusInterval time.Duration
	// DefaultPlotlyJSURL is used when a pool does not set spec.plotlyJSURL.
	DefaultPlotlyJSURL string
	// Kubernetes is the Kubernetes backend's adapter (nil: that backend is not
	// available, and its pools report BackendNotImplemented).
	Kubernetes *KubernetesPools
}

// +kubebuilder:rbac:groups=viz.vizops.io,resources=sandboxpools,verbs=get;list;watch
// +kubebuilder:rbac:groups=viz.vizops.io,resources=sandboxpools/status,verbs=get;update;patch

// Reconcile makes or resizes the pool's sandboxes and writes its status.
func (r *SandboxPoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	sp := &vizv1.SandboxPool{}
	if err := r.Get(ctx, req.NamespacedName, sp); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: its sandboxes go; running executions fail and are retried.
			return ctrl.Result{}, r.Pools.Remove(req.String())
		}
		return ctrl.Result{}, err
	}
	// The class decides the backend and everything about where code runs; a class
	// that cannot be used is reported below (classErr), a passing error retried.
	class, classErr := r.resolveClass(ctx, sp)
	var se *poolSettingsError
	if classErr != nil && !errors.As(classErr, &se) && sp.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, classErr
	}
	var backend vizv1.Backend
	if class != nil {
		backend = class.Spec.Backend
	}
	kube := backend == vizv1.BackendKubernetes && r.Kubernetes != nil
	if !sp.DeletionTimestamp.IsZero() {
		if r.Kubernetes != nil && controllerutil.ContainsFinalizer(sp, vizv1.FinalizerSandboxPool) {
			cfg, _ := poolConfig(sp, class, r.DefaultPlotlyJSURL)
			done, err := r.Kubernetes.finalize(ctx, r.Client, sp, cfg, r.Pools, req.String())
			if err != nil || done {
				return ctrl.Result{}, err
			}
			return ctrl.Result{RequeueAfter: r.StatusInterval}, nil
		}
		return ctrl.Result{}, r.Pools.Remove(req.String())
	}
	if !kube && r.Kubernetes != nil && controllerutil.ContainsFinalizer(sp, vizv1.FinalizerSandboxPool) {
		// No longer a Kubernetes pool (another class, or none): its Pods,
		// NetworkPolicy and Secret go first.
		cfg, _ := poolConfig(sp, class, r.DefaultPlotlyJSURL)
		if done, err := r.Kubernetes.finalize(ctx, r.Client, sp, cfg, nil, req.String()); err != nil || !done {
			return ctrl.Result{RequeueAfter: r.StatusInterval}, err
		}
	}
	if kube && !controllerutil.ContainsFinalizer(sp, vizv1.FinalizerSandboxPool) {
		// Before any Pod exists: the pool's deletion then waits until they are gone.
		base := sp.DeepCopy()
		controllerutil.AddFinalizer(sp, vizv1.FinalizerSandboxPool)
		if err := r.Patch(ctx, sp, client.MergeFrom(base)); err != nil {
			return ctrl.Result{}, err
		}
	}
	before := sp.DeepCopy()
	now := metav1.NewTime(r.Clock.Now())

	sp.Status.Backend = backend
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
		_ = r.Pools.Remove(req.String())
	}
	var pool sandbox.Pool
	var podsErr error
	switch {
	case err != nil:
	case kube:
		pool, podsErr, err = r.ensureKubernetes(ctx, sp, class, cfg)
	default:
		// Each backend's own settings (E2B: its API key, read from its Secret) are
		// resolved here, before the registry sees them.
		// A backend this operator does not run says so first, whatever its settings.
		var settings any
		if r.Pools.Has(string(backend)) {
			settings, err = r.backendSettings(ctx, sp, class)
		}
		if err == nil {
			pool, err = r.Pools.Ensure(req.String(), string(backend), cfg, settings)
		}
	}
	cond := metav1.Condition{Type: vizv1.PoolConditionReady, ObservedGeneration: sp.Generation, LastTransitionTime: now}
	switch {
	case errors.Is(err, sandbox.ErrBackendNotImplemented):
		cond.Status, cond.Reason = metav1.ConditionFalse, vizv1.ReasonBackendNotImplemented
		// The registry names the backends this operator runs (Local only when enabled).
		cond.Message = strings.TrimPrefix(err.Error(), sandbox.ErrBackendNotImplemented.Error()+": ") + "; use one of the available backends"
	case errors.Is(err, sandbox.ErrQuotaExceeded):
		cond.Status, cond.Reason = metav1.ConditionFalse, vizv1.ReasonQuotaExceeded
		cond.Message = err.Error()
	case backendReason(err) != "":
		cond.Status, cond.Reason = metav1.ConditionFalse, backendReason(err)
		cond.Message = err.Error()
	case err != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, vizv1.ReasonBackendUnavailable
		cond.Message = err.Error()
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, vizv1.ReasonPoolReady
		cond.Message = fmt.Sprintf("%s pool of class %s running: %d warm sandbox(es) wanted, at most %d", backend, class.Name, ptr.Deref(sp.Spec.MinReady, 1), sp.Spec.MaxSandboxes)
		st := pool.Status()
		if st.Degraded != "" {
			cond.Message += "; " + st.Degraded
		}
		writePoolStatus(&sp.Status, st)
		r.setThrottled(sp, backend, st.Throttled, now)
		if kube && st.Degraded != "" && st.Ready == 0 && st.Busy == 0 && st.Starting == 0 {
			// Every sandbox Pod is stuck: nothing will run until the cause is fixed.
			cond.Status, cond.Reason = metav1.ConditionFalse, vizv1.ReasonSandboxStartFailed
			cond.Message = st.Degraded + fmt.Sprintf("; the platform team fixes SandboxClass %s (image, runtimeClassName, nodeSelector, tolerations, hostUsers) or the cluster, then the Pods are replaced", class.Name)
		}
		if kube && st.Total == 0 && (apierrors.IsForbidden(podsErr) || apierrors.IsInvalid(podsErr)) {
			// The API server refuses the Pods (a missing RuntimeClass, a Pod Security
			// level or a quota of the namespace): no retry helps until that changes.
			cond.Status, cond.Reason = metav1.ConditionFalse, vizv1.ReasonSandboxStartFailed
			cond.Message = fmt.Sprintf("the API server refuses the pool's sandbox Pods: %v; fix SandboxClass %s or the namespace's policies", podsErr, class.Name)
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
	if podsErr != nil {
		return ctrl.Result{}, podsErr
	}
	if err != nil {
		// A backend may come back (a package installed, an API up again): try again,
		// but not as often as live counts are refreshed. The error is in the pool's
		// Ready condition; returning it would retry at the workqueue's pace instead.
		return ctrl.Result{RequeueAfter: 6 * r.StatusInterval}, nil //nolint:nilerr // reported in status
	}
	return ctrl.Result{RequeueAfter: r.StatusInterval}, nil
}

// ensureKubernetes resolves a Kubernetes pool's settings (its token Secret), makes
// or updates its live pool and NetworkPolicy, and creates and deletes its Pods.
// podsErr is a failure of the Pod step only: the pool itself is up.
func (r *SandboxPoolReconciler) ensureKubernetes(ctx context.Context, sp *vizv1.SandboxPool, class *vizv1.SandboxClass, cfg sandbox.PoolConfig) (pool sandbox.Pool, podsErr, err error) {
	k := r.Kubernetes
	s, err := k.settings(ctx, sp, class, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := k.reconcileNetworkPolicy(ctx, s); err != nil {
		return nil, nil, fmt.Errorf("the pool's NetworkPolicy cannot be made: %w", err)
	}
	pool, err = r.Pools.Ensure(client.ObjectKeyFromObject(sp).String(), string(vizv1.BackendKubernetes), cfg, s)
	if err != nil {
		return nil, nil, err
	}
	_, podsErr = k.reconcilePods(ctx, r.Client, s, cfg.MinReady, cfg.MaxSandboxes, false)
	return pool, podsErr, nil
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

// SetupWithManager wires the controller.
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
	if r.Kubernetes != nil {
		wakes, err := r.Kubernetes.setup(mgr)
		if err != nil {
			return err
		}
		b = b.Owns(&corev1.Pod{}).
			Owns(&networkingv1.NetworkPolicy{}).
			WatchesRawSource(source.Channel(wakes, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}
