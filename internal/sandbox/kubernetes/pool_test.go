package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// fakeAPI is a PodAPI with the API server's optimistic concurrency: an update or
// delete with a stale resourceVersion fails with a Conflict. It does not model
// watches or a cache that lags (the envtest suite runs against a real API server).
type fakeAPI struct {
	mu      sync.Mutex
	pods    map[string]*corev1.Pod
	rv      int
	updates int
	// beforeUpdate, when set, runs before each update (to let a rival claim first).
	beforeUpdate func(name string)
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
		return nil
	}
	if cur.UID != pod.UID || (pod.ResourceVersion != "" && cur.ResourceVersion != pod.ResourceVersion) {
		return apierrors.NewConflict(podsResource, pod.Name, errors.New("the object has been modified"))
	}
	delete(a.pods, pod.Name)
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

type runFunc func(ctx context.Context, req sandbox.Request) (*sandbox.Result, error)

func (f runFunc) Run(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	return f(ctx, req)
}

func okRunner(*corev1.Pod, string) Runner {
	return runFunc(func(context.Context, sandbox.Request) (*sandbox.Result, error) {
		return &sandbox.Result{Success: true}, nil
	})
}

func newTestPool(t *testing.T, api PodAPI, maxExec int, runner func(*corev1.Pod, string) Runner) *Pool {
	t.Helper()
	s := testSettings.WithTokenKey(testKey)
	s.MaxExecutions = maxExec
	p, err := NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 3}, s, api, Options{NewRunner: runner, Poll: 10 * time.Millisecond, Manager: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func claimCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return sandbox.WithClaimant(ctx, sandbox.Claimant{Key: "ns/req", UID: "req-uid", Attempt: 2})
}

func TestAcquireClaimsWithPrecondition(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false), pod(1, "ready", false))
	// A rival manager claims whichever Pod this pool tries first, just before it.
	rivalled := false
	api.beforeUpdate = func(name string) {
		if rivalled {
			return
		}
		rivalled = true
		api.mu.Lock()
		p := api.pods[name]
		markClaimed(p, Claim{Claimant: sandbox.Claimant{Key: "ns/rival"}, Manager: "m2"})
		api.rv++
		p.ResourceVersion = strconv.Itoa(api.rv)
		api.mu.Unlock()
	}
	p := newTestPool(t, api, 1, okRunner)
	sb, err := p.Acquire(claimCtx(t), "ns/req")
	if err != nil {
		t.Fatal(err)
	}
	got := api.get(sb.ID())
	c := ClaimOf(got)
	if c == nil || c.Key != "ns/req" || c.UID != "req-uid" || c.Attempt != 2 || c.Manager != "m1" {
		t.Fatalf("claim of %s = %+v, want ns/req, req-uid, attempt 2, manager m1", sb.ID(), c)
	}
	if got.Labels[LabelState] != StateBusy {
		t.Errorf("state label = %q, want busy", got.Labels[LabelState])
	}
	var rival int
	for _, name := range []string{"pool-0123a-0", "pool-0123a-1"} {
		if c := ClaimOf(api.get(name)); c != nil && c.Key == "ns/rival" {
			rival++
			if name == sb.ID() {
				t.Errorf("Pod %s went to both claims", name)
			}
		}
	}
	if rival != 1 {
		t.Errorf("rival claims = %d, want 1", rival)
	}
	if p.Status().Running != 1 || !p.Holds(sb.ID()) {
		t.Errorf("Status().Running = %d, Holds = %v; want 1, true", p.Status().Running, p.Holds(sb.ID()))
	}
}

func TestAcquireSkipsWhatCannotBeClaimed(t *testing.T) {
	api := newFakeAPI(pod(0, "busy", false), pod(1, "starting", false), pod(2, "ready", true), pod(3, "terminating", false))
	p := newTestPool(t, api, 1, okRunner)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(ctx, "ns/req"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire = %v, want to wait until the deadline", err)
	}
	if api.updates != 0 {
		t.Errorf("%d updates, want none: no Pod was claimable", api.updates)
	}
	if p.Waiting() != 0 {
		t.Errorf("Waiting = %d after the claim gave up, want 0", p.Waiting())
	}
}

