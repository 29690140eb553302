package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/controller/state"
	"github.com/vizops/viz-operator/internal/pipeline"
)

// Reconcile steps against a fake client, one table per step (as kueue and jobset test
// theirs): what each decides from the objects it reads, without an API server. The
// envtest suite covers what needs one (CEL, status subresource, watches, caching).

var stepNow = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func stepScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := vizv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// stepReconciler is a request reconciler over a fake client holding objs.
func stepReconciler(t *testing.T, funcs *interceptor.Funcs, objs ...client.Object) *VisualizationRequestReconciler {
	t.Helper()
	b := fake.NewClientBuilder().WithScheme(stepScheme(t)).WithObjects(objs...)
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	r := &VisualizationRequestReconciler{
		Client:            b.Build(),
		Queue:             admission.NewQueue(100),
		Executor:          NewExecutor(),
		PoolNotFoundGrace: 30 * time.Second,
	}
	r.mem = state.New(r.Queue, r.Executor, nil)
	return r
}

func stepRequest(ns string, age time.Duration, pool vizv1.SandboxPoolReference) *vizv1.VisualizationRequest {
	return &vizv1.VisualizationRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chart", UID: "uid-chart", Generation: 1,
			CreationTimestamp: metav1.NewTime(stepNow.Add(-age))},
		Spec: vizv1.VisualizationRequestSpec{Prompt: "plot VOE episodes per month", SandboxPoolRef: pool},
	}
}

func stepPool(ns string, sel *metav1.LabelSelector) *vizv1.SandboxPool {
	return &vizv1.SandboxPool{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"},
		Spec:       vizv1.SandboxPoolSpec{MaxSandboxes: 2, MinReady: ptr.To[int32](1), NamespaceSelector: sel},
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestReconcilePoolStep(t *testing.T) {
	shared := vizv1.SandboxPoolReference{Namespace: "platform"}
	teamA := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	getFails := &interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		return errors.New("etcd is down")
	}}
	tests := map[string]struct {
		objs      []client.Object
		funcs     *interceptor.Funcs
		vr        *vizv1.VisualizationRequest
		watch     []string
		running   bool
		wantStop  bool
		wantErr   bool
		wantPhase vizv1.Phase
		wantWhy   string // the Admitted condition's reason ("": none set)
		wantPool  bool
		wantAfter time.Duration
	}{
		"the pool in the request's namespace admits it": {
			objs: []client.Object{stepPool("team-a", nil)}, vr: stepRequest("team-a", 0, vizv1.SandboxPoolReference{}),
			wantPool: true,
		},
		"a pool not yet created is waited for within the grace": {
			vr: stepRequest("team-a", 10*time.Second, vizv1.SandboxPoolReference{}), wantStop: true,
			wantWhy: vizv1.ReasonWaitingForPool, wantAfter: 20 * time.Second,
		},
		"a pool still missing after the grace fails the request": {
			vr: stepRequest("team-a", time.Minute, vizv1.SandboxPoolReference{}), wantStop: true,
			wantPhase: vizv1.PhaseFailed, wantWhy: vizv1.ReasonPoolNotFound,
		},
		"a pool gone mid-run leaves the running job to report": {
			vr: stepRequest("team-a", time.Hour, vizv1.SandboxPoolReference{}), running: true,
		},
		"a pool in a namespace not watched fails at once": {
			objs: []client.Object{stepPool("platform", nil)}, vr: stepRequest("team-a", 0, shared),
			watch: []string{"team-a"}, wantStop: true, wantPhase: vizv1.PhaseFailed, wantWhy: vizv1.ReasonPoolNotFound,
		},
		"another namespace's pool without a selector refuses": {
			objs: []client.Object{stepPool("platform", nil), namespace("team-a", nil)}, vr: stepRequest("team-a", 0, shared),
			wantStop: true, wantPhase: vizv1.PhaseFailed, wantWhy: vizv1.ReasonPoolNotAllowed,
		},
		"another namespace's pool whose selector matches admits": {
			objs: []client.Object{stepPool("platform", teamA), namespace("team-a", map[string]string{"team": "a"})},
			vr:   stepRequest("team-a", 0, shared), wantPool: true,
		},
		"a selector that does not match refuses": {
			objs: []client.Object{stepPool("platform", teamA), namespace("team-b", map[string]string{"team": "b"})},
			vr:   stepRequest("team-b", 0, shared), wantStop: true, wantPhase: vizv1.PhaseFailed, wantWhy: vizv1.ReasonPoolNotAllowed,
		},
		"a tenant cannot match a selector by naming a namespace that does not exist": {
			objs: []client.Object{stepPool("platform", teamA)}, vr: stepRequest("team-a", 0, shared),
			wantStop: true, wantPhase: vizv1.PhaseFailed, wantWhy: vizv1.ReasonPoolNotAllowed,
		},
		"an API error is returned for a retry, the request untouched": {
			funcs: getFails, vr: stepRequest("team-a", time.Hour, vizv1.SandboxPoolReference{}), wantStop: true, wantErr: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := stepReconciler(t, tc.funcs, tc.objs...)
			r.WatchNamespaces = tc.watch
			if tc.running {
				block := make(chan struct{})
				defer close(block)
				r.Executor.Submit(tc.vr.UID, reqKey(tc.vr), 1, func(context.Context) (pipeline.Result, error) { <-block; return pipeline.Result{}, nil })
			}
			s := newScope(tc.vr, stepNow)
			stop, err := r.reconcilePool(context.Background(), s)
			if (err != nil) != tc.wantErr || stop != tc.wantStop {
				t.Fatalf("stop=%v err=%v, want stop=%v err=%v", stop, err, tc.wantStop, tc.wantErr)
			}
			if s.vr.Status.Phase != tc.wantPhase {
				t.Errorf("phase %q, want %q", s.vr.Status.Phase, tc.wantPhase)
			}
			c := meta.FindStatusCondition(s.vr.Status.Conditions, vizv1.ConditionAdmitted)
			switch {
			case tc.wantWhy == "" && c != nil:
				t.Errorf("Admitted set to %s: %s", c.Reason, c.Message)
			case tc.wantWhy != "" && (c == nil || c.Reason != tc.wantWhy):
				t.Errorf("Admitted = %+v, want reason %s", c, tc.wantWhy)
			case c != nil && c.ObservedGeneration != 1:
				t.Errorf("Admitted observedGeneration %d, want 1", c.ObservedGeneration)
			}
			if (s.pool != nil) != tc.wantPool {
				t.Errorf("pool resolved = %v, want %v", s.pool != nil, tc.wantPool)
			}
			if s.result.RequeueAfter != tc.wantAfter {
				t.Errorf("requeue after %v, want %v", s.result.RequeueAfter, tc.wantAfter)
			}
		})
	}
}

