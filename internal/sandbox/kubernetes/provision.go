package kubernetes

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/warm"
)

// provisioner is what the warm-pool engine needs of Kubernetes: creating one Pod
// and waiting until it is Ready (Start), deleting one (Destroy), handing a Pod back
// warm after a job that went well (warm.Recycler), keeping a Pod that served one
// namespace to that namespace (warm.ClaimFilter), and a look at the ready Pods
// behind the Pod events (warm.Maintainer).
type provisioner struct{ p *Pool }

var (
	_ warm.Provisioner = provisioner{}
	_ warm.Recycler    = provisioner{}
	_ warm.ClaimFilter = provisioner{}
	_ warm.Maintainer  = provisioner{}
	_ warm.Closer      = provisioner{}
)

// Start hands out a warm Pod an earlier manager left (adopted by NewPool), or
// creates a Pod and its token Secret and waits until the Pod is Ready, woken by Pod
// events with a poll behind them. A Pod that cannot start (an image that does not
// pull, a container that cannot be made, no node to schedule it on, an agent that
// exited, no Ready within StartTimeout) is deleted and Start says why: the engine
// backs off, and Status().Degraded reports it.
func (v provisioner) Start(ctx context.Context, _ string) (sandbox.Sandbox, error) {
	p := v.p
	if ps := v.takeAdopted(ctx); ps != nil {
		return ps, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel) // Close and Detach end the start
	defer stop()
	ps, err := v.create(ctx)
	if err != nil {
		return nil, err
	}
	if err = v.waitReady(ctx, ps); err == nil {
		return ps, nil
	}
	dctx, dcancel := context.WithTimeout(context.Background(), p.opts.APITimeout)
	p.deletePod(dctx, ps)
	dcancel()
	return nil, err
}

// createAttempts is how many random names create tries before it gives up (a name
// taken by a Pod the API server has, such as another manager's).
const createAttempts = 3

// create creates a Pod under a name this object does not hold, drawing a new name
// when the API server already has a Pod of that name.
func (v provisioner) create(ctx context.Context) (*podSandbox, error) {
	p := v.p
	var err error
	for range createAttempts {
		ps := &podSandbox{pool: p}
		p.mu.Lock()
		for ps.pod == nil || p.pods[ps.pod.Name] != nil {
			ps.pod = renderPod(p.s)(newPodName(p.s))
		}
		p.pods[ps.pod.Name] = ps
		p.mu.Unlock()
		pod := ps.pod.DeepCopy() // Create writes to it; others read ps.pod
		if err = p.api.Create(ctx, pod); err == nil {
			ps.setPod(pod)
			return ps, nil
		}
		p.forget(ps)
		err = fmt.Errorf("creating sandbox Pod %s: %w", pod.Name, err)
		if !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
	}
	return nil, err
}

// waitReady waits until ps's Pod is Ready, or says why it will not be.
func (v provisioner) waitReady(ctx context.Context, ps *podSandbox) error {
	p := v.p
	seen := false
	for {
		changed := p.changedCh()
		cur, err := p.api.Get(ctx, ps.ID())
		switch {
		case apierrors.IsNotFound(err):
			if seen {
				return fmt.Errorf("sandbox Pod %s was deleted while it started", ps.ID())
			}
			// The cache has not seen it yet.
		case err != nil:
			if ctx.Err() == nil {
				p.opts.Log.V(1).Info("reading a starting sandbox Pod failed; trying again", "pod", ps.ID(), "error", err.Error())
			}
		case cur.UID != ps.podUID():
			return fmt.Errorf("sandbox Pod %s was replaced while it started", ps.ID())
		default:
			seen = true
			if msg := startProblem(cur); msg != "" {
				return errors.New(msg)
			}
			if msg := exited(cur); msg != "" {
				return errors.New(msg)
			}
			if cur.DeletionTimestamp != nil {
				return fmt.Errorf("sandbox Pod %s was deleted while it started", ps.ID())
			}
			if podReady(cur) {
				ps.setPod(cur)
				return nil
			}
		}
		t := p.clock.NewTimer(p.opts.Poll)
		select {
		case <-changed:
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			if p.ctx.Err() != nil {
				return fmt.Errorf("the pool closed while sandbox Pod %s started", ps.ID())
			}
			return fmt.Errorf("sandbox Pod %s cannot start: not Ready within %s", ps.ID(), p.opts.StartTimeout)
		}
		t.Stop()
	}
}

