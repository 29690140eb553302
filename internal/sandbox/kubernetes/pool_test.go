package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// fakeAPI is a PodAPI with the API server's optimistic concurrency (an update or
// delete with a stale resourceVersion fails with a Conflict) and a fake kubelet: a
// created Pod gets the status kubelet gives it (Running and Ready unless set). It
// has no cache that lags (the envtest suite runs against a real API server).
type fakeAPI struct {
	mu      sync.Mutex
	pods    map[string]*corev1.Pod
	rv      int
	updates int
	created int
	deleted []string
	peak    int
	// kubelet sets a created Pod's status (nil: Running and Ready).
	kubelet func(*corev1.Pod)
	// createErr, when set, refuses every creation (the API server's answer).
	createErr error
	// beforeUpdate, when set, runs before each update (to let a rival claim first).
	beforeUpdate func(name string)
	// onChange is the Pod watch: it is told of each change the test makes behind the
	// pool's back (mutate, remove).
	onChange func(pod *corev1.Pod, gone bool)
}

func newFakeAPI(pods ...corev1.Pod) *fakeAPI {
	a := &fakeAPI{pods: map[string]*corev1.Pod{}}
	for i := range pods {
		a.rv++
		p := pods[i].DeepCopy()
		p.ResourceVersion = strconv.Itoa(a.rv)
		p.UID = types.UID("uid-" + p.Name)
		a.pods[p.Name] = p
	}
	return a
}

func (a *fakeAPI) List(context.Context) ([]corev1.Pod, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []corev1.Pod
	for _, p := range a.pods {
		out = append(out, *p.DeepCopy())
	}
	return out, nil
}

var podsResource = schema.GroupResource{Resource: "pods"}

func (a *fakeAPI) Get(_ context.Context, name string) (*corev1.Pod, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pods[name]
	if !ok {
		return nil, apierrors.NewNotFound(podsResource, name)
	}
	return p.DeepCopy(), nil
}

func (a *fakeAPI) Create(_ context.Context, pod *corev1.Pod) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.created++
	if a.createErr != nil {
		return a.createErr
	}
	if _, ok := a.pods[pod.Name]; ok {
		return apierrors.NewAlreadyExists(podsResource, pod.Name)
	}
	a.rv++
	pod.ResourceVersion = strconv.Itoa(a.rv)
	pod.UID = types.UID(fmt.Sprintf("uid-%s-%d", pod.Name, a.rv))
	pod.CreationTimestamp = metav1.NewTime(time.Now())
	p := pod.DeepCopy()
	if a.kubelet != nil {
		a.kubelet(p)
	} else {
		running(p)
	}
	a.pods[p.Name] = p
	a.peak = max(a.peak, len(a.pods))
	return nil
}

func (a *fakeAPI) Update(_ context.Context, pod *corev1.Pod) error {
	if a.beforeUpdate != nil {
		a.beforeUpdate(pod.Name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, ok := a.pods[pod.Name]
	if !ok {
		return apierrors.NewNotFound(podsResource, pod.Name)
	}
	if cur.ResourceVersion != pod.ResourceVersion {
		return apierrors.NewConflict(podsResource, pod.Name, errors.New("the object has been modified"))
	}
	a.rv++
	a.updates++
	p := pod.DeepCopy()
	p.Status = cur.Status // labels and annotations only
	p.ResourceVersion = strconv.Itoa(a.rv)
	a.pods[pod.Name] = p
	pod.ResourceVersion = p.ResourceVersion
	return nil
}

func (a *fakeAPI) Delete(_ context.Context, pod *corev1.Pod) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, ok := a.pods[pod.Name]
	if !ok {
		return apierrors.NewNotFound(podsResource, pod.Name)
	}
	if cur.UID != pod.UID || (pod.ResourceVersion != "" && cur.ResourceVersion != pod.ResourceVersion) {
		return apierrors.NewConflict(podsResource, pod.Name, errors.New("the object has been modified"))
	}
	delete(a.pods, pod.Name)
	a.deleted = append(a.deleted, pod.Name)
	return nil
}

func (a *fakeAPI) get(name string) *corev1.Pod {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pods[name]; ok {
		return p.DeepCopy()
	}
	return nil
}

// mutate changes a Pod as the kubelet or a user would, and tells the watch.
func (a *fakeAPI) mutate(name string, f func(*corev1.Pod)) {
	a.mu.Lock()
	p, ok := a.pods[name]
	if ok {
		f(p)
		a.rv++
		p.ResourceVersion = strconv.Itoa(a.rv)
		p = p.DeepCopy()
	}
	watch := a.onChange
	a.mu.Unlock()
	if ok && watch != nil {
		watch(p, false)
	}
}

// remove deletes a Pod behind the pool's back (kubectl delete, an eviction).
func (a *fakeAPI) remove(name string) {
	a.mu.Lock()
	p, ok := a.pods[name]
	delete(a.pods, name)
	watch := a.onChange
	a.mu.Unlock()
	if ok && watch != nil {
		watch(p, true)
	}
}

func (a *fakeAPI) count(f func() int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return f()
}

// names are the Pods that exist, sorted.
func (a *fakeAPI) names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for n := range a.pods {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func running(pod *corev1.Pod) {
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now())}}}
}

