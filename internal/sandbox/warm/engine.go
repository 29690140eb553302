// Package warm is the one warm-pool engine that sandbox backends run their pools on.
// The engine owns what every pool does alike: the ready list (first ready, first
// claimed), the busy set, the starts in flight, the waiting claims, replenishment up
// to minReady within maxSandboxes (starts in flight and sandboxes being destroyed
// count against the cap, and a start that lands over a shrunk cap is destroyed), a
// backoff after failed starts, an optional start rate, Resize (sandbox.ValidSize,
// nothing clamped), Close (every sandbox destroyed) and Status from memory. A backend
// gives it a Provisioner: how to start one sandbox and how to destroy one, plus
// optional hooks (FailureJudge, Sweeper, Maintainer, Recycler, Closer, Ranker,
// Admitter, ClaimFilter) for what only its provider does, and opt-in Options (IdleTTL,
// FailClaimsAfter). The result is a sandbox.Pool, checked by the shared contract suite
// (internal/sandbox/pooltest).
//
// E2B runs on the engine (internal/sandbox/e2b/provision.go: its create rate limit
// and 429s, refused keys and plan limits, lost creations and keep-alives are its
// hooks), and so does Local (internal/sandbox/local/provision.go: a bubblewrap'd
// sandbox-agent per sandbox, recycled after each job; a slot of the operator-wide
// degraded-sandbox cap before each start; a claim skips a sandbox whose agent died;
// a process watcher that Retires a sandbox dying idle; spares trimmed after IdleTTL;
// claims failing fast after 3 failed starts), and so does Kubernetes
// (internal/sandbox/kubernetes/pool.go: Start creates a sandbox Pod and its token
// Secret and waits until the Pod is Ready, deleting one that cannot start; Destroy
// deletes it; a Pod goes back warm up to the class's maxExecutionsPerSandbox; a
// ClaimFilter keeps a Pod that served one namespace to that namespace; a Pod event
// Retires a ready Pod that went; the pool object adopts an earlier manager's warm
// Pods through its first Starts). The claim that Kubernetes writes into the Pod with
// its resourceVersion as precondition is its own fence, after the engine's claim.
package warm

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Provisioner starts and destroys one backend's sandboxes. The engine calls Start
// from its own goroutines, never with its lock held.
type Provisioner interface {
	// Start makes one sandbox and returns it ready to run jobs. owner is the waiting
	// claim it is likely made for ("" for a warm one), for the provider's labels.
	Start(ctx context.Context, owner string) (sandbox.Sandbox, error)
	// Destroy destroys a sandbox the pool no longer holds. Until it returns the
	// sandbox counts against maxSandboxes.
	Destroy(ctx context.Context, sb sandbox.Sandbox)
}

// Failure is one failed start, as the engine sees it and a FailureJudge may amend.
type Failure struct {
	Err error
	// Failures is how many starts in a row have failed, this one included.
	Failures int
	// Now is when the start failed (the engine's clock).
	Now time.Time
	// Hold is how long no start is tried: the engine's exponential backoff. A judge
	// may lengthen it (a provider's Retry-After).
	Hold time.Duration
	// Fatal, when set, stops every start: claims fail with it until the pool is
	// replaced (a refused key).
	Fatal error
	// Throttled is Status.Throttled while starts fail (empty: not throttled).
	Throttled string
	// Reason is added to Status.Degraded while starts fail ("creating sandboxes fails:
	// Reason"); default Err's message, empty for none.
	Reason string
	// Unsure says the provider may have made the sandbox although the start failed
	// (its answer was lost): no start is tried until a Sweeper has swept.
	Unsure bool
}

// FailureJudge is an optional hook of a Provisioner that reads a failed start. The
// engine calls it with its lock held: Judge must not call the engine.
type FailureJudge interface {
	Judge(f Failure) Failure
}

