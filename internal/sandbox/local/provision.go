package local

import (
	"context"
	"fmt"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/warm"
)

// provisioner is what the warm-pool engine needs of Local: starting one bubblewrap'd
// sandbox and killing it, a slot of the operator-wide degraded-sandbox cap before a
// start (warm.Admitter), a claim that skips a sandbox that died (warm.Ranker), putting a healthy sandbox back after its job
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

// Start starts one sandbox (bwrap and the sandbox-agent in it) and waits until its
// agent answers. Close ends a start in flight.
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
	z, err := startAgent(ctx, s.id, p.opts, p.cfg, p.res)
	if err != nil {
		p.forget(s)
		return nil, err
	}
	p.mu.Lock()
	s.proc = z
	p.mu.Unlock()
	go p.watch(s)
	return s, nil
}

// Destroy kills a sandbox (its processes and cgroup) and frees its degraded slot.
func (v provisioner) Destroy(ctx context.Context, sb sandbox.Sandbox) {
	s := sb.(*localSandbox)
	s.proc.kill()
	v.p.forget(s)
}

// Rank skips a sandbox that died while idle (its watcher retires it). Every live one
// is equal: its agent starts the next context's kernel ahead while idle.
func (v provisioner) Rank(sb sandbox.Sandbox) int {
	if !sb.(*localSandbox).proc.alive() {
		return -1
	}
	return 0
}

// Recycle ends a claim: a sandbox that was not lost and still runs goes back to the
// ready list: its job's context is deleted, and the next owner's job runs in a fresh
// one, on a fresh kernel.
func (v provisioner) Recycle(ctx context.Context, sb sandbox.Sandbox) bool {
	s := sb.(*localSandbox)
	p := v.p
	p.mu.Lock()
	defer p.mu.Unlock()
	s.claimed = false
	return !s.lost && s.proc.alive()
}

// Maintain retires ready sandboxes whose process died: the watcher does this at once,
// but not for one that died while it was being recycled.
func (v provisioner) Maintain(ctx context.Context) {
	eng := v.p.engine()
	ready, _ := eng.Held()
	for _, sb := range ready {
		if !sb.(*localSandbox).proc.alive() {
			eng.Retire(sb)
		}
	}
}

// Closed frees the pool's share of the Quota.
func (v provisioner) Closed(ctx context.Context, fatal error) { v.p.opts.Quota.release(v.p) }