type runFunc func(ctx context.Context, req sandbox.Request) (*sandbox.Result, error)

func (f runFunc) Run(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	return f(ctx, req)
}

func okRunner(*corev1.Pod, string) Runner {
	return runFunc(func(context.Context, sandbox.Request) (*sandbox.Result, error) {
		return &sandbox.Result{Success: true}, nil
	})
}

// testPool is a pool over api of minReady, maxSandboxes; o may change its options.
func testPool(t *testing.T, api *fakeAPI, minReady, maxSandboxes, maxExec int, o Options) *Pool {
	t.Helper()
	s := testSettings.WithTokenKey(testKey)
	s.MaxExecutions = maxExec
	if o.NewRunner == nil {
		o.NewRunner = okRunner
	}
	if o.Manager == "" {
		o.Manager = "m1"
	}
	if o.Poll == 0 {
		o.Poll = 10 * time.Millisecond
	}
	p, err := NewPool(sandbox.PoolConfig{MinReady: minReady, MaxSandboxes: maxSandboxes}, s, api, o)
	if err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	api.onChange = p.PodChanged
	api.mu.Unlock()
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func claimCtx(t *testing.T) context.Context {
	return claimAs(t, "ns/req")
}

func claimAs(t *testing.T, key string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return sandbox.WithClaimant(ctx, sandbox.Claimant{Key: key, UID: key + "-uid", Attempt: 2})
}

// A start creates a Pod and waits until the kubelet makes it Ready (a Pod event
// wakes it); Status counts it Starting meanwhile.
func TestStartWaitsUntilThePodIsReady(t *testing.T) {
	api := newFakeAPI()
	api.kubelet = func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }
	clk := clocktesting.NewFakeClock(time.Unix(0, 0)) // the poll never fires: only the event wakes the start
	p := testPool(t, api, 1, 1, 1, Options{Clock: clk})
	sandboxtest.WaitFor(t, "a Pod is created", func() bool { return len(api.names()) == 1 })
	if st := p.Status(); st.Starting != 1 || st.Ready != 0 {
		t.Fatalf("Status while the Pod is Pending = %+v, want one starting", st)
	}
	name := api.names()[0]
	if !strings.HasPrefix(name, "pool-0123a-") || len(name) != len("pool-0123a-")+5 {
		t.Errorf("Pod name %q, want the pool's prefix and a random suffix", name)
	}
	api.mutate(name, running)
	sandboxtest.WaitFor(t, "the Pod is ready", func() bool { return p.Status().Ready == 1 })
	if st := p.Status(); st.Sandboxes[0].ID != name || st.Starting != 0 {
		t.Errorf("Status = %+v, want %s ready", st, name)
	}
}