// Sweeper is an optional hook of a Provisioner whose starts can fail unsure.
type Sweeper interface {
	// Sweep destroys the provider's sandboxes of this pool that held does not name.
	// The engine calls it with no start in flight; after Close, held names none.
	Sweep(ctx context.Context, held func(id string) bool) error
}

// Maintainer is an optional hook called every Options.Tick from the engine's loop
// (keep-alives, health checks of idle sandboxes; Retire drops a bad one).
type Maintainer interface {
	Maintain(ctx context.Context)
}

// Recycler is an optional hook of a Provisioner whose sandboxes can serve another
// job after a wipe (Local's agent gives each job a fresh context and kernel). Release calls Recycle
// instead of Destroy: true puts the sandbox back at the end of the ready list (when
// the pool is open and within its cap), false destroys it.
type Recycler interface {
	Recycle(ctx context.Context, sb sandbox.Sandbox) bool
}

// Closer is an optional hook called at the end of Close, after every sandbox the
// pool held is destroyed; err is the pool's fatal error, if any.
type Closer interface {
	Closed(ctx context.Context, fatal error)
}

// Ranker is an optional hook of a Provisioner that knows more than the engine about
// which ready sandbox a claim should take. Without it a claim takes the one ready
// longest. With it, a claim takes the one ready longest among those of the highest
// Rank, and never one of a negative Rank (not claimable now: Local's sandbox whose
// process died while idle, until its watcher retires it). It is opt-in:
// only the provider can tell two ready sandboxes apart. The engine calls Rank with
// its lock held, once per ready sandbox a claim looks at: it must be quick and must
// not call the engine.
type Ranker interface {
	Rank(sb sandbox.Sandbox) int
}

// Admitter is an optional hook of a Provisioner whose starts need a slot it shares
// with other pools (Local's operator-wide cap on sandboxes without a cgroup of their
// own). The engine begins a start only when Admit returns true; the slot then
// belongs to that start, and the provisioner frees it when the Start fails or at
// the sandbox's Destroy. While Admit refuses, the engine starts nothing (nothing
// counts as starting, no backoff grows) until Kick is called: the provisioner calls
// it when a slot frees. Admit is called with the engine's lock held and must not
// call the engine. It is opt-in: a pool whose starts need only its own maxSandboxes
// never waits for one.
type Admitter interface {
	Admit() bool
}

// ClaimFilter is an optional hook of a Provisioner whose sandboxes may serve only
// some claimants (a Kubernetes Pod that served one namespace serves no other). A
// claim takes only a ready sandbox that Claimable(sb, owner) accepts, in the order
// it would otherwise (first ready, or Ranker's); the ones it refuses stay ready for
// other claims. A waiting claim that no ready sandbox accepts wants a start of its
// own (beyond what minReady and the other claims want), and when the pool has no
// room for that start, the ready sandbox ready longest is destroyed to make room.
// It is opt-in: without it every ready sandbox serves every claim. The engine calls
// Claimable with its lock held: it must be quick and must not call the engine.
type ClaimFilter interface {
	Claimable(sb sandbox.Sandbox, owner string) bool
}

// Options tune an engine.
type Options struct {
	MinReady, MaxSandboxes int
	// Kind names the backend in messages ("E2B").
	Kind string
	// Clock drives backoff, the start rate and Tick (nil: the real clock).
	Clock clock.WithTicker
	// BackoffBase and BackoffMax bound the hold after a failed start (0: 1 s, 60 s).
	BackoffBase, BackoffMax time.Duration
	// StartsPerSecond caps how often a start begins (0: no cap).
	StartsPerSecond float64
	// CallTimeout bounds each Start, Destroy, Sweep, Maintain and Closed (0: 1 min).
	CallTimeout time.Duration
	// Tick is how often a Maintainer is called (0: never).
	Tick time.Duration
	// Degraded is Status.Degraded's standing part (limits the backend cannot hold).
	Degraded string
	// OnStarted is told how long each successful start took.
	OnStarted func(time.Duration)
	// IdleTTL, when set, is how long a ready sandbox beyond minReady (left over from
	// a burst, or recycled) is kept before it is destroyed, the one ready longest
	// first (0: kept until Resize, a claim or Close). Opt-in, because how long a
	// spare sandbox is worth keeping is each backend's trade-off: a Local spare costs
	// memory and saves a start of seconds.
	IdleTTL time.Duration
	// FailClaimsAfter, when set, makes a claim fail at once with an error wrapping
	// sandbox.ErrUnavailable (and the last start's error) once that many starts in a
	// row have failed and none is in flight, instead of waiting for its context; the
	// engine then begins one more start, after the backoff, so the pool recovers as
	// soon as starting works again (0: claims wait). Opt-in: it suits a backend whose
	// failed starts mean its node is broken (Local: bwrap or Python fails), so a
	// caller should hear it now; a backend whose failures are mostly a provider's
	// passing throttle (E2B's 429) lets claims wait through the hold.
	FailClaimsAfter int
	Log             logr.Logger
}

