package local

import (
	"context"
	"testing"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// The Local adapter makes a pool from the pool config alone, resizes it in place and
// replaces it when anything else changes (the registry's fingerprint of no options).
func TestEnsure(t *testing.T) {
	var made []sandbox.PoolConfig
	b := &Backend{NewPool: func(cfg sandbox.PoolConfig) (sandbox.Pool, error) {
		made = append(made, cfg)
		return sandboxtest.NewPool(cfg.MaxSandboxes), nil
	}}
	if b.Name() != vizv1.BackendLocal {
		t.Fatalf("Name = %q", b.Name())
	}
	reg := sandbox.NewRegistry()
	t.Cleanup(func() { _ = reg.Close() })
	for i, tc := range []struct {
		cfg      sandbox.PoolConfig
		wantMade int
	}{
		{sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2}, 1},
		{sandbox.PoolConfig{MinReady: 2, MaxSandboxes: 2}, 1},
		{sandbox.PoolConfig{MinReady: 2, MaxSandboxes: 2, Network: sandbox.NetworkEgress}, 2},
	} {
		got, err := b.Ensure(context.Background(), backends.Input{Key: "ns/p", Config: tc.cfg, Pools: reg})
		if err != nil || got.Pool == nil || got.StepErr != nil {
			t.Fatalf("step %d: Ensure = %+v, %v", i, got, err)
		}
		if len(made) != tc.wantMade {
			t.Fatalf("step %d: %d pools made, want %d", i, len(made), tc.wantMade)
		}
		if _, backend, _ := reg.Get("ns/p"); backend != string(vizv1.BackendLocal) {
			t.Fatalf("step %d: the registry holds a pool of backend %q", i, backend)
		}
	}
	if b.Reason(sandbox.ErrUnavailable) != "" {
		t.Error("Local maps an error to a reason of its own")
	}
}
