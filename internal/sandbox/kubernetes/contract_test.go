package kubernetes

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/pooltest"
)

// TestPoolContract runs the warm-pool contract against a Kubernetes pool over the
// fake API server and kubelet (fakeAPI): a created Pod is Running and Ready at once,
// or stuck in ImagePullBackOff while creation fails; a Pod that breaks tells the
// pool through its watch (PodChanged), as the adapter's Pod informer does. The
// envtest suite of internal/controller runs the real adapter against a real API
// server, and test/e2e against a real kubelet.
func TestPoolContract(t *testing.T) {
	pooltest.Run(t, func(t *testing.T, minReady, maxSandboxes int) pooltest.Fixture {
		api := newFakeAPI()
		var calls atomic.Int64
		s := testSettings.WithTokenKey(testKey)
		s.MaxExecutions = 1
		agent := func(pod *corev1.Pod, _ string) Runner {
			return runFunc(func(context.Context, sandbox.Request) (*sandbox.Result, error) {
				cur := api.get(pod.Name)
				if cur == nil || cur.UID != pod.UID || cur.Status.Phase != corev1.PodRunning {
					return nil, errors.New("connection refused")
				}
				return &sandbox.Result{Success: true}, nil
			})
		}
		pool, err := NewPool(sandbox.PoolConfig{MinReady: minReady, MaxSandboxes: maxSandboxes}, s, &countingAPI{PodAPI: api, n: &calls},
			Options{NewRunner: agent, Poll: time.Second, Manager: "m1", BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		api.mu.Lock()
		api.onChange = pool.PodChanged
		api.mu.Unlock()
		return pooltest.Fixture{
			Pool:      pool,
			Alive:     func() int { return len(api.names()) },
			PeakAlive: func() int { return api.count(func() int { return api.peak }) },
			Created:   func() int { return api.count(func() int { return api.created }) },
			Calls:     func() int { return int(calls.Load()) },
			Break: func(name string) {
				api.mutate(name, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
			},
			FailCreation: func(on bool) {
				api.mu.Lock()
				defer api.mu.Unlock()
				if on {
					api.createErr = apierrors.NewForbidden(podsResource, "", errors.New("exceeded quota"))
				} else {
					api.createErr = nil
				}
			},
		}
	}, pooltest.Options{Request: sandbox.Request{Code: "print(1)"}})
}

// countingAPI counts the requests the pool makes.
type countingAPI struct {
	PodAPI
	n *atomic.Int64
}

func (a *countingAPI) List(ctx context.Context) ([]corev1.Pod, error) {
	a.n.Add(1)
	return a.PodAPI.List(ctx)
}

func (a *countingAPI) Get(ctx context.Context, name string) (*corev1.Pod, error) {
	a.n.Add(1)
	return a.PodAPI.Get(ctx, name)
}

func (a *countingAPI) Create(ctx context.Context, pod *corev1.Pod) error {
	a.n.Add(1)
	return a.PodAPI.Create(ctx, pod)
}

func (a *countingAPI) Update(ctx context.Context, pod *corev1.Pod) error {
	a.n.Add(1)
	return a.PodAPI.Update(ctx, pod)
}

func (a *countingAPI) Delete(ctx context.Context, pod *corev1.Pod) error {
	a.n.Add(1)
	return a.PodAPI.Delete(ctx, pod)
}
