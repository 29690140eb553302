package kubernetes

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/pooltest"
)

// TestPoolContract runs the warm-pool contract against a Kubernetes pool over the
// fake API server, with a stand-in for the SandboxPool controller's Pod step (it
// lists, Decides, creates and deletes, and tells the pool what it listed, as
// reconcilePods does) and for the kubelet (a new Pod is Running and Ready at once,
// or stuck in ImagePullBackOff while creation fails). The envtest suite of
// internal/controller runs the real controller against a real API server.
func TestPoolContract(t *testing.T) {
	pooltest.Run(t, func(t *testing.T, minReady, maxSandboxes int) pooltest.Fixture {
		c := &cluster{api: newFakeAPI(), wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
		s := testSettings.WithTokenKey(testKey)
		s.MaxExecutions = 1
		c.s = s
		pool, err := NewPool(sandbox.PoolConfig{MinReady: minReady, MaxSandboxes: maxSandboxes}, s, &countingAPI{PodAPI: c.api, n: &c.calls},
			Options{NewRunner: c.runner, Poll: 10 * time.Millisecond, Manager: "m1", Wake: c.kick})
		if err != nil {
			t.Fatal(err)
		}
		c.pool = pool
		go c.run()
		t.Cleanup(c.halt)
		return pooltest.Fixture{
			Pool:      &controlledPool{Pool: pool, c: c},
			Alive:     c.alive,
			PeakAlive: func() int { c.mu.Lock(); defer c.mu.Unlock(); return c.peak },
			Created:   func() int { c.mu.Lock(); defer c.mu.Unlock(); return c.created },
			Calls:     func() int { return int(c.calls.Load()) },
			Break:     c.exit,
			FailCreation: func(on bool) {
				c.mu.Lock()
				c.failing = on
				c.mu.Unlock()
				c.kick()
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

func (a *countingAPI) Update(ctx context.Context, pod *corev1.Pod) error {
	a.n.Add(1)
	return a.PodAPI.Update(ctx, pod)
}

func (a *countingAPI) Delete(ctx context.Context, pod *corev1.Pod) error {
	a.n.Add(1)
	return a.PodAPI.Delete(ctx, pod)
}

// controlledPool stops the stand-in controller before the pool closes, as the
// SandboxPool controller stops making Pods for a pool that is removed.
type controlledPool struct {
	*Pool
	c *cluster
}

func (p *controlledPool) Close() error {
	p.c.halt()
	return p.Pool.Close()
}

// cluster is the stand-in controller and kubelet.
type cluster struct {
	api   *fakeAPI
	s     Settings
	pool  *Pool
	calls atomic.Int64
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu      sync.Mutex
	failing bool
	created int
	peak    int
}

func (c *cluster) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *cluster) halt() {
	c.once.Do(func() { close(c.stop); <-c.done })
}

func (c *cluster) run() {
	defer close(c.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-tick.C:
		}
		c.reconcile()
	}
}

// reconcile is reconcilePods, plus the kubelet starting stuck Pods once creation
// works again.
func (c *cluster) reconcile() {
	ctx := context.Background()
	pods, _ := c.api.List(ctx)
	c.pool.Observe(pods)
	c.mu.Lock()
	failing := c.failing
	c.mu.Unlock()
	if !failing {
		for _, p := range pods {
			if startProblem(&p) != "" {
				c.api.mutate(p.Name, func(pod *corev1.Pod) { running(pod) })
			}
		}
	}
	minReady, maxSandboxes := c.pool.Size()
	plan := Decide(c.s, Classify(pods, TemplateHash(c.s.Template)), Want{
		MinReady: minReady, MaxSandboxes: maxSandboxes, Waiting: c.pool.Waiting(),
		Live: func(v View) bool { return c.pool.Holds(v.Pod.Name) },
	})
	for _, slot := range plan.Create {
		pod := RenderPod(c.s)(slot)
		if failing {
			pod.Status.Phase = corev1.PodPending
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}
		} else {
			running(pod)
		}
		c.create(pod)
	}
	for _, d := range plan.Delete {
		_ = c.api.Delete(ctx, d.Pod)
	}
	if len(plan.Create)+len(plan.Delete) > 0 {
		pods, _ = c.api.List(ctx)
		c.pool.Observe(pods)
	}
	c.pool.Notify()
}

func running(pod *corev1.Pod) {
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now())}}}
}

func (c *cluster) create(pod *corev1.Pod) {
	a := c.api
	a.mu.Lock()
	if _, ok := a.pods[pod.Name]; ok {
		a.mu.Unlock()
		return // AlreadyExists
	}
	a.rv++
	pod.ResourceVersion = strconv.Itoa(a.rv)
	pod.UID = types.UID("uid-" + pod.Name + "-" + pod.ResourceVersion)
	pod.CreationTimestamp = metav1.NewTime(time.Now())
	a.pods[pod.Name] = pod
	n := len(a.pods)
	a.mu.Unlock()
	c.mu.Lock()
	c.created++
	c.peak = max(c.peak, n)
	c.mu.Unlock()
}

func (a *fakeAPI) mutate(name string, f func(*corev1.Pod)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pods[name]; ok {
		f(p)
		a.rv++
		p.ResourceVersion = strconv.Itoa(a.rv)
	}
}

func (c *cluster) alive() int {
	c.api.mu.Lock()
	defer c.api.mu.Unlock()
	return len(c.api.pods)
}

// exit makes a Pod's agent exit, as a crash or an eviction does.
func (c *cluster) exit(name string) {
	c.api.mutate(name, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
	c.kick()
}

// runner is a Pod's agent: it answers while its Pod runs.
func (c *cluster) runner(pod *corev1.Pod, _ string) Runner {
	return runFunc(func(context.Context, sandbox.Request) (*sandbox.Result, error) {
		cur := c.api.get(pod.Name)
		if cur == nil || cur.UID != pod.UID || cur.Status.Phase != corev1.PodRunning {
			return nil, errors.New("connection refused")
		}
		return &sandbox.Result{Success: true}, nil
	})
}
