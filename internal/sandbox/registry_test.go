package sandbox_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// localOpts stands for a backend's own typed options.
type localOpts struct {
	Image string
}

func TestRegistry(t *testing.T) {
	var made []*sandboxtest.Pool
	var got []localOpts
	reg := sandbox.NewRegistry()
	local := func(cfg sandbox.PoolConfig, o localOpts) (sandbox.Pool, error) {
		p := sandboxtest.NewPool(cfg.MaxSandboxes)
		_ = p.Resize(cfg.MinReady, cfg.MaxSandboxes)
		made = append(made, p)
		got = append(got, o)
		return p, nil
	}
	broken := func(sandbox.PoolConfig, localOpts) (sandbox.Pool, error) {
		return nil, errors.New("bwrap not found")
	}
	cfg := sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2}
	big := sandbox.PoolConfig{MinReady: 3, MaxSandboxes: 4}

	steps := []struct {
		name      string
		backend   string
		cfg       sandbox.PoolConfig
		opts      localOpts
		newPool   func(sandbox.PoolConfig, localOpts) (sandbox.Pool, error)
		wantMade  int
		wantErr   string
		wantReady int
		wantLive  bool
	}{
		{name: "first use creates", backend: "Local", cfg: cfg, newPool: local, wantMade: 1, wantReady: 1, wantLive: true},
		{name: "same config reuses", backend: "Local", cfg: cfg, newPool: local, wantMade: 1, wantReady: 1, wantLive: true},
		{name: "a size change resizes in place", backend: "Local", cfg: big, newPool: local, wantMade: 1, wantReady: 3, wantLive: true},
		{name: "another config replaces", backend: "Local", cfg: sandbox.PoolConfig{MinReady: 3, MaxSandboxes: 4, Network: sandbox.NetworkEgress}, newPool: local, wantMade: 2, wantReady: 3, wantLive: true},
		{name: "other options replace", backend: "Local", cfg: big, opts: localOpts{Image: "b"}, newPool: local, wantMade: 3, wantReady: 3, wantLive: true},
		{name: "another backend replaces", backend: "Other", cfg: big, opts: localOpts{Image: "b"}, newPool: local, wantMade: 4, wantReady: 3, wantLive: true},
		{name: "a factory error passes through and retires the live pool", backend: "Broken", cfg: cfg, newPool: broken, wantMade: 4, wantErr: "bwrap not found"},
	}
	for _, s := range steps {
		p, err := sandbox.Ensure(reg, "ns/pool", s.backend, s.cfg, s.opts, s.newPool)
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Fatalf("%s: err = %v, want %q", s.name, err, s.wantErr)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		} else if got := p.Status().Ready; got != s.wantReady {
			t.Fatalf("%s: ready = %d, want %d", s.name, got, s.wantReady)
		}
		if len(made) != s.wantMade {
			t.Fatalf("%s: %d pools made, want %d", s.name, len(made), s.wantMade)
		}
		if _, _, ok := reg.Get("ns/pool"); ok != s.wantLive {
			t.Fatalf("%s: a live pool: %v, want %v", s.name, ok, s.wantLive)
		}
	}
	if got[len(got)-1] != (localOpts{Image: "b"}) {
		t.Errorf("the pool was made from %+v, want the options Ensure was given", got[len(got)-1])
	}
	// The replaced pools were closed once idle (at once: nothing ran there).
	for _, p := range made[:len(made)-1] {
		sandboxtest.WaitFor(t, "a replaced pool closed", func() bool {
			_, err := p.Acquire(t.Context(), "o")
			return errors.Is(err, sandbox.ErrPoolClosed)
		})
	}
	// Retire drains and closes; Remove closes the live one.
	if _, err := sandbox.Ensure(reg, "ns/pool", "Local", cfg, localOpts{}, local); err != nil {
		t.Fatal(err)
	}
	reg.Retire("ns/pool")
	if _, _, ok := reg.Get("ns/pool"); ok {
		t.Fatal("pool still registered after Retire")
	}
	sandboxtest.WaitFor(t, "the retired pool closed", func() bool {
		_, err := made[len(made)-1].Acquire(t.Context(), "o")
		return errors.Is(err, sandbox.ErrPoolClosed)
	})
	if _, err := sandbox.Ensure(reg, "ns/pool", "Local", cfg, localOpts{}, local); err != nil {
		t.Fatal(err)
	}
	if err := reg.Remove("ns/pool"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := reg.Get("ns/pool"); ok {
		t.Fatal("pool still registered after Remove")
	}
}