// A random name can collide: with a Pod this object holds (drawn again before any
// request) or with one the API server has (AlreadyExists: drawn again and created).
func TestStartDrawsAnotherNameOnACollision(t *testing.T) {
	draws := []string{"aaaaa", "aaaaa", "bbbbb", "ccccc", "ddddd"}
	var mu sync.Mutex
	old := randomSuffix
	randomSuffix = func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(draws) == 0 {
			t.Error("more names drawn than the test expected")
			return "zzzzz"
		}
		n := draws[0]
		draws = draws[1:]
		return n
	}
	t.Cleanup(func() { randomSuffix = old })
	api := newFakeAPI()
	clk := clocktesting.NewFakeClock(time.Unix(0, 0)) // a failed start's backoff never ends
	p := testPool(t, api, 0, 3, 1, Options{Clock: clk})
	a, err := p.Acquire(claimCtx(t), "r1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire(claimCtx(t), "r2")
	if err != nil {
		t.Fatal(err)
	}
	// Someone else's Pod holds the next name.
	api.mu.Lock()
	api.pods["pool-0123a-ccccc"] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pool-0123a-ccccc", UID: "theirs"}}
	api.mu.Unlock()
	c, err := p.Acquire(claimCtx(t), "r3")
	if err != nil {
		t.Fatalf("Acquire after a name the API server has: %v", err)
	}
	got := []string{a.ID(), b.ID(), c.ID()}
	want := []string{"pool-0123a-aaaaa", "pool-0123a-bbbbb", "pool-0123a-ddddd"}
	if !slices.Equal(got, want) {
		t.Errorf("sandboxes %v, want %v", got, want)
	}
	if api.created != 4 {
		t.Errorf("%d Pod creations, want 4 (one refused as AlreadyExists)", api.created)
	}
	if pod, _ := api.Get(t.Context(), "pool-0123a-ccccc"); pod == nil || pod.UID != "theirs" {
		t.Errorf("the other Pod of the name was touched: %+v", pod)
	}
}

// A Pod that cannot start is deleted, the start fails naming the problem
// (Status().Degraded), and the next start waits for the engine's backoff.
func TestStartFailureDeletesThePodAndBacksOff(t *testing.T) {
	for name, tc := range map[string]struct {
		kubelet   func(*corev1.Pod)
		createErr error
		timeout   time.Duration
		want      string
	}{
		"an image that does not pull": {
			kubelet: func(p *corev1.Pod) {
				p.Status.Phase = corev1.PodPending
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "manifest unknown"}}}}
			},
			want: "cannot start: ImagePullBackOff: manifest unknown",
		},
		"no node to schedule it on": {
			kubelet: func(p *corev1.Pod) {
				p.Status.Phase = corev1.PodPending
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available"}}
			},
			want: "cannot be scheduled: 0/3 nodes are available",
		},
		"an agent that exits": {
			kubelet: func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed; p.Status.Reason = "Error" },
			want:    "exited (phase Failed): Error",
		},
		"not Ready in time": {
			kubelet: func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending },
			timeout: 50 * time.Millisecond,
			want:    "cannot start: not Ready within 50ms",
		},
		"the API server refuses the Pod": {
			createErr: apierrors.NewForbidden(podsResource, "x", errors.New(`pod rejected: RuntimeClass "gvisor" not found`)),
			want:      `RuntimeClass "gvisor" not found`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			api := newFakeAPI()
			api.kubelet, api.createErr = tc.kubelet, tc.createErr
			clk := clocktesting.NewFakeClock(time.Unix(0, 0))
			p := testPool(t, api, 1, 1, 1, Options{Clock: clk, StartTimeout: tc.timeout, BackoffBase: time.Second, Poll: time.Hour})
			sandboxtest.WaitFor(t, "the start fails", func() bool { return strings.Contains(p.Status().Degraded, tc.want) })
			if st := p.Status(); !strings.HasPrefix(st.Degraded, "creating sandboxes fails: ") || st.Ready+st.Starting != 0 {
				t.Errorf("Status = %+v, want no sandbox and Degraded naming the problem", st)
			}
			if n := len(api.names()); n != 0 {
				t.Errorf("%d Pods left after the failed start, want it deleted", n)
			}
			created := api.count(func() int { return api.created })
			sandboxtest.WaitFor(t, "the engine waits on the backoff", clk.HasWaiters)
			clk.Step(999 * time.Millisecond)
			time.Sleep(20 * time.Millisecond)
			if n := api.count(func() int { return api.created }); n != created {
				t.Fatalf("a start came before the backoff ended: %d creations, want %d", n, created)
			}
			api.mu.Lock()
			api.kubelet, api.createErr = nil, nil
			api.mu.Unlock()
			clk.Step(time.Millisecond)
			sandboxtest.WaitFor(t, "the pool recovers", func() bool { return p.Status().Ready == 1 })
			if st := p.Status(); st.Degraded != "" {
				t.Errorf("after a start succeeded Degraded = %q", st.Degraded)
			}
		})
	}
}

