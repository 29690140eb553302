package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
	"github.com/vizops/viz-operator/internal/sandbox/warm"
)

// Pool is a warm pool of Local sandboxes. It implements sandbox.Pool. Claims, the
// ready list, replenishment with backoff, idle trim, Resize, Close and Status are the
// shared engine's (internal/sandbox/warm); what is Local's own is the provisioner
// (provision.go), the operator-wide Quota, and the claim checks of a busy sandbox.
type Pool struct {
	cfg  sandbox.PoolConfig
	opts Options
	res  sandbox.Resources
	tag  string
	eng  *warm.Engine // set under mu by NewPool; goroutines read it with engine()

	ctx    context.Context // canceled by Close: ends starts in flight and watchers
	cancel context.CancelFunc
	live   sync.WaitGroup // one per sandbox, from its start until it is destroyed

	mu     sync.Mutex
	all    map[string]*localSandbox // every sandbox from its start until destroyed
	closed bool
	nextID int

	degraded string // from the cgroup probe at NewPool: which limits are weak here
}

var _ sandbox.Pool = (*Pool)(nil)

// startFailuresBeforeUnavailable is how many starts in a row must fail before Acquire
// stops waiting and reports the backend unavailable.
const startFailuresBeforeUnavailable = 3

// The engine's backoff after failed starts, and how often it looks for sandboxes that
// died while idle (the watchers' backstop).
const (
	startBackoffBase = 200 * time.Millisecond
	startBackoffMax  = 10 * time.Second
	maintainTick     = 2 * time.Second
)

// NewPool checks that bwrap, the interpreter and its libraries work (failing fast with
// an error wrapping sandbox.ErrUnavailable) and starts filling the pool in background.
func NewPool(cfg sandbox.PoolConfig, opts Options) (*Pool, error) {
	opts = opts.withDefaults()
	sweepOnce.Do(func() { sweepStaleCgroups(opts.CgroupRoot, time.Now()) })
	if cfg.MaxSandboxes == 0 {
		cfg.MaxSandboxes = max(cfg.MinReady, 1)
	}
	if err := sandbox.ValidSize(cfg.MinReady, cfg.MaxSandboxes); err != nil {
		return nil, err
	}
	if cfg.Network == "" {
		cfg.Network = sandbox.NetworkNone
	}
	if cfg.Network != sandbox.NetworkNone && cfg.Network != sandbox.NetworkEgress {
		return nil, fmt.Errorf("unknown network %q (want None or Egress)", cfg.Network)
	}
	if err := preflight(opts); err != nil {
		return nil, err
	}
	if !agent.ReexecReady() {
		return nil, fmt.Errorf("%w: every Local sandbox runs this program's own binary as its sandbox-agent, and this program did not call agent.RunIfReexec first thing in main (or in TestMain)", sandbox.ErrUnavailable)
	}
	if _, err := agentBinary(opts); err != nil {
		return nil, err
	}
	var tag [3]byte
	_, _ = rand.Read(tag[:])
	res := resourcesWithDefaults(cfg.Resources)
	// Probe once whether sandboxes get their own cgroup here, to say so in Status.
	probe, probeErr := newCgroup(opts.CgroupRoot, "local-"+hex.EncodeToString(tag[:])+"-probe", res)
	degraded := degradedMessage(probe, probeErr)
	if probe != nil {
		_ = probe.remove()
	}
	if n := opts.Quota.maxDegraded(); degraded != "" && n > 0 {
		degraded += fmt.Sprintf(" At most %d such sandbox(es) run at once in this operator (--max-degraded-sandboxes).", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		cfg: cfg, opts: opts, res: res, degraded: degraded,
		tag: "local-" + hex.EncodeToString(tag[:]),
		ctx: ctx, cancel: cancel,
		all: map[string]*localSandbox{},
	}
	if err := opts.Quota.reserve(p, claimOf(cfg.MinReady, cfg.MaxSandboxes, res)); err != nil {
		cancel()
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	eng, err := warm.New(provisioner{p}, warm.Options{
		MinReady: cfg.MinReady, MaxSandboxes: cfg.MaxSandboxes,
		Kind:        "Local",
		BackoffBase: startBackoffBase,
		BackoffMax:  startBackoffMax,
		// A start is bounded by StartTimeout; the margin covers making its cgroup.
		CallTimeout:     opts.StartTimeout + 30*time.Second,
		Tick:            maintainTick,
		Degraded:        degraded,
		OnStarted:       cfg.OnSandboxStarted,
		IdleTTL:         opts.IdleTTL,
		FailClaimsAfter: startFailuresBeforeUnavailable,
	})
	if err != nil {
		opts.Quota.release(p)
		cancel()
		return nil, err
	}
	p.eng = eng
	return p, nil
}

// engine is the pool's engine, for goroutines that may run before NewPool returns.
func (p *Pool) engine() *warm.Engine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.eng
}

// kick makes the engine look again at what to start (a degraded slot freed).
func (p *Pool) kick() {
	if e := p.engine(); e != nil {
		e.Kick()
	}
}

// Acquire claims a ready sandbox, in O(1) when one is warm. It waits for one otherwise, within MaxSandboxes;
// after 3 starts in a row failed (none in flight) it fails at once with an error
// wrapping sandbox.ErrUnavailable, and one more start is tried after the backoff.
func (p *Pool) Acquire(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	sb, err := p.eng.Acquire(ctx, owner)
	if err != nil {
		return nil, err
	}
	s := sb.(*localSandbox)
	p.mu.Lock()
	s.claimed = true
	p.mu.Unlock()
	return s, nil
}

// Release returns a sandbox after its job. A healthy one goes to the back of the
// ready list: its job's context is deleted, so the next owner starts clean. A lost or dead one, or one over the cap, is destroyed.
func (p *Pool) Release(sb sandbox.Sandbox) { p.eng.Release(sb) }

// Resize changes the warm target and the cap, within the Quota. Busy sandboxes are
// never interrupted; ready ones over the new target or cap go now.
func (p *Pool) Resize(minReady, maxSandboxes int) error {
	err := sandbox.ValidSize(minReady, maxSandboxes)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && p.closed {
		err = sandbox.ErrPoolClosed
	}
	if err == nil {
		// The Quota first: a size it refuses leaves the pool as it was.
		err = p.opts.Quota.reserve(p, claimOf(minReady, maxSandboxes, p.res))
	}
	if err != nil {
		return err
	}
	return p.eng.Resize(minReady, maxSandboxes)
}

// Status reports counts and each sandbox's state, from memory; Degraded says which
// limits are weak on this node (and why starts fail, while they do).
func (p *Pool) Status() sandbox.PoolStatus { return p.eng.Status() }

// Close destroys every sandbox (busy ones included), stops replenishment and removes
// the sandboxes' cgroups. It returns once no sandbox process is left.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel() // starts in flight end, and destroy what they made
	_ = p.eng.Close()
	p.live.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.all); n != 0 {
		return fmt.Errorf("%d sandboxes still registered after close", n)
	}
	return nil
}

