package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/warm"
)

// PodAPI is what a pool needs of the API server, for its own Pods only. The
// controller's adapter (internal/backends/kubernetes) implements it over the manager's
// label-filtered cache and client.
type PodAPI interface {
	// List returns the pool's Pods as the cache sees them.
	List(ctx context.Context) ([]corev1.Pod, error)
	// Get returns one of the pool's Pods as the cache sees it (NotFound when it has
	// none of that name).
	Get(ctx context.Context, name string) (*corev1.Pod, error)
	// Create makes pod's own token Secret (RenderTokenSecret), then pod; a Pod that
	// cannot be made takes its Secret with it. On success pod carries its UID.
	Create(ctx context.Context, pod *corev1.Pod) error
	// Update writes pod's labels and annotations with its resourceVersion as
	// precondition: it fails with a Conflict when the Pod changed since it was read.
	Update(ctx context.Context, pod *corev1.Pod) error
	// Delete deletes pod if its UID, and its resourceVersion when set, still match,
	// then its token Secret.
	Delete(ctx context.Context, pod *corev1.Pod) error
}

// Runner runs one job in a sandbox Pod's agent.
type Runner interface {
	Run(ctx context.Context, req sandbox.Request) (*sandbox.Result, error)
}

// Options are a pool's process-wide settings.
type Options struct {
	// NewRunner returns the client of pod's agent (http://<podIP>:49999 with the
	// Pod's own token, PodToken).
	NewRunner func(pod *corev1.Pod, token string) Runner
	// Manager identifies this manager process in claims.
	Manager string
	// Poll is how often a starting Pod, and the ready ones, are looked at again when
	// no Pod event (Notify, PodChanged) comes.
	Poll time.Duration
	// APITimeout bounds each API call that is not a start.
	APITimeout time.Duration
	// StartTimeout bounds a start: creating the Pod and its becoming Ready (0: 5 min).
	StartTimeout time.Duration
	// Held, when set, reports whether another pool object of this manager (the one a
	// new object replaces while it drains) holds a Pod of the pool: NewPool leaves
	// such Pods alone.
	Held func(podName string) bool
	// Clock drives the engine's backoff and the start's polls (nil: the real clock).
	Clock clock.WithTicker
	// BackoffBase and BackoffMax bound the hold after a failed start (0: the engine's).
	BackoffBase, BackoffMax time.Duration
	Log                     logr.Logger
}

// Pool is a Kubernetes pool on the warm-pool engine (internal/sandbox/warm): each
// sandbox is a Pod this pool creates (with its token Secret), waits for until Ready,
// claims with a precondition write, and deletes, or hands back warm for another job
// of the same namespace up to MaxExecutions. Status is the engine's, from memory. It
// implements sandbox.Pool and sandbox.Detacher.
type Pool struct {
	s     Settings
	hash  string
	api   PodAPI
	opts  Options
	clock clock.WithTicker
	eng   *warm.Engine

	ctx    context.Context // canceled by Close and Detach: jobs and starts end
	cancel context.CancelFunc

	mu       sync.Mutex
	changed  chan struct{}          // closed (and replaced) on each Pod event
	pods     map[string]*podSandbox // every Pod this object holds: starting, ready, busy
	adopted  []*corev1.Pod          // warm Pods of an earlier manager, for the first starts
	detached bool                   // Destroy deletes nothing: the Pods outlive this object
	draining bool                   // Drain: no Pod goes back warm
}

var (
	_           sandbox.Pool     = (*Pool)(nil)
	_           sandbox.Detacher = (*Pool)(nil)
	_           sandbox.Sandbox  = (*podSandbox)(nil)
	errNoRunner                  = errors.New("no agent client is configured for the Kubernetes backend")
	// errTaken: another claim (of another manager) holds the Pod; this pool lets it go
	// without deleting it.
	errTaken = errors.New("claimed by another manager")
)

const (
	defaultPoll         = time.Second
	defaultAPITimeout   = 10 * time.Second
	defaultStartTimeout = 5 * time.Minute
	// claimTries bounds the precondition writes of one claim (or hand-back) when the
	// kubelet's status writes keep changing the Pod's resourceVersion under it.
	claimTries = 3
	// failClaimsAfter is the engine's FailClaimsAfter.
	failClaimsAfter = 2
)

