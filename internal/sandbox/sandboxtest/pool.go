// Package sandboxtest provides a programmable sandbox.Pool for tests of callers (the
// controller): it records concurrency, can hold jobs until released, and fails on
// demand. It runs no code; it stands in for a backend, not for Python.
package sandboxtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Behavior decides the outcome of one Execute. nil means success with one PNG.
type Behavior func(ctx context.Context, req sandbox.Request) (*sandbox.Result, error)

// Pool is a fake pool. Its zero value is not usable; call NewPool.
type Pool struct {
	mu        sync.Mutex
	behavior  Behavior
	gate      chan struct{} // when non-nil, Execute waits for a receive before finishing
	busy      int
	maxBusy   int
	owners    map[string]int
	closed    bool
	minReady  int
	maxSbx    int
	idCounter int
	started   chan string
	closedCh  chan struct{} // closed by Close: running executions end as a real backend's would
}

// NewPool returns a fake pool with the given cap.
func NewPool(maxSandboxes int) *Pool {
	return &Pool{maxSbx: maxSandboxes, owners: map[string]int{}, started: make(chan string, 1024), closedCh: make(chan struct{})}
}

// PNG is a minimal valid PNG (1x1) returned by the default behavior.
var PNG = []byte{
	0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
	0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
	0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
	0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
}

// SetBehavior replaces the behavior of later executions.
func (p *Pool) SetBehavior(b Behavior) { p.mu.Lock(); p.behavior = b; p.mu.Unlock() }

// Hold makes executions wait until Step or Open lets them finish.
func (p *Pool) Hold() { p.mu.Lock(); p.gate = make(chan struct{}); p.mu.Unlock() }

// Step lets one held execution finish; it blocks until one is waiting.
func (p *Pool) Step(ctx context.Context) error {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	if g == nil {
		return nil
	}
	select {
	case g <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Open lets every held and later execution finish.
func (p *Pool) Open() {
	p.mu.Lock()
	g := p.gate
	p.gate = nil
	p.mu.Unlock()
	if g != nil {
		close(g)
	}
}

// Started yields the owner of each execution as it starts.
func (p *Pool) Started() <-chan string { return p.started }

// MaxBusy is the most executions seen at once.
func (p *Pool) MaxBusy() int { p.mu.Lock(); defer p.mu.Unlock(); return p.maxBusy }

// Busy is the number of executions running now.
func (p *Pool) Busy() int { p.mu.Lock(); defer p.mu.Unlock(); return p.busy }

// Executions counts finished and running executions per owner.
func (p *Pool) Executions(owner string) int { p.mu.Lock(); defer p.mu.Unlock(); return p.owners[owner] }

// Acquire implements sandbox.Pool.
func (p *Pool) Acquire(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, sandbox.ErrPoolClosed
	}
	p.idCounter++
	return &fakeSandbox{pool: p, id: fmt.Sprintf("fake-%d", p.idCounter), owner: owner}, nil
}

// Release implements sandbox.Pool.
func (p *Pool) Release(sandbox.Sandbox) {}

// Resize implements sandbox.Pool.
func (p *Pool) Resize(minReady, maxSandboxes int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.minReady, p.maxSbx = minReady, maxSandboxes
	return nil
}

// Status implements sandbox.Pool.
func (p *Pool) Status() sandbox.PoolStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	ready := p.minReady
	return sandbox.PoolStatus{Ready: ready, Busy: p.busy, Running: p.busy, Total: ready + p.busy}
}

// Close implements sandbox.Pool.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.closedCh)
	}
	return nil
}

type fakeSandbox struct {
	pool  *Pool
	id    string
	owner string
}

func (s *fakeSandbox) ID() string { return s.id }

func (s *fakeSandbox) Execute(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	p := s.pool
	p.mu.Lock()
	p.busy++
	if p.busy > p.maxBusy {
		p.maxBusy = p.busy
	}
	p.owners[s.owner]++
	b, gate := p.behavior, p.gate
	p.mu.Unlock()
	defer func() { p.mu.Lock(); p.busy--; p.mu.Unlock() }()
	select {
	case p.started <- s.owner:
	default:
	}
	start := time.Now()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", sandbox.ErrSandboxLost, ctx.Err())
		case <-p.closedCh:
			return nil, fmt.Errorf("%w: the pool was closed", sandbox.ErrSandboxLost)
		}
	}
	if b != nil {
		res, err := b(ctx, req)
		if res != nil {
			res.SandboxID = s.id
		}
		return res, err
	}
	return &sandbox.Result{
		Success:       true,
		Stdout:        "ok\n",
		Files:         []sandbox.Artifact{{Name: "figure-1.png", MIMEType: "image/png", Data: PNG}},
		ExecutionTime: time.Since(start),
		SandboxID:     s.id,
	}, nil
}