// Tag is the prefix of this pool's sandbox IDs (and of their cgroup directories).
func (p *Pool) Tag() string { return p.tag }

// watch retires a sandbox whose process died while it was ready. A busy one is
// handled by its Execute, which sees the control channel close, and its Release.
func (p *Pool) watch(s *localSandbox) {
	select {
	case <-s.proc.done:
	case <-p.ctx.Done():
		return
	}
	p.engine().Retire(s)
}

// forget removes a sandbox that is gone (destroyed, or its start failed) and frees
// its degraded slot.
func (p *Pool) forget(s *localSandbox) {
	p.mu.Lock()
	known := p.all[s.id] == s
	delete(p.all, s.id)
	p.mu.Unlock()
	if known {
		p.releaseSlot(s)
		p.live.Done()
	}
}

// releaseSlot frees s's degraded slot, if it holds one; the Quota wakes the degraded
// pools that wait for one.
func (p *Pool) releaseSlot(s *localSandbox) {
	p.mu.Lock()
	held := s.degradedSlot
	s.degradedSlot = false
	p.mu.Unlock()
	if held {
		p.opts.Quota.releaseDegraded()
	}
}

// lose marks a busy sandbox lost, kills it and returns the error for Execute. Its
// Release destroys it.
func (p *Pool) lose(s *localSandbox, cause error) error {
	p.mu.Lock()
	s.lost = true
	p.mu.Unlock()
	tail := strings.TrimSpace(s.proc.stderr.String())
	s.proc.kill()
	if len(tail) > 1000 {
		tail = "…" + tail[len(tail)-1000:]
	}
	if tail != "" {
		return fmt.Errorf("%w: sandbox %s: %v (sandbox stderr: %s)", sandbox.ErrSandboxLost, s.id, cause, tail)
	}
	return fmt.Errorf("%w: sandbox %s: %v", sandbox.ErrSandboxLost, s.id, cause)
}

func (p *Pool) checkClaimed(s *localSandbox) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case s.lost:
		return fmt.Errorf("%w: sandbox %s was lost earlier", sandbox.ErrSandboxLost, s.id)
	case p.closed:
		return sandbox.ErrPoolClosed
	case !s.claimed:
		return errors.New("sandbox " + s.id + " is not claimed: Acquire it first, and do not use it after Release")
	}
	return nil
}
