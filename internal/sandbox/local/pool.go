package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Pool is a warm pool of Local sandboxes. It implements sandbox.Pool.
type Pool struct {
	cfg  sandbox.PoolConfig
	opts Options
	res  sandbox.Resources
	tag  string

	ctx    context.Context // canceled by Close; bounds sandbox starts
	cancel context.CancelFunc
	kick   chan struct{} // wakes the replenisher
	wg     sync.WaitGroup

	mu          sync.Mutex
	minReady    int
	max         int
	all         map[string]*localSandbox // every sandbox that exists, starting ones included
	ready       []*localSandbox          // a queue: the one ready longest first
	starting    int
	waiting     int
	closed      bool
	changed     chan struct{} // closed and replaced on every change, to wake Acquire
	failures    int           // consecutive start failures
	retry       bool          // a claim was refused for them: start one more (after the backoff)
	lastErr     error
	lastFailure time.Time
	nextID      int

	degraded string // from the cgroup probe at NewPool: which limits are weak here
}

var _ sandbox.Pool = (*Pool)(nil)

// startFailuresBeforeUnavailable is how many starts in a row must fail before Acquire
// stops waiting and reports the backend unavailable.
const startFailuresBeforeUnavailable = 3

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
	if opts.Engine != EngineZygote && opts.Engine != EngineAgent {
		return nil, fmt.Errorf("unknown engine %q (want %s or %s)", opts.Engine, EngineZygote, EngineAgent)
	}
	if opts.Engine == EngineAgent {
		if _, err := agentBinary(opts); err != nil {
			return nil, err
		}
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
		kick:     make(chan struct{}, 1),
		minReady: cfg.MinReady, max: cfg.MaxSandboxes,
		all:     map[string]*localSandbox{},
		changed: make(chan struct{}),
	}
	if err := opts.Quota.reserve(p, claimOf(cfg.MinReady, cfg.MaxSandboxes, res)); err != nil {
		cancel()
		return nil, err
	}
	p.wg.Add(1)
	go p.replenish()
	p.wake()
	return p, nil
}

// Acquire claims a ready sandbox, in O(1) when one is warm. It waits for one otherwise,
// asking the replenisher for more within MaxSandboxes.
func (p *Pool) Acquire(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, sandbox.ErrPoolClosed
		}
		if s := p.claimLocked(); s != nil {
			s.state, s.owner, s.since = sandbox.StateBusy, owner, time.Now()
			p.mu.Unlock()
			p.wake() // refill behind the claim
			return s, nil
		}
		if p.failures >= startFailuresBeforeUnavailable && p.starting == 0 {
			err := p.lastErr
			p.retry = true // one more start, after the backoff, so the pool can recover
			p.mu.Unlock()
			p.wake()
			return nil, fmt.Errorf("%w: the last %d sandbox starts failed: %v", sandbox.ErrUnavailable, startFailuresBeforeUnavailable, err)
		}
		p.waiting++
		changed := p.changed
		p.mu.Unlock()
		p.wake()
		select {
		case <-changed:
			p.mu.Lock()
			p.waiting--
			p.mu.Unlock()
		case <-ctx.Done():
			p.mu.Lock()
			p.waiting--
			p.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// claimLocked takes a ready sandbox off the queue, first ready first claimed (the
// pool contract's order): the one ready longest whose next job process is already
// forked, else the one ready longest. The queue is at most MaxSandboxes long, so this
// is constant time for a given pool size.
func (p *Pool) claimLocked() *localSandbox {
	pick := -1
	for i, s := range p.ready {
		if !s.z.alive() {
			continue // died while idle; its watcher removes it
		}
		if pick < 0 {
			pick = i
		}
		if s.z.armed() {
			pick = i
			break
		}
	}
	if pick < 0 {
		return nil
	}
	s := p.ready[pick]
	p.ready = append(p.ready[:pick], p.ready[pick+1:]...)
	return s
}

// Release returns a sandbox after its job. A healthy one goes to the back of the queue:
// its zygote has already forked a fresh job process, so the next owner starts clean.
func (p *Pool) Release(sb sandbox.Sandbox) {
	s, ok := sb.(*localSandbox)
	if !ok || s.pool != p {
		return
	}
	p.mu.Lock()
	if s.state != sandbox.StateBusy || p.all[s.id] != s {
		p.mu.Unlock()
		return
	}
	if s.lost || p.closed || !s.z.alive() || len(p.all) > p.max {
		s.state = sandbox.StateFailed
		p.mu.Unlock()
		p.destroy(s)
		return
	}
	s.state, s.owner, s.since = sandbox.StateReady, "", time.Now()
	p.ready = append(p.ready, s)
	p.broadcastLocked()
	p.mu.Unlock()
}

// Resize changes the warm target and the cap. Busy sandboxes are never interrupted;
// when over the new cap, idle ones go now and busy ones on release.
func (p *Pool) Resize(minReady, maxSandboxes int) error {
	if err := sandbox.ValidSize(minReady, maxSandboxes); err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return sandbox.ErrPoolClosed
	}
	if err := p.opts.Quota.reserve(p, claimOf(minReady, maxSandboxes, p.res)); err != nil {
		p.mu.Unlock()
		return err
	}
	p.minReady, p.max = minReady, maxSandboxes
	p.mu.Unlock()
	p.wake()
	return nil
}

