package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// PodAPI is what a pool needs of the API server, for its own Pods only. The
// controller's adapter (internal/backends/kubernetes) implements it over the manager's
// label-filtered cache and client.
type PodAPI interface {
	// List returns the pool's Pods as the cache sees them.
	List(ctx context.Context) ([]corev1.Pod, error)
	// Update writes pod's labels and annotations with its resourceVersion as
	// precondition: it fails with a Conflict when the Pod changed since it was read.
	Update(ctx context.Context, pod *corev1.Pod) error
	// Delete deletes pod if its UID, and its resourceVersion when set, still match.
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
	// Wake asks the controller to reconcile the pool now (a claim waits for a Pod).
	Wake func()
	// Manager identifies this manager process in claims.
	Manager string
	// Poll is how often a waiting claim looks again when no Pod event wakes it.
	Poll time.Duration
	// APITimeout bounds Release's API calls.
	APITimeout time.Duration
}

// Pool is a Kubernetes pool: its sandboxes are Pods the controller creates (Decide)
// and this pool claims and releases. It implements sandbox.Pool. Many Pool objects,
// in one manager (a template change) or in several, may share the same Pods: a
// claim is an update with the Pod's resourceVersion as precondition, so each Pod
// goes to one job.
type Pool struct {
	s    Settings
	hash string
	api  PodAPI
	opts Options

	ctx    context.Context // canceled by Close: in-flight executions end
	cancel context.CancelFunc

	mu       sync.Mutex
	min, max int
	waiting  int
	closed   bool
	changed  chan struct{}
	inflight map[string]*podSandbox // by Pod name
	// pods are the pool's Pods as last seen (by name): the lists the controller and
	// claims make, and this pool's own writes. Status reads them, not the API.
	pods map[string]corev1.Pod
}

var (
	_           sandbox.Pool    = (*Pool)(nil)
	_           sandbox.Sandbox = (*podSandbox)(nil)
	errNoRunner                 = errors.New("no agent client is configured for the Kubernetes backend")
)

const (
	defaultPoll       = time.Second
	defaultAPITimeout = 10 * time.Second
)

// NewPool returns the pool of s. It starts nothing: the controller makes the Pods.
func NewPool(cfg sandbox.PoolConfig, s Settings, api PodAPI, opts Options) (*Pool, error) {
	if s.Template.Image == "" {
		return nil, fmt.Errorf("%w: spec.kubernetes.image is empty; set the sandbox image", sandbox.ErrUnavailable)
	}
	if len(s.TokenKey) == 0 {
		return nil, fmt.Errorf("%w: the key of the pool's access tokens is not known yet", sandbox.ErrUnavailable)
	}
	if s.MaxExecutions < 1 {
		s.MaxExecutions = 1
	}
	if opts.Poll == 0 {
		opts.Poll = defaultPoll
	}
	if opts.APITimeout == 0 {
		opts.APITimeout = defaultAPITimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{
		s: s, hash: TemplateHash(s.Template), api: api, opts: opts,
		ctx: ctx, cancel: cancel,
		min: cfg.MinReady, max: cfg.MaxSandboxes,
		changed:  make(chan struct{}),
		inflight: map[string]*podSandbox{},
		pods:     map[string]corev1.Pod{},
	}, nil
}

// Notify tells waiting claims that the pool's Pods changed (a Pod event).
func (p *Pool) Notify() {
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// Observe records the pool's Pods as a list of them shows them (the controller
// calls it with each list it makes): Status reports from what was observed last.
func (p *Pool) Observe(pods []corev1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observeLocked(pods)
}

func (p *Pool) observeLocked(pods []corev1.Pod) {
	if p.closed {
		return
	}
	p.pods = make(map[string]corev1.Pod, len(pods))
	for i := range pods {
		p.pods[pods[i].Name] = pods[i]
	}
}

// wrote records a Pod as this pool wrote it (nil: deleted).
func (p *Pool) wrote(name string, pod *corev1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if pod == nil {
		delete(p.pods, name)
		return
	}
	p.pods[name] = *pod.DeepCopy()
}

// Waiting is how many claims wait for a sandbox.
func (p *Pool) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting
}

// Holds reports whether this pool object runs a job in the named Pod.
func (p *Pool) Holds(podName string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.inflight[podName]
	return ok
}

// Size returns minReady and maxSandboxes.
func (p *Pool) Size() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.min, p.max
}

// Settings returns the pool's settings.
func (p *Pool) Settings() Settings { return p.s }