// A new pool adopts the warm, Ready Pods of its template that an earlier manager
// left (up to minReady, no Pod created for them), and deletes the others, except
// the ones another pool object of this manager holds and the ones already going.
func TestNewPoolAdoptsWarmPodsAndDeletesTheRest(t *testing.T) {
	noNonce := pod(7, "ready", false)
	delete(noNonce.Annotations, AnnotationTokenNonce)
	usedUp := pod(8, "ready", false)
	usedUp.Annotations[AnnotationExecutions] = "1"
	api := newFakeAPI(pod(0, "ready", false), pod(1, "ready", false), pod(2, "ready", false),
		pod(3, "busy", false), pod(4, "ready", true), pod(5, "starting", false), pod(6, "failed", false),
		noNonce, usedUp, pod(9, "terminating", false), pod(10, "ready", false))
	p := testPool(t, api, 2, 4, 1, Options{Held: func(name string) bool { return name == "pool-0123a-10" }})
	sandboxtest.WaitFor(t, "two ready", func() bool { return p.Status().Ready == 2 })
	st := p.Status()
	var ready []string
	for _, s := range st.Sandboxes {
		ready = append(ready, s.ID)
	}
	slices.Sort(ready)
	if fmt.Sprint(ready) != "[pool-0123a-0 pool-0123a-1]" {
		t.Errorf("ready sandboxes %v, want the first two warm Pods adopted", ready)
	}
	if n := api.count(func() int { return api.created }); n != 0 {
		t.Errorf("%d Pods created, want none (warm ones adopted)", n)
	}
	if got := fmt.Sprint(api.names()); got != "[pool-0123a-0 pool-0123a-1 pool-0123a-10 pool-0123a-9]" {
		t.Errorf("Pods left %s, want the adopted, the held and the terminating ones", got)
	}
}

// MaxExecutions > 1: a Pod whose job went well goes back warm (executions counted,
// claim removed) until it has run MaxExecutions jobs; one whose job failed goes.
func TestRecycleUpToMaxExecutions(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false))
	p := testPool(t, api, 1, 1, 2, Options{})
	sandboxtest.WaitFor(t, "ready", func() bool { return p.Status().Ready == 1 })
	for run := 1; run <= 2; run++ {
		sb, err := p.Acquire(claimCtx(t), "ns/req")
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if got := api.get(sb.ID()); got.Labels[LabelState] != StateBusy || ClaimOf(got) == nil || ClaimOf(got).Key != "ns/req" || ClaimOf(got).Manager != "m1" {
			t.Fatalf("run %d: the claimed Pod is %+v, want busy with this claim", run, got.ObjectMeta)
		}
		if _, err := sb.Execute(context.Background(), sandbox.Request{}); err != nil {
			t.Fatal(err)
		}
		// The kubelet writes the Pod's status meanwhile: a new resourceVersion.
		api.mutate(sb.ID(), func(*corev1.Pod) {})
		p.Release(sb)
		got := api.get(sb.ID())
		switch run {
		case 1:
			if sb.ID() != "pool-0123a-0" || got == nil || got.Labels[LabelState] != StateWarm || Executions(got) != 1 || ClaimOf(got) != nil {
				t.Fatalf("after run 1 the Pod is %+v, want warm with 1 execution and no claim", got)
			}
		case 2:
			if sb.ID() != "pool-0123a-0" {
				t.Fatalf("run 2 ran in %s, want the recycled Pod", sb.ID())
			}
			sandboxtest.WaitFor(t, "the Pod deleted after run 2 (maxExecutions 2)", func() bool { return api.get(sb.ID()) == nil })
		}
	}
	sandboxtest.WaitFor(t, "a new Pod ready", func() bool { return p.Status().Ready == 1 })
}

// A Pod that served one namespace serves no other: another namespace's claim gets
// another Pod (a new one when the pool is full: the served one makes room).
func TestReuseStaysInOneNamespace(t *testing.T) {
	for name, max := range map[string]int{"room for another Pod": 2, "at the cap": 1} {
		t.Run(name, func(t *testing.T) {
			api := newFakeAPI(pod(0, "ready", false))
			p := testPool(t, api, 1, max, 5, Options{})
			sandboxtest.WaitFor(t, "ready", func() bool { return p.Status().Ready == 1 })
			sb, err := p.Acquire(claimAs(t, "a/first"), "a/first")
			if err != nil {
				t.Fatal(err)
			}
			served := sb.ID()
			p.Release(sb)
			if got := api.get(served); got == nil || got.Annotations[AnnotationServedNamespace] != "a" {
				t.Fatalf("after a job of namespace a the Pod is %+v", got)
			}
			sb, err = p.Acquire(claimAs(t, "b/other"), "b/other")
			if err != nil {
				t.Fatal(err)
			}
			if sb.ID() == served {
				t.Fatalf("namespace b claimed %s, which ran a job of namespace a", served)
			}
			if got := api.get(sb.ID()); got.Annotations[AnnotationServedNamespace] != "b" {
				t.Errorf("the Pod namespace b claimed serves %q", got.Annotations[AnnotationServedNamespace])
			}
			p.Release(sb)
			if max == 1 {
				if api.get(served) != nil {
					t.Errorf("at the cap the Pod that served namespace a was kept")
				}
				return
			}
			sb, err = p.Acquire(claimAs(t, "a/second"), "a/second")
			if err != nil || sb.ID() != served {
				t.Fatalf("namespace a did not reuse its own Pod %s: %v, %v", served, sb, err)
			}
			p.Release(sb)
		})
	}
}