type entry struct {
	sb    sandbox.Sandbox
	since time.Time
	owner string
}

// Engine is a warm pool over one Provisioner. It implements sandbox.Pool.
type Engine struct {
	prov    Provisioner
	ranker  Ranker      // nil: first ready, first claimed
	admit   Admitter    // nil: every start is admitted
	filter  ClaimFilter // nil: every ready sandbox serves every claim
	o       Options
	clock   clock.WithTicker
	limiter *rate.Limiter
	wg      sync.WaitGroup

	mu         sync.Mutex
	minReady   int
	max        int
	ready      []*entry
	busy       map[string]*entry
	starting   int
	destroying int
	recycling  int      // released sandboxes a Recycler is wiping: they count against max
	owners     []string // of the waiting claims, oldest first
	closed     bool
	fatal      error
	failures   int
	lastErr    error // of the last failed start
	retry      bool  // a claim failed fast (FailClaimsAfter): begin one more start
	holdUntil  time.Time
	throttled  string
	reason     string
	unsure     bool
	wake       chan struct{}
	avail      chan struct{} // closed (and replaced) when claims should look again
	stop       chan struct{}
}

var _ sandbox.Pool = (*Engine)(nil)

// New validates the size and starts an engine: its loop begins filling at once.
func New(prov Provisioner, o Options) (*Engine, error) {
	if err := sandbox.ValidSize(o.MinReady, o.MaxSandboxes); err != nil {
		return nil, err
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = time.Minute
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = time.Minute
	}
	e := &Engine{
		prov: prov, o: o, clock: o.Clock,
		minReady: o.MinReady, max: o.MaxSandboxes,
		busy: map[string]*entry{},
		wake: make(chan struct{}, 1), avail: make(chan struct{}), stop: make(chan struct{}),
	}
	e.ranker, _ = prov.(Ranker)
	e.admit, _ = prov.(Admitter)
	e.filter, _ = prov.(ClaimFilter)
	if o.StartsPerSecond > 0 {
		e.limiter = rate.NewLimiter(rate.Limit(o.StartsPerSecond), 1)
	}
	e.wg.Add(1)
	go e.loop()
	return e, nil
}