// Acquire claims a warm, ready Pod of the current template: it writes the claim
// into the Pod's labels with the resourceVersion it read, and tries the next Pod when
// another claim got there first. With none free it waits, counted in Waiting (the
// controller makes a Pod for each waiting claim, within maxSandboxes).
func (p *Pool) Acquire(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	claimant, ok := sandbox.ClaimantFrom(ctx)
	if !ok {
		claimant = sandbox.Claimant{Key: owner}
	}
	counted := false
	defer func() {
		if counted {
			p.mu.Lock()
			p.waiting--
			p.mu.Unlock()
		}
	}()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, sandbox.ErrPoolClosed
		}
		changed := p.changed
		p.mu.Unlock()

		sb, problem, err := p.tryClaim(ctx, claimant)
		if err != nil || sb != nil {
			return sb, err
		}
		if problem != "" {
			return nil, fmt.Errorf("%w: %s", sandbox.ErrUnavailable, problem)
		}
		if !counted {
			counted = true
			p.mu.Lock()
			p.waiting++
			p.mu.Unlock()
		}
		if p.opts.Wake != nil {
			p.opts.Wake()
		}
		t := time.NewTimer(p.opts.Poll)
		select {
		case <-changed:
		case <-t.C:
		case <-p.ctx.Done():
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// tryClaim claims one Pod, or says why none can be had: nothing (wait) or a
// start problem (when no Pod is starting or ready and one cannot start).
func (p *Pool) tryClaim(ctx context.Context, c sandbox.Claimant) (*podSandbox, string, error) {
	pods, err := p.api.List(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("listing the pool's sandbox Pods: %w", err)
	}
	p.Observe(pods)
	views := Classify(pods, p.hash)
	var cands []View
	problem, hopeful := "", false
	for _, v := range views {
		switch {
		case claimable(v) && servesNamespace(v.Pod, claimNamespace(c.Key)):
			cands = append(cands, v)
		case v.Current && !v.Terminating && v.State == sandbox.StateStarting:
			hopeful = true
		case v.Current && !v.Terminating && v.State == sandbox.StateFailed && !v.Exited && problem == "":
			problem = v.Problem
		}
	}
	// The longest-warm first: its agent has had the most time to settle.
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Since.Before(cands[j].Since) })
	for _, v := range cands {
		pod := v.Pod.DeepCopy()
		markClaimed(pod, Claim{Claimant: c, Manager: p.opts.Manager, At: time.Now().UTC().Truncate(time.Second)})
		err := p.api.Update(ctx, pod)
		switch {
		case err == nil:
			sb := &podSandbox{pool: p, pod: pod}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				p.deletePod(pod)
				return nil, "", sandbox.ErrPoolClosed
			}
			p.inflight[pod.Name] = sb
			p.mu.Unlock()
			p.wrote(pod.Name, pod)
			return sb, "", nil
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			continue // another claim won this Pod, or it went away
		case ctx.Err() != nil:
			return nil, "", ctx.Err()
		default:
			return nil, "", fmt.Errorf("claiming sandbox Pod %s: %w", pod.Name, err)
		}
	}
	if len(cands) == 0 && !hopeful && problem != "" {
		return nil, problem, nil
	}
	return nil, "", nil
}

// Release ends a job: the Pod is deleted (one job per Pod), or, when the pool allows
// more executions per Pod and its job went well, handed back warm.
func (p *Pool) Release(sb sandbox.Sandbox) {
	ps, ok := sb.(*podSandbox)
	if !ok {
		return
	}
	p.mu.Lock()
	if p.inflight[ps.pod.Name] != ps {
		p.mu.Unlock()
		return // released already
	}
	delete(p.inflight, ps.pod.Name)
	closed := p.closed
	p.mu.Unlock()

	runs := Executions(ps.pod) + 1
	if closed || ps.failed || runs >= p.s.MaxExecutions {
		p.deletePod(ps.pod)
		return
	}
	pod := ps.pod.DeepCopy()
	markWarm(pod, runs)
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.APITimeout)
	defer cancel()
	if err := p.api.Update(ctx, pod); err != nil {
		p.deletePod(ps.pod)
		return
	}
	p.wrote(pod.Name, pod)
}

// deletePod deletes a Pod this pool holds, whatever the kubelet wrote to it since
// the claim (only its UID must match). A failure is left to the controller, which
// deletes busy Pods whose job is over.
func (p *Pool) deletePod(pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.APITimeout)
	defer cancel()
	pod = pod.DeepCopy()
	pod.ResourceVersion = ""
	if err := p.api.Delete(ctx, pod); err == nil || apierrors.IsNotFound(err) {
		p.wrote(pod.Name, nil)
	}
}