// A settings change must not cost a running job its attempt: the old pool keeps it to
// the end and closes after.
func TestRegistryReplacementDrainsRunningJobs(t *testing.T) {
	var made []*sandboxtest.Pool
	var polls atomic.Int64 // the drain's looks at the old pool
	reg := sandbox.NewRegistry()
	reg.DrainPoll = time.Millisecond
	local := func(cfg sandbox.PoolConfig, _ struct{}) (sandbox.Pool, error) {
		p := sandboxtest.NewPool(cfg.MaxSandboxes)
		made = append(made, p)
		if len(made) == 1 {
			return statusCounting{p, &polls}, nil
		}
		return p, nil
	}
	old, err := sandbox.Ensure(reg, "ns/p", "Local", sandbox.PoolConfig{MaxSandboxes: 1}, struct{}{}, local)
	if err != nil {
		t.Fatal(err)
	}
	made[0].Hold()
	done := make(chan error, 1)
	go func() {
		_, err := sandbox.Run(context.Background(), old, "job", sandbox.Request{Code: "1"})
		done <- err
	}()
	sandboxtest.WaitFor(t, "the job to start", func() bool { return made[0].Busy() == 1 })
	cur, err := sandbox.Ensure(reg, "ns/p", "Local", sandbox.PoolConfig{MaxSandboxes: 1, PlotlyJSURL: "inline"}, struct{}{}, local)
	if err != nil {
		t.Fatal(err)
	}
	if cur == old {
		t.Fatal("a changed setting did not make a new pool")
	}
	// The drain has looked several times (it waits for Status().Running, the jobs
	// this pool object runs), and the old pool is still open.
	sandboxtest.WaitFor(t, "the drain to poll the old pool", func() bool { return polls.Load() >= 5 })
	if _, err := made[0].Acquire(t.Context(), "probe"); err != nil {
		t.Fatalf("the old pool closed while a job ran in it: %v", err)
	}
	made[0].Open()
	if err := <-done; err != nil {
		t.Fatalf("the running job failed: %v", err)
	}
	sandboxtest.WaitFor(t, "the drained pool to close", func() bool {
		_, err := made[0].Acquire(t.Context(), "o")
		return errors.Is(err, sandbox.ErrPoolClosed)
	})
}

// statusCounting counts the Status calls of a pool.
type statusCounting struct {
	*sandboxtest.Pool
	n *atomic.Int64
}

func (s statusCounting) Status() sandbox.PoolStatus {
	s.n.Add(1)
	return s.Pool.Status()
}

// One pool's slow start must not hold up the others.
func TestRegistryDoesNotLockAcrossPools(t *testing.T) {
	reg := sandbox.NewRegistry()
	release := make(chan struct{})
	slow := func(sandbox.PoolConfig, struct{}) (sandbox.Pool, error) {
		<-release
		return sandboxtest.NewPool(1), nil
	}
	fast := func(sandbox.PoolConfig, struct{}) (sandbox.Pool, error) {
		return sandboxtest.NewPool(1), nil
	}
	go func() { _, _ = sandbox.Ensure(reg, "ns/slow", "Slow", sandbox.PoolConfig{}, struct{}{}, slow) }()
	ok := make(chan struct{})
	go func() {
		if _, err := sandbox.Ensure(reg, "ns/fast", "Local", sandbox.PoolConfig{}, struct{}{}, fast); err == nil {
			_, _, _ = reg.Get("ns/slow")
			close(ok)
		}
	}()
	select {
	case <-ok:
	case <-time.After(10 * time.Second):
		t.Fatal("Ensure of one pool waited for another pool's start")
	}
	close(release)
}

// Equal settings behind different pointers are the same settings.
func TestRegistryComparesValuesNotPointers(t *testing.T) {
	made := 0
	reg := sandbox.NewRegistry()
	type settings struct{ Template *string }
	newPool := func(sandbox.PoolConfig, *settings) (sandbox.Pool, error) {
		made++
		return sandboxtest.NewPool(1), nil
	}
	a, b := "x", "x"
	for _, s := range []*settings{{Template: &a}, {Template: &b}} {
		if _, err := sandbox.Ensure(reg, "ns/p", "Local", sandbox.PoolConfig{}, s, newPool); err != nil {
			t.Fatal(err)
		}
	}
	if made != 1 {
		t.Fatalf("%d pools made for equal settings, want 1", made)
	}
}

// detaching is a pool whose sandboxes outlive the process (as Kubernetes Pods do).
type detaching struct {
	*sandboxtest.Pool
	detached, closed bool
}

func (d *detaching) Detach()      { d.detached = true }
func (d *detaching) Close() error { d.closed = true; return d.Pool.Close() }

// A clean stop detaches pools that can (their sandboxes stay for the next manager)
// and closes the others; Close closes every pool.
func TestRegistryShutdownDetachesWhatCan(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		end                       func(*sandbox.Registry) error
		wantDetached, wantClosedK bool
	}{
		{name: "Shutdown", end: (*sandbox.Registry).Shutdown, wantDetached: true},
		{name: "Close", end: (*sandbox.Registry).Close, wantClosedK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := &detaching{Pool: sandboxtest.NewPool(1)}
			local := sandboxtest.NewPool(1)
			reg := sandbox.NewRegistry()
			for key, p := range map[string]sandbox.Pool{"ns/k": kube, "ns/l": local} {
				if _, err := sandbox.Ensure(reg, key, "any", sandbox.PoolConfig{MaxSandboxes: 1}, struct{}{},
					func(sandbox.PoolConfig, struct{}) (sandbox.Pool, error) { return p, nil }); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.end(reg); err != nil {
				t.Fatal(err)
			}
			if kube.detached != tc.wantDetached || kube.closed != tc.wantClosedK {
				t.Errorf("the detachable pool: detached %v, closed %v; want %v, %v", kube.detached, kube.closed, tc.wantDetached, tc.wantClosedK)
			}
			if _, err := local.Acquire(context.Background(), "ns/r"); !errors.Is(err, sandbox.ErrPoolClosed) {
				t.Errorf("the other pool was not closed: Acquire = %v", err)
			}
			if _, _, ok := reg.Get("ns/k"); ok {
				t.Errorf("the registry still holds a pool after %s", tc.name)
			}
		})
	}
}
