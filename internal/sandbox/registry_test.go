package sandbox_test

import (
	"errors"
	"strings"
	"testing"

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
		{name: "an unknown backend names the known ones", backend: "E2B", cfg: cfg, wantMade: 2, wantErr: "backend \"E2B\" is not available in this build (available: Broken, Local)"},
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
	// The replaced pool was closed; Remove closes the live one.
	if _, err := made[0].Acquire(t.Context(), "o"); !errors.Is(err, sandbox.ErrPoolClosed) {
		t.Fatalf("replaced pool still open: %v", err)
	}
	if err := reg.Remove("ns/pool"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := reg.Get("ns/pool"); ok {
		t.Fatal("pool still registered after Remove")
	}
}