// Resize changes the warm target and the cap; the controller acts on it.
func (p *Pool) Resize(minReady, maxSandboxes int) error {
	if err := sandbox.ValidSize(minReady, maxSandboxes); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return sandbox.ErrPoolClosed
	}
	p.min, p.max = minReady, maxSandboxes
	return nil
}

// Status reports the pool's Pods (all managers' claims) as last observed: from
// memory, with no API call.
func (p *Pool) Status() sandbox.PoolStatus {
	p.mu.Lock()
	pods := make([]corev1.Pod, 0, len(p.pods))
	for _, pod := range p.pods {
		pods = append(pods, pod)
	}
	running := len(p.inflight)
	p.mu.Unlock()
	st := Status(Classify(pods, p.hash))
	st.Running = running // Busy counts the Pods other pool objects and managers claimed too
	return st
}

// Close stops claims, ends this pool object's running jobs (they fail with
// sandbox.ErrSandboxLost and are retried) and deletes its sandboxes: the Pods it
// runs jobs in, and every Pod of its template that no claim holds (warm, starting
// or stuck). A Pod another pool object or manager has claimed is left to it; one
// claimed while Close runs is left too (the delete's resourceVersion precondition
// fails). The controller makes new Pods for a pool that lives on.
func (p *Pool) Close() error {
	mine, ok := p.stop()
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.APITimeout)
	defer cancel()
	var errs []error
	for _, pod := range mine {
		pod = pod.DeepCopy()
		pod.ResourceVersion = "" // the kubelet may have written it since the claim
		if err := p.api.Delete(ctx, pod); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("deleting sandbox Pod %s: %w", pod.Name, err))
		}
	}
	pods, err := p.api.List(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing the pool's sandbox Pods: %w", err))...)
	}
	for _, v := range Classify(pods, p.hash) {
		if !v.Current || v.Terminating || v.Pod.Labels[LabelState] == StateBusy {
			continue
		}
		if err := p.api.Delete(ctx, v.Pod); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("deleting sandbox Pod %s: %w", v.Pod.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Detach stops this pool object as Close does (claims refused, its running jobs end
// with sandbox.ErrSandboxLost and are retried) but deletes no Pod: the Pods outlive
// the manager, and the next one adopts the warm ones and cleans up the busy ones (the
// manager detaches its pools when it stops cleanly, as in a rollout, so that warm Pods
// survive it). A Close after Detach does nothing.
func (p *Pool) Detach() {
	p.stop()
}

// stop refuses later claims and ends this object's running jobs; it returns the Pods
// those ran in, and false when the pool was stopped already.
func (p *Pool) stop() ([]*corev1.Pod, bool) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false
	}
	p.closed = true
	close(p.changed)
	p.changed = make(chan struct{})
	var mine []*corev1.Pod
	for _, sb := range p.inflight {
		mine = append(mine, sb.pod)
	}
	p.inflight = map[string]*podSandbox{}
	p.pods = map[string]corev1.Pod{}
	p.mu.Unlock()
	p.cancel()
	return mine, true
}

// podSandbox is a claimed Pod.
type podSandbox struct {
	pool   *Pool
	pod    *corev1.Pod // as claimed
	failed bool
}

func (s *podSandbox) ID() string { return s.pod.Name }

// Execute runs req in the Pod's agent. Errors mean the Pod or its agent failed
// (sandbox.ErrSandboxLost): the Pod is then deleted, not reused.
func (s *podSandbox) Execute(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	if s.pool.opts.NewRunner == nil {
		s.failed = true
		return nil, fmt.Errorf("%w: %v", sandbox.ErrUnavailable, errNoRunner)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.pool.ctx, cancel) // Close ends the job
	defer stop()
	res, err := s.pool.opts.NewRunner(s.pod, PodToken(s.pool.s.TokenKey, s.pod)).Run(ctx, req)
	if err != nil {
		s.failed = true
		if s.pool.ctx.Err() != nil {
			return nil, fmt.Errorf("%w: the pool was closed while sandbox Pod %s ran the job", sandbox.ErrSandboxLost, s.pod.Name)
		}
		if ctx.Err() != nil && !errors.Is(err, sandbox.ErrSandboxLost) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: sandbox Pod %s: %v", sandbox.ErrSandboxLost, s.pod.Name, err)
	}
	res.SandboxID = s.pod.Name
	return res, nil
}