// NewPool returns the pool of s on the warm-pool engine. It first adopts what an
// earlier manager left: up to minReady warm, Ready Pods of the current template
// (the engine's first starts hand them out instead of creating Pods), and deletes
// the pool's other Pods (busy ones, whose jobs were lost with that manager; Pods of
// an old template; starting or failed ones; warm ones beyond minReady), except
// those another pool object of this manager holds (Options.Held).
func NewPool(cfg sandbox.PoolConfig, s Settings, api PodAPI, opts Options) (*Pool, error) {
	if s.Template.Image == "" {
		return nil, fmt.Errorf("%w: spec.kubernetes.image is empty; set the sandbox image", sandbox.ErrUnavailable)
	}
	if len(s.TokenKey) == 0 {
		return nil, fmt.Errorf("%w: the key of the pool's access tokens is not known yet", sandbox.ErrUnavailable)
	}
	if err := sandbox.ValidSize(cfg.MinReady, cfg.MaxSandboxes); err != nil {
		return nil, err
	}
	if s.MaxExecutions < 1 {
		s.MaxExecutions = 1
	}
	if opts.Poll <= 0 {
		opts.Poll = defaultPoll
	}
	if opts.APITimeout <= 0 {
		opts.APITimeout = defaultAPITimeout
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = defaultStartTimeout
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		s: s, hash: TemplateHash(s.Template), api: api, opts: opts, clock: opts.Clock,
		ctx: ctx, cancel: cancel,
		changed: make(chan struct{}),
		pods:    map[string]*podSandbox{},
	}
	if err := p.adopt(cfg.MinReady); err != nil {
		cancel()
		return nil, err
	}
	eng, err := warm.New(provisioner{p}, warm.Options{
		MinReady: cfg.MinReady, MaxSandboxes: cfg.MaxSandboxes, Kind: "Kubernetes",
		Clock: opts.Clock, BackoffBase: opts.BackoffBase, BackoffMax: opts.BackoffMax,
		CallTimeout: opts.StartTimeout + opts.APITimeout,
		// A Pod that cannot start is a class or cluster problem (an image, a node, a
		// RuntimeClass), not a passing one: after two failed starts in a row a claim
		// fails at once (sandbox.ErrUnavailable, naming the problem) rather than wait.
		FailClaimsAfter: failClaimsAfter,
		Tick:            10 * opts.Poll, // the Maintainer's look at the ready Pods, behind the Pod events
		Log:             opts.Log,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	p.eng = eng
	return p, nil
}

// adopt takes up to n warm, Ready Pods of the current template that no pool object
// of this manager holds, and deletes the pool's other Pods that none holds.
func (p *Pool) adopt(n int) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.APITimeout)
	defer cancel()
	pods, err := p.api.List(ctx)
	if err != nil {
		return fmt.Errorf("listing the pool's sandbox Pods: %w", err)
	}
	// The ones Ready longest first (the engine's order), then by name.
	sort.SliceStable(pods, func(i, j int) bool {
		ti, tj := readySince(&pods[i]), readySince(&pods[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return pods[i].Name < pods[j].Name
	})
	for i := range pods {
		pod := &pods[i]
		switch {
		case pod.DeletionTimestamp != nil || (p.opts.Held != nil && p.opts.Held(pod.Name)):
			continue
		case len(p.adopted) < n && p.adoptable(pod):
			p.adopted = append(p.adopted, pod.DeepCopy())
			p.pods[pod.Name] = &podSandbox{pool: p, pod: pod.DeepCopy()}
			continue
		}
		p.opts.Log.V(1).Info("deleting a sandbox Pod no pool object holds", "pod", pod.Name, "state", pod.Labels[LabelState])
		gone := pod.DeepCopy()
		gone.ResourceVersion = "" // a busy Pod: the kubelet writes it
		if err := p.api.Delete(ctx, gone); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			p.opts.Log.Info("could not delete a sandbox Pod left by an earlier manager; the pool's finalizer deletes it", "pod", pod.Name, "error", err.Error())
		}
	}
	return nil
}

// readySince is when pod became Ready (zero when it has no Ready condition).
func readySince(pod *corev1.Pod) time.Time {
	if c := podCondition(pod, corev1.PodReady); c != nil {
		return c.LastTransitionTime.Time
	}
	return time.Time{}
}

// adoptable reports whether pod can serve this pool as it is: warm, Ready, of the
// current template, with a token nonce, and not used up.
func (p *Pool) adoptable(pod *corev1.Pod) bool {
	return pod.Labels[LabelState] == StateWarm && pod.Labels[LabelTemplateHash] == p.hash &&
		podReady(pod) && PodToken(p.s.TokenKey, pod) != "" && Executions(pod) < p.s.MaxExecutions
}

// Notify tells the pool that its Pods changed (a Pod event): starts waiting for a
// Pod to become Ready look again.
func (p *Pool) Notify() {
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// PodChanged is a Pod event of the pool (gone: the Pod was deleted): it wakes the
// starts (Notify) and retires a ready sandbox whose Pod is gone, going or no
// longer Ready, so that the engine starts a replacement and no claim gets it.
func (p *Pool) PodChanged(pod *corev1.Pod, gone bool) {
	p.Notify()
	p.mu.Lock()
	sb := p.pods[pod.Name]
	p.mu.Unlock()
	if sb == nil || p.eng == nil || sb.podUID() != pod.UID {
		return
	}
	if gone || pod.DeletionTimestamp != nil || !podReady(pod) {
		p.eng.Retire(sb)
	}
}

// Holds reports whether this pool object holds the named Pod (starting, ready or
// busy).
func (p *Pool) Holds(podName string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.pods[podName]
	return ok
}

// Settings returns the pool's settings.
func (p *Pool) Settings() Settings { return p.s }

// Acquire claims a ready Pod: the engine picks it (the one ready longest that may
// serve the claim's namespace), then the claim is written into the Pod's labels and
// annotations with the resourceVersion the cache shows as precondition, the fence
// against another manager that holds the same Pod (a leader handing over). A Pod
// whose claim cannot be written is destroyed and the next one tried.
func (p *Pool) Acquire(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	claimant, ok := sandbox.ClaimantFrom(ctx)
	if !ok {
		claimant = sandbox.Claimant{Key: owner}
	}
	var last error
	for range claimTries {
		sb, err := p.eng.Acquire(ctx, owner)
		if err != nil {
			return nil, err
		}
		ps := sb.(*podSandbox)
		err = p.claim(ctx, ps, claimant)
		if err == nil {
			return ps, nil
		}
		ps.setLost(errors.Is(err, errTaken))
		p.eng.Release(ps)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		last = err
		p.opts.Log.Info("claiming a sandbox Pod failed; it is deleted and another tried", "pod", ps.ID(), "error", err.Error())
	}
	return nil, fmt.Errorf("%w: %v", sandbox.ErrSandboxLost, last)
}

// claim writes c's claim into the Pod.
func (p *Pool) claim(ctx context.Context, ps *podSandbox, c sandbox.Claimant) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.APITimeout)
	defer cancel()
	for i := 0; ; i++ {
		cur, err := p.api.Get(ctx, ps.ID())
		if err != nil {
			return fmt.Errorf("claiming sandbox Pod %s: %w", ps.ID(), err)
		}
		if cur.UID == ps.podUID() && cur.Labels[LabelState] == StateBusy {
			return fmt.Errorf("sandbox Pod %s: %w", ps.ID(), errTaken)
		}
		if cur.UID != ps.podUID() || cur.DeletionTimestamp != nil || cur.Labels[LabelState] != StateWarm || !podReady(cur) {
			return fmt.Errorf("sandbox Pod %s is no longer warm and Ready", ps.ID())
		}
		pod := cur.DeepCopy()
		markClaimed(pod, Claim{Claimant: c, Manager: p.opts.Manager, At: p.clock.Now().UTC().Truncate(time.Second)})
		err = p.api.Update(ctx, pod)
		if err == nil {
			ps.setPod(pod)
			return nil
		}
		if !apierrors.IsConflict(err) || i+1 >= claimTries {
			return fmt.Errorf("claiming sandbox Pod %s: %w", ps.ID(), err)
		}
		// A Conflict: the kubelet wrote the Pod, or another manager claimed it (the
		// next read shows which).
	}
}