func TestReconcileAdmissionStep(t *testing.T) {
	r := stepReconciler(t, nil)
	r.mem.SetPoolCap("team-a/default", 1)
	first := stepRequest("team-a", 2*time.Second, vizv1.SandboxPoolReference{})
	second := stepRequest("team-a", time.Second, vizv1.SandboxPoolReference{})
	second.Name, second.UID = "second", "uid-second"

	s := newScope(first, stepNow)
	if stop, err := r.reconcileAdmission(context.Background(), s); stop || err != nil {
		t.Fatalf("the first request was not admitted: stop=%v err=%v", stop, err)
	}
	s = newScope(second, stepNow)
	if stop, err := r.reconcileAdmission(context.Background(), s); !stop || err != nil {
		t.Fatalf("the second request was admitted at a cap of 1: stop=%v err=%v", stop, err)
	}
	c := meta.FindStatusCondition(s.vr.Status.Conditions, vizv1.ConditionAdmitted)
	if c == nil || c.Reason != vizv1.ReasonQueued || c.Status != metav1.ConditionFalse {
		t.Fatalf("Admitted = %+v, want False/Queued", c)
	}
	if p := s.vr.Status.QueuePosition; p == nil || *p != 1 {
		t.Fatalf("queuePosition %v, want 1", p)
	}
	// A pass over an unchanged place writes nothing new.
	s2 := newScope(s.vr, stepNow)
	if _, err := r.reconcileAdmission(context.Background(), s2); err != nil {
		t.Fatal(err)
	}
	if *s2.vr.Status.QueuePosition != 1 {
		t.Fatalf("queuePosition moved to %d", *s2.vr.Status.QueuePosition)
	}
	// The first finishes: memory admits the second and wakes it.
	r.mem.Finish(first.UID)
	s3 := newScope(s.vr, stepNow)
	if stop, err := r.reconcileAdmission(context.Background(), s3); stop || err != nil {
		t.Fatalf("the second request was not admitted after the first finished: stop=%v err=%v", stop, err)
	}
}

// written reads what memory needs from the status a pass wrote.
func TestWritten(t *testing.T) {
	next := metav1.NewTime(stepNow.Add(time.Minute))
	past := metav1.NewTime(stepNow.Add(-time.Minute))
	tests := map[string]struct {
		status  vizv1.VisualizationRequestStatus
		keep    bool
		stepErr error
		want    state.Written
	}{
		"finished":  {status: vizv1.VisualizationRequestStatus{Phase: vizv1.PhaseSucceeded}, want: state.Written{Finished: true}},
		"queued":    {status: vizv1.VisualizationRequestStatus{Phase: vizv1.PhaseQueued, QueuePosition: ptr.To[int32](4)}, want: state.Written{QueuePosition: 4}},
		"admitted":  {status: vizv1.VisualizationRequestStatus{Conditions: []metav1.Condition{{Type: vizv1.ConditionAdmitted, Status: metav1.ConditionTrue}}}, want: state.Written{Admitted: true}},
		"backoff":   {status: vizv1.VisualizationRequestStatus{NextRetryTime: &next}, want: state.Written{InBackoff: true}},
		"retry due": {status: vizv1.VisualizationRequestStatus{NextRetryTime: &past}, want: state.Written{}},
		"keep":      {keep: true, want: state.Written{KeepPlace: true}},
		"failed":    {stepErr: errors.New("boom"), want: state.Written{Failed: true}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newScope(stepRequest("ns", 0, vizv1.SandboxPoolReference{}), stepNow)
			s.vr.Status = tc.status
			s.keepPlace = tc.keep
			if got := written(s, tc.stepErr); got != tc.want {
				t.Errorf("written = %+v, want %+v", got, tc.want)
			}
		})
	}
}