// takeAdopted returns an adopted Pod that is still warm and Ready, deleting the
// ones that are not; nil when none is left.
func (v provisioner) takeAdopted(ctx context.Context) *podSandbox {
	p := v.p
	for {
		p.mu.Lock()
		if len(p.adopted) == 0 {
			p.mu.Unlock()
			return nil
		}
		pod := p.adopted[0]
		p.adopted = p.adopted[1:]
		ps := p.pods[pod.Name]
		p.mu.Unlock()
		if ps == nil {
			continue
		}
		cur, err := p.api.Get(ctx, pod.Name)
		if err == nil && cur.UID == pod.UID && p.adoptable(cur) && cur.DeletionTimestamp == nil {
			ps.setPod(cur)
			return ps
		}
		p.deletePod(ctx, ps)
	}
}

// Destroy deletes the Pod (its UID as precondition) and its token Secret.
func (v provisioner) Destroy(ctx context.Context, sb sandbox.Sandbox) {
	if ps, ok := sb.(*podSandbox); ok {
		v.p.deletePod(ctx, ps)
	}
}

// Recycle hands a Pod back warm after a job that went well, while it has run fewer
// than MaxExecutions jobs: the executions count is written with the claim's
// resourceVersion fence (the Pod must still carry this claim). Anything else, and a
// pool closing, deletes the Pod.
func (v provisioner) Recycle(ctx context.Context, sb sandbox.Sandbox) bool {
	p := v.p
	ps, ok := sb.(*podSandbox)
	p.mu.Lock()
	draining := p.draining
	p.mu.Unlock()
	if !ok || ps.failed || draining || p.ctx.Err() != nil {
		return false
	}
	mine := ps.snapshot()
	runs := Executions(mine) + 1
	if runs >= p.s.MaxExecutions {
		return false
	}
	for range claimTries {
		cur, err := p.api.Get(ctx, ps.ID())
		if err != nil || cur.UID != mine.UID || cur.Annotations[AnnotationClaim] != mine.Annotations[AnnotationClaim] ||
			cur.DeletionTimestamp != nil || !podReady(cur) {
			return false
		}
		pod := cur.DeepCopy()
		markWarm(pod, runs)
		err = p.api.Update(ctx, pod)
		if err == nil {
			ps.setPod(pod)
			return true
		}
		if !apierrors.IsConflict(err) {
			return false
		}
	}
	return false
}

// Claimable keeps a Pod that served one namespace to that namespace: its processes
// and files are gone with each context, but a Pod is the boundary tenants are
// promised.
func (v provisioner) Claimable(sb sandbox.Sandbox, owner string) bool {
	ps, ok := sb.(*podSandbox)
	if !ok {
		return false
	}
	ps.mu.Lock() // no copy: the engine calls this with its lock held
	defer ps.mu.Unlock()
	return servesNamespace(ps.pod, claimNamespace(owner))
}

// Maintain retires the ready Pods the cache shows gone, going or no longer Ready
// (a Pod event that was missed).
func (v provisioner) Maintain(ctx context.Context) {
	p := v.p
	pods, err := p.api.List(ctx)
	if err != nil {
		return
	}
	byName := make(map[string]*corev1.Pod, len(pods))
	for i := range pods {
		byName[pods[i].Name] = &pods[i]
	}
	ready, _ := p.eng.Held()
	for _, sb := range ready {
		ps := sb.(*podSandbox)
		cur := byName[ps.ID()]
		if cur == nil || cur.UID != ps.podUID() || cur.DeletionTimestamp != nil || !podReady(cur) {
			p.eng.Retire(sb)
		}
	}
}

// Closed deletes the adopted Pods no start has taken (Close deletes every Pod the
// pool holds; Detach leaves them).
func (v provisioner) Closed(ctx context.Context, _ error) {
	p := v.p
	p.mu.Lock()
	var left []*podSandbox
	for _, pod := range p.adopted {
		if ps := p.pods[pod.Name]; ps != nil {
			left = append(left, ps)
		}
	}
	p.adopted = nil
	p.mu.Unlock()
	for _, ps := range left {
		p.deletePod(ctx, ps)
	}
}
