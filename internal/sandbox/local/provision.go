package local

import (
	"context"
	"fmt"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/warm"
)

// provisioner is what the warm-pool engine needs of Local: starting one bubblewrap'd
// sandbox and killing it, a slot of the operator-wide degraded-sandbox cap before a
// start (warm.Admitter), a claim's preference for a sandbox whose next job process is
// already forked (warm.Ranker), putting a healthy sandbox back after its job
// (warm.Recycler), a look for sandboxes that died while idle (warm.Maintainer) and
// freeing the pool's Quota reservation (warm.Closer).
type provisioner struct{ p *Pool }

var _ interface {
	warm.Provisioner
	warm.Admitter
	warm.Ranker
	warm.Recycler
	warm.Maintainer
	warm.Closer
} = provisioner{}

// Admit takes a slot of the Quota's degraded-sandbox cap when this node gives
// sandboxes no cgroup of their own; the start it admits owns the slot. When none is
// free, the Quota kicks the pool's engine once one frees.
func (v provisioner) Admit() bool {
	return v.p.degraded == "" || v.p.opts.Quota.reserveDegraded()
}

// Start starts one sandbox (the zygote or the agent, per Options.Engine) and waits
// until it answers. Close ends a start in flight.
func (v provisioner) Start(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	p := v.p
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.ctx, cancel)()
	p.mu.Lock()
	p.nextID++
	s := &localSandbox{id: fmt.Sprintf("%s-%d", p.tag, p.nextID), pool: p, degradedSlot: p.degraded != ""}
	if p.closed {
		p.mu.Unlock()
		p.releaseSlot(s)
		return nil, sandbox.ErrPoolClosed
	}
	p.all[s.id] = s
	p.live.Add(1)
	p.mu.Unlock()
	start := startZygote
	if p.opts.Engine == EngineAgent {
		start = startAgent
	}
	z, err := start(ctx, s.id, p.opts, p.cfg, p.res)
	if err != nil {
		p.forget(s)
		return nil, err
	}
	p.mu.Lock()
	s.z = z
	p.mu.Unlock()
	go p.watch(s)
	return s, nil
}

// Destroy kills a sandbox (its processes and cgroup) and frees its degraded slot.
func (v provisioner) Destroy(ctx context.Context, sb sandbox.Sandbox) {
	s := sb.(*localSandbox)
	s.z.kill()
	v.p.forget(s)
}

// Rank puts a sandbox whose next job process is already forked first, and skips one
// that died while idle (its watcher retires it).
func (v provisioner) Rank(sb sandbox.Sandbox) int {
	z := sb.(*localSandbox).z
	switch {
	case !z.alive():
		return -1
	case z.armed():
		return 1
	}
	return 0
}

// Recycle ends a claim: a sandbox that was not lost and still runs goes back to the
// ready list, as its zygote has already forked a fresh job process (the agent a
// fresh context) for the next owner.
func (v provisioner) Recycle(ctx context.Context, sb sandbox.Sandbox) bool {
	s := sb.(*localSandbox)
	p := v.p
	p.mu.Lock()
	defer p.mu.Unlock()
	s.claimed = false
	return !s.lost && s.z.alive()
}

// Maintain retires ready sandboxes whose process died: the watcher does this at once,
// but not for one that died while it was being recycled.
func (v provisioner) Maintain(ctx context.Context) {
	eng := v.p.engine()
	ready, _ := eng.Held()
	for _, sb := range ready {
		if !sb.(*localSandbox).z.alive() {
			eng.Retire(sb)
		}
	}
}

// Closed frees the pool's share of the Quota.
func (v provisioner) Closed(ctx context.Context, fatal error) { v.p.opts.Quota.release(v.p) }