// Status reports counts and each sandbox's state, sorted by ID.
func (p *Pool) Status() sandbox.PoolStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st sandbox.PoolStatus
	for _, s := range p.all {
		switch s.state {
		case sandbox.StateReady:
			st.Ready++
		case sandbox.StateBusy:
			st.Busy++
		case sandbox.StateStarting:
			st.Starting++
		}
		st.Sandboxes = append(st.Sandboxes, sandbox.SandboxStatus{ID: s.id, State: s.state, Since: s.since, Owner: s.owner})
	}
	st.Total = len(p.all)
	st.Running = st.Busy
	st.Degraded = p.degraded
	sort.Slice(st.Sandboxes, func(i, j int) bool { return st.Sandboxes[i].ID < st.Sandboxes[j].ID })
	return st
}

// Close destroys every sandbox (busy ones included), stops replenishment and removes
// the sandboxes' cgroups. It returns once no sandbox process is left.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.cancel()
	var victims []*localSandbox
	for _, s := range p.all {
		if s.z != nil {
			victims = append(victims, s)
		}
	}
	p.ready = nil
	p.broadcastLocked()
	p.mu.Unlock()

	var wg sync.WaitGroup
	for _, s := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.destroy(s)
		}()
	}
	wg.Wait()
	p.wg.Wait() // starts in flight see the canceled context and clean up
	p.opts.Quota.release(p)
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.all); n != 0 {
		return fmt.Errorf("%d sandboxes still registered after close", n)
	}
	return nil
}

// Tag is the prefix of this pool's sandbox IDs (and of their cgroup directories).
func (p *Pool) Tag() string { return p.tag }