func TestAcquireWaitsAndCountsWaiting(t *testing.T) {
	api := newFakeAPI()
	woken := make(chan struct{}, 100)
	s := testSettings.WithTokenKey(testKey)
	p, err := NewPool(sandbox.PoolConfig{MinReady: 0, MaxSandboxes: 1}, s, api, Options{NewRunner: okRunner, Poll: 10 * time.Millisecond,
		Wake: func() { woken <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	done := make(chan error, 1)
	go func() {
		_, err := p.Acquire(claimCtx(t), "ns/req")
		done <- err
	}()
	<-woken // the controller is asked for a Pod
	if p.Waiting() != 1 {
		t.Fatalf("Waiting = %d, want 1", p.Waiting())
	}
	// The controller makes one, the kubelet starts it.
	ready := pod(0, "ready", false)
	api.mu.Lock()
	ready.ResourceVersion = "100"
	api.pods[ready.Name] = &ready
	api.mu.Unlock()
	p.Notify()
	if err := <-done; err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	if p.Waiting() != 0 {
		t.Errorf("Waiting = %d, want 0", p.Waiting())
	}
}

func TestAcquireReportsAPodThatCannotStart(t *testing.T) {
	api := newFakeAPI(pod(0, "failed", false))
	p := newTestPool(t, api, 1, okRunner)
	_, err := p.Acquire(claimCtx(t), "ns/req")
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "ImagePullBackOff") {
		t.Fatalf("Acquire = %v, want ErrUnavailable naming ImagePullBackOff", err)
	}
}

func TestReleaseOneJobPerPod(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false))
	p := newTestPool(t, api, 1, okRunner)
	sb, err := p.Acquire(claimCtx(t), "ns/req")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Execute(context.Background(), sandbox.Request{Code: "1"}); err != nil {
		t.Fatal(err)
	}
	// The kubelet writes the Pod's status meanwhile: a new resourceVersion.
	api.mu.Lock()
	api.rv++
	api.pods[sb.ID()].ResourceVersion = strconv.Itoa(api.rv)
	api.mu.Unlock()
	p.Release(sb)
	if api.get(sb.ID()) != nil {
		t.Errorf("Pod %s still exists after its one job", sb.ID())
	}
	p.Release(sb) // idempotent
	if p.Status().Running != 0 {
		t.Errorf("Status().Running = %d, want 0", p.Status().Running)
	}
}

func TestReleaseReusesUpToMaxExecutions(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false))
	p := newTestPool(t, api, 2, okRunner)
	for run := 1; run <= 2; run++ {
		sb, err := p.Acquire(claimCtx(t), "ns/req")
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if _, err := sb.Execute(context.Background(), sandbox.Request{}); err != nil {
			t.Fatal(err)
		}
		p.Release(sb)
		got := api.get(sb.ID())
		switch run {
		case 1:
			if got == nil || got.Labels[LabelState] != StateWarm || Executions(got) != 1 || ClaimOf(got) != nil {
				t.Fatalf("after run 1 the Pod is %+v, want warm with 1 execution and no claim", got)
			}
		case 2:
			if got != nil {
				t.Fatalf("after run 2 (maxExecutions 2) the Pod still exists")
			}
		}
	}
}