// Acquire implements sandbox.Pool: it takes the sandbox ready longest (see Ranker),
// or waits for one (the engine starts one per waiting claim, within maxSandboxes;
// see FailClaimsAfter).
func (e *Engine) Acquire(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	e.mu.Lock()
	e.owners = append(e.owners, owner)
	defer func() {
		for i, o := range e.owners {
			if o == owner {
				e.owners = append(e.owners[:i], e.owners[i+1:]...)
				break
			}
		}
		e.mu.Unlock()
	}()
	e.kick()
	for {
		switch {
		case e.closed:
			return nil, sandbox.ErrPoolClosed
		case e.fatal != nil:
			return nil, e.fatal
		}
		if i := e.pickLocked(owner); i >= 0 {
			s := e.ready[i]
			if i == 0 {
				e.ready = e.ready[1:]
			} else {
				e.ready = append(e.ready[:i], e.ready[i+1:]...)
			}
			s.owner, s.since = owner, e.clock.Now()
			e.busy[s.sb.ID()] = s
			e.kick() // a replacement behind the claim
			return s.sb, nil
		}
		if n := e.o.FailClaimsAfter; n > 0 && e.failures >= n && e.starting == 0 {
			e.retry = true // one more start, after the backoff, so the pool can recover
			e.kick()
			return nil, fmt.Errorf("%w: the last %d %s sandbox starts failed: %v", sandbox.ErrUnavailable, e.failures, e.o.Kind, e.lastErr)
		}
		ch := e.avail
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			e.mu.Lock()
			if e.throttled != "" {
				return nil, fmt.Errorf("no %s sandbox became ready: %s: %w", e.o.Kind, e.throttled, ctx.Err())
			}
			return nil, fmt.Errorf("no %s sandbox became ready: %w", e.o.Kind, ctx.Err())
		}
		e.mu.Lock()
	}
}

// Release implements sandbox.Pool: the sandbox is destroyed (or, with a Recycler,
// wiped and queued again) and a replacement started if the pool is short of ready
// ones. A second Release, a
// sandbox the pool does not hold, or one after Close, is ignored.
func (e *Engine) Release(sb sandbox.Sandbox) {
	if sb == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.busy[sb.ID()]
	if !ok || s.sb != sb {
		return
	}
	delete(e.busy, sb.ID())
	defer e.kick()
	r, ok := e.prov.(Recycler)
	if !ok {
		e.destroyLocked(sb)
		return
	}
	e.recycling++
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), e.o.CallTimeout)
	reuse := r.Recycle(ctx, sb)
	cancel()
	e.mu.Lock()
	e.recycling--
	if !reuse || e.closed || len(e.ready)+len(e.busy)+e.starting+e.destroying+e.recycling >= e.max {
		e.destroyLocked(sb)
		return
	}
	e.ready = append(e.ready, &entry{sb: sb, since: e.clock.Now()})
	e.broadcast()
}

// Resize implements sandbox.Pool. An invalid size is rejected and the pool keeps
// its old one; ready sandboxes over the new target or cap are destroyed, newest
// first. It returns the pool's fatal error, if any, so the caller's status shows it.
func (e *Engine) Resize(minReady, maxSandboxes int) error {
	if err := sandbox.ValidSize(minReady, maxSandboxes); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return sandbox.ErrPoolClosed
	}
	e.minReady, e.max = minReady, maxSandboxes
	for len(e.ready) > 0 && (len(e.ready) > minReady || len(e.ready)+e.starting+len(e.busy) > maxSandboxes) {
		s := e.ready[len(e.ready)-1]
		e.ready = e.ready[:len(e.ready)-1]
		e.destroyLocked(s.sb)
	}
	e.kick()
	return e.fatal
}

// Status implements sandbox.Pool, from memory: ready sandboxes oldest first, then
// busy ones by ID. After Close it lists none: a start still in flight destroys what
// it makes.
func (e *Engine) Status() sandbox.PoolStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := sandbox.PoolStatus{Ready: len(e.ready), Busy: len(e.busy), Running: len(e.busy), Starting: e.starting}
	if e.closed {
		st.Starting = 0
	}
	st.Total = st.Ready + st.Busy + st.Starting
	for _, s := range e.ready {
		st.Sandboxes = append(st.Sandboxes, sandbox.SandboxStatus{ID: s.sb.ID(), State: sandbox.StateReady, Since: s.since})
	}
	busy := make([]*entry, 0, len(e.busy))
	for _, s := range e.busy {
		busy = append(busy, s)
	}
	sort.Slice(busy, func(i, j int) bool { return busy[i].sb.ID() < busy[j].sb.ID() })
	for _, s := range busy {
		st.Sandboxes = append(st.Sandboxes, sandbox.SandboxStatus{ID: s.sb.ID(), State: sandbox.StateBusy, Since: s.since, Owner: s.owner})
	}
	st.Degraded = e.o.Degraded
	if e.reason != "" {
		if st.Degraded != "" {
			st.Degraded += "; "
		}
		st.Degraded += "creating sandboxes fails: " + e.reason
	}
	st.Throttled = e.throttled
	return st
}

