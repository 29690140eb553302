// Package local is the Local backend's adapter (internal/backends): its pools run in
// the manager's own container (internal/sandbox/local, bubblewrap). It has no
// settings of its own beyond the backend-neutral pool config, and needs no finalizer
// and no watch: its sandboxes are processes that die with their pool.
package local

import (
	"context"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/backends"
	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/local"
)

// Backend makes Local pools.
type Backend struct {
	// NewPool makes one pool (tests pass a fake; New passes local.NewPool).
	NewPool func(cfg sandbox.PoolConfig) (sandbox.Pool, error)
}

var _ backends.Backend = (*Backend)(nil)

// New returns the Local backend running pools with opts (the interpreter, bwrap and
// the quotas over all Local pools).
func New(opts local.Options) *Backend {
	return &Backend{NewPool: func(cfg sandbox.PoolConfig) (sandbox.Pool, error) { return local.NewPool(cfg, opts) }}
}

// Name is Local.
func (b *Backend) Name() vizv1.Backend { return vizv1.BackendLocal }

// Ensure makes or resizes the pool: a Local pool has no options of its own.
func (b *Backend) Ensure(_ context.Context, in backends.Input) (backends.Ensured, error) {
	p, err := sandbox.Ensure(in.Pools, in.Key, string(vizv1.BackendLocal), in.Config, struct{}{},
		func(cfg sandbox.PoolConfig, _ struct{}) (sandbox.Pool, error) { return b.NewPool(cfg) })
	return backends.Ensured{Pool: p}, err
}

// Reason: Local's errors (a missing bwrap, a full quota) are the generic ones.
func (b *Backend) Reason(error) string { return "" }