// A reused Pod serves one namespace: after a job of namespace a, a request of
// namespace b waits for (and makes the controller start) another Pod.
func TestReuseStaysInOneNamespace(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false))
	p := newTestPool(t, api, 5, okRunner)
	as := func(ctx context.Context, key string) context.Context {
		return sandbox.WithClaimant(ctx, sandbox.Claimant{Key: key, UID: key, Attempt: 1})
	}
	sb, err := p.Acquire(as(claimCtx(t), "a/first"), "a/first")
	if err != nil {
		t.Fatal(err)
	}
	p.Release(sb)
	if got := api.get(sb.ID()); got == nil || got.Annotations[AnnotationServedNamespace] != "a" {
		t.Fatalf("after a job of namespace a the Pod is %+v", got)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if sb, err := p.Acquire(as(short, "b/other"), "b/other"); err == nil {
		t.Fatalf("namespace b claimed %s, which ran a job of namespace a", sb.ID())
	}
	sb, err = p.Acquire(as(claimCtx(t), "a/second"), "a/second")
	if err != nil {
		t.Fatalf("namespace a cannot reuse its own Pod: %v", err)
	}
	p.Release(sb)
}

func TestExecuteFailureLosesTheSandbox(t *testing.T) {
	api := newFakeAPI(pod(0, "ready", false))
	var gotToken, gotIP, wantToken string
	p := newTestPool(t, api, 5, func(pod *corev1.Pod, token string) Runner {
		gotToken, gotIP, wantToken = token, pod.Status.PodIP, string(RenderTokenSecret(testSettings.WithTokenKey(testKey), pod).Data[TokenKey])
		return runFunc(func(context.Context, sandbox.Request) (*sandbox.Result, error) {
			return nil, errors.New("connection refused")
		})
	})
	sb, err := p.Acquire(claimCtx(t), "ns/req")
	if err != nil {
		t.Fatal(err)
	}
	_, err = sb.Execute(context.Background(), sandbox.Request{})
	if !errors.Is(err, sandbox.ErrSandboxLost) {
		t.Fatalf("Execute = %v, want ErrSandboxLost", err)
	}
	if gotToken == "" || gotToken != wantToken || gotIP != "10.0.0.1" {
		t.Errorf("runner made for token %q at %q, want the Pod's own token %q (its Secret's) at the Pod's IP", gotToken, gotIP, wantToken)
	}
	p.Release(sb)
	if api.get(sb.ID()) != nil {
		t.Errorf("a failed sandbox was handed back instead of deleted")
	}
}

// runningJob is a pool of two warm Pods with one of them claimed and running a job
// that waits until it is ended; the job's Execute error arrives on the channel.
func runningJob(t *testing.T) (*Pool, *fakeAPI, sandbox.Sandbox, <-chan error) {
	t.Helper()
	api := newFakeAPI(pod(0, "ready", false), pod(1, "ready", false))
	started := make(chan struct{})
	p := newTestPool(t, api, 1, func(*corev1.Pod, string) Runner {
		return runFunc(func(ctx context.Context, _ sandbox.Request) (*sandbox.Result, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	sb, err := p.Acquire(claimCtx(t), "ns/req")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := sb.Execute(context.Background(), sandbox.Request{}); errc <- err }()
	<-started
	return p, api, sb, errc
}

func TestCloseEndsRunningJobsAndDeletesPods(t *testing.T) {
	p, api, sb, errc := runningJob(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, sandbox.ErrSandboxLost) {
		t.Errorf("Execute after Close = %v, want ErrSandboxLost", err)
	}
	if _, err := p.Acquire(claimCtx(t), "ns/req"); !errors.Is(err, sandbox.ErrPoolClosed) {
		t.Errorf("Acquire after Close = %v, want ErrPoolClosed", err)
	}
	if api.get(sb.ID()) != nil || api.get("pool-0123a-1") != nil {
		t.Errorf("Close left a sandbox Pod: it destroys the busy and the warm ones")
	}
}

func TestDetachEndsRunningJobsAndKeepsPods(t *testing.T) {
	p, api, sb, errc := runningJob(t)
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
	if api.get(sb.ID()) == nil || api.get("pool-0123a-1") == nil {
		t.Errorf("Detach (or a Close after it) deleted a sandbox Pod: they are left to the next manager")
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
		"named as its slot":                  p.Name == PodName(s, 3),
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

// Every Pod has its own token: another Pod of the same pool, the same slot rendered
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