// A ready Pod deleted or failing behind the pool's back (its watch event) is dropped
// at once and replaced; a claim gets the replacement, never the gone Pod.
func TestPodGoneOutsideIsReplaced(t *testing.T) {
	for name, gone := range map[string]func(a *fakeAPI, name string){
		"deleted": func(a *fakeAPI, name string) { a.remove(name) },
		"exited": func(a *fakeAPI, name string) {
			a.mutate(name, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
		},
		"not Ready": func(a *fakeAPI, name string) {
			a.mutate(name, func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse })
		},
	} {
		t.Run(name, func(t *testing.T) {
			api := newFakeAPI(pod(0, "ready", false))
			clk := clocktesting.NewFakeClock(time.Unix(0, 0)) // no Maintainer tick: the event does it
			p := testPool(t, api, 1, 1, 1, Options{Clock: clk})
			sandboxtest.WaitFor(t, "ready", func() bool { return p.Status().Ready == 1 })
			gone(api, "pool-0123a-0")
			sandboxtest.WaitFor(t, "a replacement ready", func() bool {
				st := p.Status()
				return st.Ready == 1 && st.Sandboxes[0].ID != "pool-0123a-0"
			})
			sb, err := p.Acquire(claimCtx(t), "ns/req")
			if err != nil || sb.ID() == "pool-0123a-0" {
				t.Fatalf("Acquire = %v, %v; want the replacement", sb, err)
			}
			p.Release(sb)
		})
	}
}

// Without the event, the Maintainer's look at the cache finds it.
func TestMaintainRetiresAPodGoneUnseen(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false))
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	p := testPool(t, api, 1, 1, 1, Options{Clock: clk, Poll: time.Second})
	sandboxtest.WaitFor(t, "ready", func() bool { return p.Status().Ready == 1 })
	api.mu.Lock()
	api.onChange = nil // the event is missed
	api.mu.Unlock()
	api.remove("pool-0123a-0")
	sandboxtest.WaitFor(t, "the Maintainer waits on its tick", clk.HasWaiters)
	clk.Step(10 * time.Second)
	sandboxtest.WaitFor(t, "a replacement ready", func() bool {
		st := p.Status()
		return st.Ready == 1 && st.Sandboxes[0].ID != "pool-0123a-0"
	})
}

// The claim is written with the Pod's resourceVersion: when another manager claimed
// the Pod first, this claim gets another Pod and leaves the rival's alone.
func TestClaimIsFencedAgainstAnotherManager(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false), pod(1, "ready", false))
	p := testPool(t, api, 2, 2, 1, Options{})
	sandboxtest.WaitFor(t, "two ready", func() bool { return p.Status().Ready == 2 })
	var once sync.Once
	api.beforeUpdate = func(name string) {
		once.Do(func() {
			api.mu.Lock()
			rival := api.pods[name]
			markClaimed(rival, Claim{Claimant: sandbox.Claimant{Key: "ns/rival"}, Manager: "m2"})
			api.rv++
			rival.ResourceVersion = strconv.Itoa(api.rv)
			api.mu.Unlock()
		})
	}
	sb, err := p.Acquire(claimCtx(t), "ns/req")
	if err != nil {
		t.Fatal(err)
	}
	var rival *corev1.Pod
	for _, n := range []string{"pool-0123a-0", "pool-0123a-1"} {
		if c := ClaimOf(api.get(n)); c != nil && c.Manager == "m2" {
			rival = api.get(n)
		}
	}
	if rival == nil || rival.Name == sb.ID() {
		t.Fatalf("the claim took %s; the rival's Pod is %v", sb.ID(), rival)
	}
	if c := ClaimOf(api.get(sb.ID())); c == nil || c.Manager != "m1" {
		t.Errorf("the Pod this pool claimed carries %+v", c)
	}
	p.Release(sb)
	time.Sleep(20 * time.Millisecond)
	if api.get(rival.Name) == nil {
		t.Errorf("the Pod another manager claimed was deleted")
	}
}