// Close implements sandbox.Pool: it stops replenishment, destroys every sandbox the
// pool holds (busy ones too: their jobs fail), then calls the Closer hook. A start
// in flight destroys what it made when it returns.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.broadcast()
	close(e.stop)
	var held []sandbox.Sandbox
	for _, s := range e.ready {
		held = append(held, s.sb)
	}
	for _, s := range e.busy {
		held = append(held, s.sb)
	}
	e.ready, e.busy = nil, map[string]*entry{}
	fatal := e.fatal
	e.mu.Unlock()
	e.wg.Wait()
	var wg sync.WaitGroup
	for _, sb := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), e.o.CallTimeout)
			defer cancel()
			e.prov.Destroy(ctx, sb)
		}()
	}
	wg.Wait()
	if c, ok := e.prov.(Closer); ok {
		ctx, cancel := context.WithTimeout(context.Background(), e.o.CallTimeout)
		c.Closed(ctx, fatal)
		cancel()
	}
	return nil
}

// Fail stops the pool's starts with err (a provider's refusal found outside a
// start, e.g. during a job) unless it failed already, and returns the pool's fatal
// error. Claims fail with it from now on.
func (e *Engine) Fail(err error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fatal == nil {
		e.fatal = err
		e.broadcast()
	}
	return e.fatal
}

// Err is the pool's fatal error, nil while it may start sandboxes.
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fatal
}

// Held returns the sandboxes the pool holds: ready (oldest first) and busy.
func (e *Engine) Held() (ready, busy []sandbox.Sandbox) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.ready {
		ready = append(ready, s.sb)
	}
	for _, s := range e.busy {
		busy = append(busy, s.sb)
	}
	return ready, busy
}

// Retire drops a ready sandbox (a Maintainer found it bad or about to end),
// destroys it and starts a replacement. It reports whether sb was ready.
func (e *Engine) Retire(sb sandbox.Sandbox) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, s := range e.ready {
		if s.sb == sb {
			e.ready = append(e.ready[:i], e.ready[i+1:]...)
			e.destroyLocked(sb)
			e.kick()
			return true
		}
	}
	return false
}

// destroyLocked destroys sb in the background; it counts against the cap until done.
func (e *Engine) destroyLocked(sb sandbox.Sandbox) {
	e.destroying++
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), e.o.CallTimeout)
		e.prov.Destroy(ctx, sb)
		cancel()
		e.mu.Lock()
		e.destroying--
		e.mu.Unlock()
		e.kick()
	}()
}

// Kick makes the engine look again at what to start: an Admitter calls it when a
// slot it refused frees.
func (e *Engine) Kick() { e.kick() }

// pickLocked is the index of the ready sandbox owner's claim takes, -1 for none.
func (e *Engine) pickLocked(owner string) int {
	if e.ranker == nil {
		for i, s := range e.ready {
			if e.filter == nil || e.filter.Claimable(s.sb, owner) {
				return i
			}
		}
		return -1
	}
	pick, best := -1, -1
	for i, s := range e.ready {
		if e.filter != nil && !e.filter.Claimable(s.sb, owner) {
			continue
		}
		if r := e.ranker.Rank(s.sb); r > best {
			pick, best = i, r
		}
	}
	return pick
}

// trimLocked destroys the ready sandboxes beyond minReady that have been ready for
// IdleTTL, the one ready longest first, and says when the next would be due (0:
// none is).
func (e *Engine) trimLocked(now time.Time) time.Duration {
	if e.o.IdleTTL <= 0 {
		return 0
	}
	for len(e.ready) > e.minReady {
		if idle := now.Sub(e.ready[0].since); idle < e.o.IdleTTL {
			return e.o.IdleTTL - idle
		}
		s := e.ready[0]
		e.ready = e.ready[1:]
		e.destroyLocked(s.sb)
	}
	return 0
}