// Release ends a job: the Pod is deleted, or handed back warm (Recycle).
func (p *Pool) Release(sb sandbox.Sandbox) {
	if sb != nil {
		p.eng.Release(sb)
	}
}

// Drain stops keeping warm Pods: the ready ones are deleted at once, the busy ones
// when their job ends. The adapter drains the pool object a new one replaces (a
// template change), so that the old template's warm Pods do not outlive the switch
// while the registry waits for the old object's jobs before closing it.
func (p *Pool) Drain() {
	p.mu.Lock()
	p.draining = true
	p.mu.Unlock()
	_ = p.eng.Resize(0, 1)
}

// Resize changes the warm target and the cap (the engine's Resize).
func (p *Pool) Resize(minReady, maxSandboxes int) error {
	return p.eng.Resize(minReady, maxSandboxes)
}

// Status is the engine's, from memory: no API call.
func (p *Pool) Status() sandbox.PoolStatus { return p.eng.Status() }

// Close ends this pool object's running jobs (they fail with sandbox.ErrSandboxLost
// and are retried) and deletes every Pod it holds: ready, busy and starting ones.
// Pods another pool object holds are left to it.
func (p *Pool) Close() error {
	p.cancel()
	return p.eng.Close()
}

// Detach stops this pool object as Close does (claims refused, its running jobs end
// with sandbox.ErrSandboxLost and are retried) but deletes no Pod: the Pods outlive
// the manager, and the next one adopts the warm ones and deletes the others (the
// manager detaches its pools when it stops cleanly, as in a rollout, so that warm
// Pods survive it). A Close after Detach does nothing.
func (p *Pool) Detach() {
	p.mu.Lock()
	p.detached = true
	p.mu.Unlock()
	p.cancel()
	_ = p.eng.Close()
}

// changedCh is the channel the next Pod event closes.
func (p *Pool) changedCh() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// forget drops a Pod this object no longer holds.
func (p *Pool) forget(ps *podSandbox) {
	p.mu.Lock()
	if p.pods[ps.ID()] == ps {
		delete(p.pods, ps.ID())
	}
	p.mu.Unlock()
}

// deletePod deletes a Pod this object holds, whatever the kubelet wrote to it since
// (only its UID must match), unless the object was detached.
func (p *Pool) deletePod(ctx context.Context, ps *podSandbox) {
	defer p.forget(ps)
	p.mu.Lock()
	detached := p.detached
	p.mu.Unlock()
	if detached || ps.isTaken() {
		return
	}
	pod := ps.snapshot()
	pod.ResourceVersion = ""
	if err := p.api.Delete(ctx, pod); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		p.opts.Log.Info("could not delete a sandbox Pod; the next pool object or the pool's finalizer deletes it", "pod", pod.Name, "error", err.Error())
	}
}