func TestExecuteFailureLosesTheSandbox(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false))
	var mu sync.Mutex
	var gotToken, gotIP, wantToken string
	p := testPool(t, api, 1, 1, 5, Options{NewRunner: func(pod *corev1.Pod, token string) Runner {
		mu.Lock()
		gotToken, gotIP, wantToken = token, pod.Status.PodIP, string(RenderTokenSecret(testSettings.WithTokenKey(testKey), pod).Data[TokenKey])
		mu.Unlock()
		return runFunc(func(context.Context, sandbox.Request) (*sandbox.Result, error) {
			return nil, errors.New("connection refused")
		})
	}})
	sb, err := p.Acquire(claimCtx(t), "ns/req")
	if err != nil {
		t.Fatal(err)
	}
	_, err = sb.Execute(context.Background(), sandbox.Request{})
	if !errors.Is(err, sandbox.ErrSandboxLost) {
		t.Fatalf("Execute = %v, want ErrSandboxLost", err)
	}
	mu.Lock()
	if gotToken == "" || gotToken != wantToken || gotIP != "10.0.0.1" {
		t.Errorf("runner made for token %q at %q, want the Pod's own token %q (its Secret's) at the Pod's IP", gotToken, gotIP, wantToken)
	}
	mu.Unlock()
	p.Release(sb)
	sandboxtest.WaitFor(t, "the failed Pod deleted", func() bool { return api.get(sb.ID()) == nil })
}

// runningJob is a pool of two warm Pods and one starting, with one claimed and
// running a job that waits until it is ended; the job's Execute error arrives on
// the channel.
func runningJob(t *testing.T) (*Pool, *fakeAPI, sandbox.Sandbox, <-chan error) {
	t.Helper()
	api := newFakeAPI(pod(0, "ready", false), pod(1, "ready", false))
	api.kubelet = func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }
	started := make(chan struct{})
	p := testPool(t, api, 2, 3, 1, Options{NewRunner: func(*corev1.Pod, string) Runner {
		return runFunc(func(ctx context.Context, _ sandbox.Request) (*sandbox.Result, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
	}})
	sandboxtest.WaitFor(t, "two ready", func() bool { return p.Status().Ready == 2 })
	sb, err := p.Acquire(claimCtx(t), "ns/req")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := sb.Execute(context.Background(), sandbox.Request{}); errc <- err }()
	<-started
	sandboxtest.WaitFor(t, "a replacement starting", func() bool { return p.Status().Starting == 1 && len(api.names()) == 3 })
	return p, api, sb, errc
}

func TestCloseEndsRunningJobsAndDeletesEveryPod(t *testing.T) {
	p, api, _, errc := runningJob(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, sandbox.ErrSandboxLost) {
		t.Errorf("Execute after Close = %v, want ErrSandboxLost", err)
	}
	if _, err := p.Acquire(claimCtx(t), "ns/req"); !errors.Is(err, sandbox.ErrPoolClosed) {
		t.Errorf("Acquire after Close = %v, want ErrPoolClosed", err)
	}
	sandboxtest.WaitFor(t, "every Pod deleted (busy, warm and starting)", func() bool { return len(api.names()) == 0 })
}