// kick wakes the loop; callers may hold e.mu.
func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// broadcast wakes every waiting claim; the caller holds e.mu.
func (e *Engine) broadcast() {
	close(e.avail)
	e.avail = make(chan struct{})
}

// deficitLocked is how many starts to begin now: enough for minReady plus every
// waiting claim, within maxSandboxes (starts in flight and destroys count).
func (e *Engine) deficitLocked() int {
	want := e.minReady + len(e.owners) - len(e.ready) - e.starting
	if e.retry && e.starting == 0 {
		want = max(want, 1)
	}
	if e.filter != nil {
		want = max(want, e.refusedLocked()-e.starting)
	}
	room := e.max - len(e.ready) - len(e.busy) - e.starting - e.destroying - e.recycling
	return max(0, min(want, room))
}

// refusedLocked is how many waiting claims no ready sandbox serves (ClaimFilter).
func (e *Engine) refusedLocked() int {
	n := 0
	for _, o := range e.owners {
		if e.pickLocked(o) < 0 {
			n++
		}
	}
	return n
}

// makeRoomLocked destroys the ready sandbox ready longest when waiting claims that no
// ready sandbox serves (ClaimFilter) want more starts than the pool has room for.
func (e *Engine) makeRoomLocked() {
	if e.filter == nil || len(e.ready) == 0 {
		return
	}
	room := e.max - len(e.ready) - len(e.busy) - e.starting - e.destroying - e.recycling
	if room > 0 || e.refusedLocked()-e.starting <= 0 {
		return
	}
	s := e.ready[0]
	e.ready = e.ready[1:]
	e.destroyLocked(s.sb)
}

// holds reports whether the pool holds sandbox id.
func (e *Engine) holds(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.busy[id]; ok {
		return true
	}
	for _, s := range e.ready {
		if s.sb.ID() == id {
			return true
		}
	}
	return false
}

// loop starts sandboxes as they are needed, within the start rate and backoff, and
// calls the Maintainer every Tick. After an unsure start it starts nothing until a
// sweep has destroyed what that start may have made.
func (e *Engine) loop() {
	defer e.wg.Done()
	var tick <-chan time.Time
	if _, ok := e.prov.(Maintainer); ok && e.o.Tick > 0 {
		t := e.clock.NewTicker(e.o.Tick)
		defer t.Stop()
		tick = t.C()
	}
	sweeper, _ := e.prov.(Sweeper)
	for {
		now := e.clock.Now()
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return
		}
		trimIn := e.trimLocked(now)
		if e.fatal == nil {
			e.makeRoomLocked()
		}
		n := e.deficitLocked()
		if e.fatal != nil || e.unsure {
			n = 0
		}
		hold := e.holdUntil.Sub(now)
		sweep := e.unsure && e.starting == 0 && e.fatal == nil
		e.mu.Unlock()
		var wait <-chan time.Time
		switch {
		case sweep && hold <= 0:
			var err error
			if sweeper != nil {
				ctx, cancel := context.WithTimeout(context.Background(), e.o.CallTimeout)
				err = sweeper.Sweep(ctx, e.holds)
				cancel()
			}
			e.mu.Lock()
			if err != nil {
				e.failedLocked(err, e.clock.Now())
			} else {
				e.unsure = false
			}
			e.mu.Unlock()
			continue
		case sweep:
			wait = e.clock.After(hold)
		case n > 0 && hold <= 0:
			var r *rate.Reservation
			if e.limiter != nil {
				r = e.limiter.ReserveN(now, 1)
				if d := r.DelayFrom(now); d > 0 {
					select {
					case <-e.clock.After(d):
					case <-e.stop:
						return
					}
				}
			}
			e.mu.Lock()
			if e.closed || e.fatal != nil || e.unsure || e.deficitLocked() == 0 || e.clock.Now().Before(e.holdUntil) {
				e.mu.Unlock()
				if r != nil {
					r.CancelAt(e.clock.Now())
				}
				continue
			}
			if e.admit != nil && !e.admit.Admit() {
				e.mu.Unlock()
				if r != nil {
					r.CancelAt(e.clock.Now())
				}
				break // no slot: wait for a Kick
			}
			e.retry = false
			e.starting++
			owner := ""
			if i := len(e.ready) + e.starting - 1; i < len(e.owners) {
				owner = e.owners[i]
			}
			e.mu.Unlock()
			go e.start(owner)
			continue
		case n > 0:
			wait = e.clock.After(hold)
		}
		var trim <-chan time.Time
		if trimIn > 0 {
			trim = e.clock.After(trimIn)
		}
		select {
		case <-e.wake:
		case <-wait:
		case <-trim:
		case <-tick:
			ctx, cancel := context.WithTimeout(context.Background(), e.o.CallTimeout)
			e.prov.(Maintainer).Maintain(ctx)
			cancel()
		case <-e.stop:
			return
		}
	}
}

