package sandbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

func TestRegistry(t *testing.T) {
	var made []*sandboxtest.Pool
	reg := sandbox.NewRegistry()
	reg.Register("Local", func(cfg sandbox.PoolConfig, _ any) (sandbox.Pool, error) {
		p := sandboxtest.NewPool(cfg.MaxSandboxes)
		_ = p.Resize(cfg.MinReady, cfg.MaxSandboxes)
		made = append(made, p)
		return p, nil
	})
	reg.Register("Broken", func(sandbox.PoolConfig, any) (sandbox.Pool, error) {
		return nil, errors.New("bwrap not found")
	})
	cfg := sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2}

	steps := []struct {
		name      string
		backend   string
		cfg       sandbox.PoolConfig
		wantMade  int
		wantErr   string
		wantReady int
	}{
		{name: "first use creates", backend: "Local", cfg: cfg, wantMade: 1, wantReady: 1},
		{name: "same config reuses", backend: "Local", cfg: cfg, wantMade: 1, wantReady: 1},
		{name: "a size change resizes in place", backend: "Local", cfg: sandbox.PoolConfig{MinReady: 3, MaxSandboxes: 4}, wantMade: 1, wantReady: 3},
		{name: "another change replaces", backend: "Local", cfg: sandbox.PoolConfig{MinReady: 3, MaxSandboxes: 4, Network: sandbox.NetworkEgress}, wantMade: 2, wantReady: 3},
		{name: "an unknown backend names the known ones", backend: "E2B", cfg: cfg, wantMade: 2, wantErr: "backend \"E2B\" is not available in this operator (available: Broken, Local)"},
		{name: "a factory error passes through", backend: "Broken", cfg: cfg, wantMade: 2, wantErr: "bwrap not found"},
	}
	for _, s := range steps {
		p, err := reg.Ensure("ns/pool", s.backend, s.cfg, nil)
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
	}
	if _, err := reg.Ensure("x/y", "E2B", cfg, nil); !errors.Is(err, sandbox.ErrBackendNotImplemented) {
		t.Fatalf("unknown backend error %v is not ErrBackendNotImplemented", err)
	}
	// The replaced pool was closed once idle (at once: nothing ran there); Remove
	// closes the live one.
	waitFor(t, "the replaced pool closed", func() bool {
		_, err := made[0].Acquire(t.Context(), "o")
		return errors.Is(err, sandbox.ErrPoolClosed)
	})
	if err := reg.Remove("ns/pool"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := reg.Get("ns/pool"); ok {
		t.Fatal("pool still registered after Remove")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A settings change must not cost a running job its attempt: the old pool keeps it to
// the end and closes after.
func TestRegistryReplacementDrainsRunningJobs(t *testing.T) {
	var made []*sandboxtest.Pool
	reg := sandbox.NewRegistry()
	reg.DrainPoll = time.Millisecond
	reg.Register("Local", func(cfg sandbox.PoolConfig, _ any) (sandbox.Pool, error) {
		p := sandboxtest.NewPool(cfg.MaxSandboxes)
		made = append(made, p)
		return p, nil
	})
	old, err := reg.Ensure("ns/p", "Local", sandbox.PoolConfig{MaxSandboxes: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	made[0].Hold()
	done := make(chan error, 1)
	go func() {
		_, err := sandbox.Run(context.Background(), old, "job", sandbox.Request{Code: "1"})
		done <- err
	}()
	waitFor(t, "the job to start", func() bool { return made[0].Busy() == 1 })
	cur, err := reg.Ensure("ns/p", "Local", sandbox.PoolConfig{MaxSandboxes: 1, PlotlyJSURL: "inline"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cur == old {
		t.Fatal("a changed setting did not make a new pool")
	}
	if _, err := made[0].Acquire(t.Context(), "probe"); err != nil {
		t.Fatalf("the old pool closed while a job ran in it: %v", err)
	}
	made[0].Open()
	if err := <-done; err != nil {
		t.Fatalf("the running job failed: %v", err)
	}
	waitFor(t, "the drained pool to close", func() bool {
		_, err := made[0].Acquire(t.Context(), "o")
		return errors.Is(err, sandbox.ErrPoolClosed)
	})
}

// One pool's slow start must not hold up the others.
func TestRegistryDoesNotLockAcrossPools(t *testing.T) {
	reg := sandbox.NewRegistry()
	release := make(chan struct{})
	reg.Register("Slow", func(cfg sandbox.PoolConfig, _ any) (sandbox.Pool, error) {
		<-release
		return sandboxtest.NewPool(1), nil
	})
	reg.Register("Local", func(cfg sandbox.PoolConfig, _ any) (sandbox.Pool, error) {
		return sandboxtest.NewPool(1), nil
	})
	go func() { _, _ = reg.Ensure("ns/slow", "Slow", sandbox.PoolConfig{}, nil) }()
	ok := make(chan struct{})
	go func() {
		if _, err := reg.Ensure("ns/fast", "Local", sandbox.PoolConfig{}, nil); err == nil {
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
	reg.Register("Local", func(cfg sandbox.PoolConfig, _ any) (sandbox.Pool, error) {
		made++
		return sandboxtest.NewPool(1), nil
	})
	type settings struct{ Template *string }
	a, b := "x", "x"
	for _, s := range []*settings{{Template: &a}, {Template: &b}} {
		if _, err := reg.Ensure("ns/p", "Local", sandbox.PoolConfig{}, s); err != nil {
			t.Fatal(err)
		}
	}
	if made != 1 {
		t.Fatalf("%d pools made for equal settings, want 1", made)
	}
}

func TestRegistryHas(t *testing.T) {
	r := sandbox.NewRegistry()
	r.Register("Local", func(sandbox.PoolConfig, any) (sandbox.Pool, error) { return nil, nil })
	for backend, want := range map[string]bool{"Local": true, "E2B": false, "": false} {
		if got := r.Has(backend); got != want {
			t.Errorf("Has(%q) = %v, want %v", backend, got, want)
		}
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
			reg.Register("Kubernetes", func(sandbox.PoolConfig, any) (sandbox.Pool, error) { return kube, nil })
			reg.Register("Local", func(sandbox.PoolConfig, any) (sandbox.Pool, error) { return local, nil })
			for key, backend := range map[string]string{"ns/k": "Kubernetes", "ns/l": "Local"} {
				if _, err := reg.Ensure(key, backend, sandbox.PoolConfig{MaxSandboxes: 1}, nil); err != nil {
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