func TestDetachEndsRunningJobsAndKeepsPods(t *testing.T) {
	p, api, _, errc := runningJob(t)
	var d sandbox.Detacher = p
	d.Detach()
	if err := <-errc; !errors.Is(err, sandbox.ErrSandboxLost) {
		t.Errorf("Execute after Detach = %v, want ErrSandboxLost", err)
	}
	if _, err := p.Acquire(claimCtx(t), "ns/req"); !errors.Is(err, sandbox.ErrPoolClosed) {
		t.Errorf("Acquire after Detach = %v, want ErrPoolClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close after Detach = %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(api.names()); n != 3 {
		t.Errorf("%d Pods left after Detach (and a Close after it), want all 3: they are left to the next manager", n)
	}
}

// Drain (the object a new one replaces) deletes the warm Pods now and the busy one
// when its job ends, and starts none.
func TestDrain(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false), pod(1, "ready", false))
	p := testPool(t, api, 2, 2, 5, Options{})
	sandboxtest.WaitFor(t, "two ready", func() bool { return p.Status().Ready == 2 })
	sb, err := p.Acquire(claimCtx(t), "ns/req")
	if err != nil {
		t.Fatal(err)
	}
	p.Drain()
	sandboxtest.WaitFor(t, "the warm Pod deleted", func() bool { return len(api.names()) == 1 })
	if api.get(sb.ID()) == nil {
		t.Fatalf("Drain deleted the busy Pod")
	}
	p.Release(sb)
	sandboxtest.WaitFor(t, "the busy Pod deleted after its job", func() bool { return len(api.names()) == 0 })
	time.Sleep(20 * time.Millisecond)
	if n := api.count(func() int { return api.created }); n != 0 {
		t.Errorf("a drained pool created %d Pods", n)
	}
}

func TestRenderPodIsHardenedAndKeepsTheTokenOut(t *testing.T) {
	s := testSettings.WithTokenKey(testKey)
	s.Template = PoolTemplate(sandbox.PoolConfig{Resources: sandbox.Resources{CPUMillis: 500, MemoryBytes: 512 << 20, ScratchBytes: 32 << 20}}, Class{Image: "img"})
	p := RenderPod(s)(3)
	token := PodToken(testKey, p)
	raw, _ := json.Marshal(p)
	if len(token) != 64 || strings.Contains(string(raw), token) || strings.Contains(string(raw), string(testKey)) {
		t.Fatalf("the token (%q) or its key is in the Pod: %s", token, raw)
	}
	c := p.Spec.Containers[0]
	sc := c.SecurityContext
	checks := map[string]bool{
		"automountServiceAccountToken false": p.Spec.AutomountServiceAccountToken != nil && !*p.Spec.AutomountServiceAccountToken,
		"runAsNonRoot":                       *p.Spec.SecurityContext.RunAsNonRoot && *sc.RunAsNonRoot,
		"seccomp RuntimeDefault":             sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault,
		"read-only root":                     *sc.ReadOnlyRootFilesystem,
		"no privilege escalation":            !*sc.AllowPrivilegeEscalation,
		"drop ALL":                           len(sc.Capabilities.Drop) == 1 && sc.Capabilities.Drop[0] == "ALL" && len(sc.Capabilities.Add) == 0,
		"no host namespaces":                 !p.Spec.HostNetwork && !p.Spec.HostPID && !p.Spec.HostIPC,
		"a user namespace (hostUsers false)": p.Spec.HostUsers != nil && !*p.Spec.HostUsers,
		"restartPolicy Never":                p.Spec.RestartPolicy == corev1.RestartPolicyNever,
		"cpu limit 500m":                     c.Resources.Limits.Cpu().String() == "500m",
		"memory request = limit 512Mi":       c.Resources.Requests.Memory().String() == "512Mi" && c.Resources.Limits.Memory().String() == "512Mi",
		"scratch 32Mi in memory":             p.Spec.Volumes[0].EmptyDir.SizeLimit.String() == "32Mi" && p.Spec.Volumes[0].EmptyDir.Medium == corev1.StorageMediumMemory,
		"token from the Pod's own Secret":    p.Spec.Volumes[1].Secret.SecretName == PodTokenSecretName(p) && strings.HasPrefix(PodTokenSecretName(p), p.Name+"-"),
		"agent reads the token file":         slices.Contains(c.Args, "--token-file="+TokenDir+"/"+TokenKey),
		"agent isolation none, in scratch":   c.Command[0] == AgentBinary && slices.Contains(c.Args, "--isolation=none") && strings.HasPrefix(WorkDir, ScratchDir+"/"),
		"named PodName(s, 3)":                p.Name == PodName(s, 3),
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("rendered Pod: %s does not hold", what)
		}
	}
	// A cluster without user namespaces opts out.
	hostUsers := s
	hostUsers.Template.HostUsers = ptr.To(true)
	if hu := RenderPod(hostUsers)(0).Spec.HostUsers; hu == nil || !*hu {
		t.Errorf("Template.HostUsers true: hostUsers = %v", hu)
	}
	// The template's hash changes with what the Pods are made from.
	t2 := s.Template
	t2.Image = "img:v2"
	if TemplateHash(t2) == TemplateHash(s.Template) {
		t.Errorf("the template hash ignores the image")
	}
	// Nothing a class or pool sets removes the limits: requests and limits are always
	// the pool's resolved cpu and memory.
	if got := c.Resources; got.Limits.Memory().Value() != 512<<20 || got.Requests.Cpu().MilliValue() != 500 {
		t.Errorf("resources %+v, want requests = limits from the pool", got)
	}
	if p.Spec.HostUsers == nil || *p.Spec.HostUsers {
		t.Errorf("hostUsers %v, want false (a user namespace per Pod) by default", p.Spec.HostUsers)
	}
}