// start runs one Start and files its sandbox as ready (or destroys it, when the
// pool closed meanwhile).
func (e *Engine) start(owner string) {
	begin := e.clock.Now()
	ctx, cancel := context.WithTimeout(context.Background(), e.o.CallTimeout)
	defer cancel()
	sb, err := e.prov.Start(ctx, owner)
	now := e.clock.Now()
	e.mu.Lock()
	e.starting--
	if err != nil {
		closed := e.closed
		e.failedLocked(err, now)
		e.broadcast() // waiting claims look again (FailClaimsAfter)
		unsure := e.unsure
		e.mu.Unlock()
		if sw, ok := e.prov.(Sweeper); ok && closed && unsure {
			// Close has swept already (Closer); what this start made may be there now.
			sctx, scancel := context.WithTimeout(context.Background(), e.o.CallTimeout)
			_ = sw.Sweep(sctx, func(string) bool { return false })
			scancel()
		}
		e.kick()
		return
	}
	if e.closed {
		e.mu.Unlock()
		e.prov.Destroy(ctx, sb)
		return
	}
	e.failures, e.throttled, e.reason, e.lastErr = 0, "", "", nil
	if len(e.ready)+len(e.busy)+e.starting+e.destroying+e.recycling >= e.max {
		// A Resize shrank the pool while this start ran.
		e.destroyLocked(sb)
		e.mu.Unlock()
		e.kick()
		return
	}
	e.ready = append(e.ready, &entry{sb: sb, since: now})
	e.broadcast()
	e.mu.Unlock()
	if e.o.OnStarted != nil {
		e.o.OnStarted(now.Sub(begin))
	}
}

// failedLocked records a failed start: a backoff hold, or (by the judge) a fatal
// error, a throttle or an unsure outcome.
func (e *Engine) failedLocked(err error, now time.Time) {
	e.failures++
	e.lastErr = err
	delay := e.o.BackoffBase
	for i := 1; i < e.failures && delay < e.o.BackoffMax; i++ {
		delay *= 2
	}
	f := Failure{Err: err, Failures: e.failures, Now: now, Hold: min(delay, e.o.BackoffMax), Reason: err.Error()}
	if j, ok := e.prov.(FailureJudge); ok {
		f = j.Judge(f)
	}
	if f.Unsure {
		e.unsure = true
	}
	if f.Fatal != nil {
		if e.fatal == nil {
			e.fatal = f.Fatal
		}
		e.broadcast()
		return
	}
	e.throttled, e.reason = f.Throttled, f.Reason
	e.holdUntil = now.Add(f.Hold)
	e.o.Log.Info("starting a sandbox failed; backing off", "kind", e.o.Kind, "error", err.Error(), "retryIn", f.Hold.String(), "failures", e.failures)
}