// wake asks the replenisher to look at the pool.
func (p *Pool) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Pool) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// replenish keeps MinReady sandboxes ready (more while callers wait), never more than
// MaxSandboxes in total, and trims idle extras after IdleTTL.
func (p *Pool) replenish() {
	defer p.wg.Done()
	ticker := time.NewTicker(max(p.opts.IdleTTL/4, 100*time.Millisecond))
	defer ticker.Stop()
	for {
		select {
		case <-p.kick:
		case <-ticker.C:
		case <-p.ctx.Done():
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		// Trim: idle sandboxes over the cap, or beyond MinReady and idle too long.
		var victims []*localSandbox
		for len(p.ready) > 0 {
			oldest := p.ready[0]
			over := len(p.all)-len(victims) > p.max
			stale := len(p.ready) > p.minReady && time.Since(oldest.since) > p.opts.IdleTTL
			if !over && !stale {
				break
			}
			p.ready = p.ready[1:]
			oldest.state = sandbox.StateFailed
			victims = append(victims, oldest)
		}
		// Grow, with exponential backoff after failed starts so a broken environment
		// or crashing sandboxes cannot turn into a start loop.
		n := min(p.minReady+p.waiting-len(p.ready)-p.starting, p.max-len(p.all))
		if p.retry && p.starting == 0 {
			n = max(n, min(1, p.max-len(p.all))) // a claim failed fast: try once more
		}
		if p.failures > 0 {
			wait := min(100*time.Millisecond<<min(p.failures, 7), 10*time.Second)
			if left := wait - time.Since(p.lastFailure); left > 0 {
				n = 0
				time.AfterFunc(left, p.wake)
			}
		}
		for ; n > 0; n-- {
			degradedSlot := false
			if p.degraded != "" {
				if !p.opts.Quota.reserveDegraded() {
					break // woken again when a degraded sandbox anywhere goes
				}
				degradedSlot = true
			}
			p.retry = false
			p.nextID++
			s := &localSandbox{id: fmt.Sprintf("%s-%d", p.tag, p.nextID), pool: p, state: sandbox.StateStarting, since: time.Now(), degradedSlot: degradedSlot}
			p.all[s.id] = s
			p.starting++
			p.wg.Add(1)
			go p.start(s)
		}
		p.mu.Unlock()
		for _, s := range victims {
			p.destroy(s)
		}
	}
}

func (p *Pool) start(s *localSandbox) {
	defer p.wg.Done()
	t0 := time.Now()
	start := startZygote
	if p.opts.Engine == EngineAgent {
		start = startAgent
	}
	z, err := start(p.ctx, s.id, p.opts, p.cfg, p.res)
	p.mu.Lock()
	p.starting--
	if err != nil {
		p.forgetLocked(s)
		if !p.closed {
			p.failures++
			p.lastErr, p.lastFailure = err, time.Now()
		}
		p.broadcastLocked()
		p.mu.Unlock()
		p.wake()
		return
	}
	s.z = z
	if p.closed {
		p.forgetLocked(s)
		p.mu.Unlock()
		z.kill()
		return
	}
	p.failures = 0
	s.state, s.since, s.started = sandbox.StateReady, time.Now(), time.Now()
	p.ready = append(p.ready, s)
	p.broadcastLocked()
	p.mu.Unlock()
	if p.cfg.OnSandboxStarted != nil {
		p.cfg.OnSandboxStarted(time.Since(t0))
	}
	p.wg.Add(1)
	go p.watch(s)
}

// watch removes a sandbox whose process died while it was idle. A busy one is handled
// by its Execute, which sees the control channel close.
func (p *Pool) watch(s *localSandbox) {
	defer p.wg.Done()
	select {
	case <-s.z.done:
	case <-p.ctx.Done():
		return
	}
	p.mu.Lock()
	if p.all[s.id] != s || s.state == sandbox.StateBusy {
		p.mu.Unlock()
		return
	}
	for i, r := range p.ready {
		if r == s {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			break
		}
	}
	s.state = sandbox.StateFailed
	p.mu.Unlock()
	p.destroy(s)
}

// destroy kills a sandbox and forgets it only once its processes and cgroup are gone,
// so the count of existing sandboxes never undercounts.
func (p *Pool) destroy(s *localSandbox) {
	if s.z != nil {
		s.z.kill()
	}
	p.mu.Lock()
	if p.all[s.id] == s {
		p.forgetLocked(s)
	}
	p.broadcastLocked()
	p.mu.Unlock()
	p.wake()
}

// forgetLocked removes a sandbox from the pool and frees its degraded slot, which
// wakes the degraded pools of the same Quota (wake only signals, so p.mu may be held).
func (p *Pool) forgetLocked(s *localSandbox) {
	delete(p.all, s.id)
	if s.degradedSlot {
		s.degradedSlot = false
		p.opts.Quota.releaseDegraded()
	}
}

// lose marks a busy sandbox failed, destroys it and returns the error for Execute.
func (p *Pool) lose(s *localSandbox, cause error) error {
	p.mu.Lock()
	s.lost, s.state = true, sandbox.StateFailed
	p.mu.Unlock()
	tail := strings.TrimSpace(s.z.stderr.String())
	p.destroy(s)
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
	case s.state != sandbox.StateBusy:
		return errors.New("sandbox " + s.id + " is not claimed: Acquire it first, and do not use it after Release")
	}
	return nil
}