// A class's Localhost seccomp profile reaches the Pod and its container, changes the
// template's hash (Pods are replaced), and a class without one keeps the hash it had
// before the field existed (no Pod replaced by the upgrade). An explicit RuntimeDefault
// is resolved to "" by internal/backends/kubernetes (tested there).
func TestRenderPodSeccompProfile(t *testing.T) {
	cfg := sandbox.PoolConfig{Resources: sandbox.Resources{CPUMillis: 500, MemoryBytes: 512 << 20}}
	plain := PoolTemplate(cfg, Class{Image: "img"})
	local := PoolTemplate(cfg, Class{Image: "img", SeccompLocalhostProfile: "vizops/sandbox-agent.json"})
	if TemplateHash(plain) == TemplateHash(local) {
		t.Errorf("a Localhost profile does not change the template hash")
	}
	if b, _ := json.Marshal(plain); strings.Contains(string(b), "seccomp") {
		t.Errorf("a RuntimeDefault template serializes a seccomp field (the hash of existing pools would change): %s", b)
	}
	s := testSettings.WithTokenKey(testKey)
	s.Template = local
	p := RenderPod(s)(0)
	for where, sp := range map[string]*corev1.SeccompProfile{"Pod": p.Spec.SecurityContext.SeccompProfile, "container": p.Spec.Containers[0].SecurityContext.SeccompProfile} {
		if sp == nil || sp.Type != corev1.SeccompProfileTypeLocalhost || sp.LocalhostProfile == nil || *sp.LocalhostProfile != "vizops/sandbox-agent.json" {
			t.Errorf("%s seccompProfile %+v, want Localhost vizops/sandbox-agent.json", where, sp)
		}
	}
}

var testKey = []byte("test-token-key-0123456789")

// Every Pod has its own token: another Pod of the same pool, the same name rendered
// again (a replacement), another pool or another key all give another token, and the
// Pod's Secret holds exactly the token the manager derives when it talks to the Pod.
func TestPodTokensArePerPod(t *testing.T) {
	s := testSettings.WithTokenKey(testKey)
	render := RenderPod(s)
	a, b, again := render(0), render(1), render(0)
	other := testSettings
	other.PoolUID = "99999999-0000"
	otherPool := RenderPod(other.WithTokenKey(testKey))(0)
	otherPool.Annotations = a.Annotations // even with the same nonce
	tokens := map[string]string{
		"pod 0":               PodToken(testKey, a),
		"pod 1":               PodToken(testKey, b),
		"pod 0 replaced":      PodToken(testKey, again),
		"pod 0 of other pool": PodToken(testKey, otherPool),
		"pod 0, another key":  PodToken([]byte("another-key-0123456789"), a),
	}
	seen := map[string]string{}
	for what, tok := range tokens {
		if len(tok) != 64 {
			t.Errorf("%s: token %q", what, tok)
		}
		if prev, ok := seen[tok]; ok {
			t.Errorf("%s and %s share a token", what, prev)
		}
		seen[tok] = what
	}
	sec := RenderTokenSecret(s, a)
	if string(sec.Data[TokenKey]) != PodToken(testKey, a) || sec.Name != a.Spec.Volumes[1].Secret.SecretName || sec.Name == RenderTokenSecret(s, again).Name {
		t.Errorf("Secret %s (%q) is not the Pod's own", sec.Name, sec.Data[TokenKey])
	}
	if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != s.PoolUID {
		t.Errorf("Secret owners = %+v, want the pool", sec.OwnerReferences)
	}
	noNonce := a.DeepCopy()
	delete(noNonce.Annotations, AnnotationTokenNonce)
	if PodToken(testKey, noNonce) != "" {
		t.Errorf("a Pod without a nonce got a token")
	}
}
