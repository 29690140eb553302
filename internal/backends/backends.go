// Package backends is how a sandbox backend plugs into the SandboxPool controller.
// A backend is a pure package under internal/sandbox (its pools, its own typed
// options, no API type) plus an adapter here, under internal/backends/<name>, that
// implements Backend and as many of the optional interfaces below as it needs; the
// manager (cmd/main.go) registers each adapter once with Set.Register. The controller
// loops over what is registered and never names a backend.
//
// The shape follows kueue's jobframework (RegisterIntegration plus optional
// interfaces such as JobWithFinalize): one required interface that every backend
// implements, and small optional ones the controller discovers with a type assertion,
// so a backend that needs no finalizer or watch writes none. docs/adding-a-backend.md
// walks through adding one.
package backends

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// Backend is the Kubernetes side of one sandbox backend: it turns a SandboxPool and
// its SandboxClass into its own typed options and keeps the live pool.
type Backend interface {
	// Name is the SandboxClass spec.backend it serves.
	Name() vizv1.Backend
	// Ensure resolves in.Pool and in.Class into the backend's own options (reading
	// what they reference, such as a Secret) and makes, resizes or replaces the live
	// pool through sandbox.Ensure(in.Pools, in.Key, ...). Options that cannot be
	// resolved are a *SettingsError: the controller then drops the live pool.
	Ensure(ctx context.Context, in Input) (Ensured, error)
	// Reason maps one of the backend's own errors (from Ensure, or a pool's) to the
	// Ready condition's reason: one of api/v1alpha1's Reason constants, or "" for the
	// generic BackendUnavailable.
	Reason(err error) string
}

// Input is one reconcile of a pool of the backend's.
type Input struct {
	// Key is the SandboxPool's namespace/name: the registry's key.
	Key   string
	Pool  *vizv1.SandboxPool
	Class *vizv1.SandboxClass
	// Config is the backend-neutral part, already resolved: sizes, resources within
	// the class's bounds, network, plotly.js URL.
	Config sandbox.PoolConfig
	Pools  *sandbox.Registry
}

// Ensured is what Ensure made.
type Ensured struct {
	Pool sandbox.Pool
	// StepErr is a failure of a step after the pool is up (Kubernetes: making Pods):
	// the status is written from the pool, and the reconcile is retried with backoff.
	StepErr error
}

// Finalizer is a backend that makes objects in the cluster for a pool (Kubernetes:
// Pods, their token Secrets, a NetworkPolicy). The controller puts FinalizerName on
// the pool before the first Ensure, and calls Finalize when the pool is deleted (after
// dropping its live pool) or when its class no longer names this backend.
type Finalizer interface {
	Backend
	FinalizerName() string
	// Finalize removes what the backend made for the pool; cfg may come from no class
	// (it was deleted). done false: called again (the objects' events, or the next
	// status refresh, bring the pool back). The controller removes the finalizer.
	Finalize(ctx context.Context, sp *vizv1.SandboxPool, cfg sandbox.PoolConfig) (done bool, err error)
}

// Watcher is a backend that watches objects of its own, or wakes pools from its
// pools' own events (Kubernetes: its Pods and NetworkPolicies, and a channel a waiting
// claim wakes). Watch is called once, from the controller's SetupWithManager, and
// may keep mgr's client.
type Watcher interface {
	Backend
	Watch(mgr manager.Manager, b *builder.Builder) (*builder.Builder, error)
}

// Cacher is a backend whose objects the manager's cache must hold, label-filtered
// (the manager never caches every Pod of the cluster).
type Cacher interface {
	Backend
	CacheObjects() map[client.Object]cache.ByObject
}

// Throttler is a backend whose provider may throttle sandbox creation (E2B): its
// pools always carry the Throttled condition, from sandbox.PoolStatus.Throttled.
type Throttler interface {
	Backend
	Throttles() bool
}

// ReadyOverrider is a backend that can tell, from a running pool's status, that it
// cannot serve (Kubernetes: every Pod is stuck, or the API server refuses the Pods):
// NotReady returns the Ready=False reason and message, or "" to keep Ready=True.
type ReadyOverrider interface {
	Backend
	NotReady(in Input, st sandbox.PoolStatus, stepErr error) (reason, message string)
}

// SettingsError is a pool's settings that cannot be resolved (no class, a class
// that forbids the namespace, a missing Secret): Reason becomes the pool's Ready
// condition's reason, and the pool holds no sandboxes until they change. It wraps
// sandbox.ErrUnavailable.
type SettingsError struct {
	Reason, Message string
}

func (e *SettingsError) Error() string { return e.Message }
func (e *SettingsError) Unwrap() error { return sandbox.ErrUnavailable }

// Set is the backends this manager runs, by name.
type Set struct {
	byName map[vizv1.Backend]Backend
}

// NewSet returns a set of bs (Register each).
func NewSet(bs ...Backend) *Set {
	s := &Set{byName: map[vizv1.Backend]Backend{}}
	for _, b := range bs {
		s.Register(b)
	}
	return s
}

// Register makes b's backend available; a second backend of the same name replaces
// the first.
func (s *Set) Register(b Backend) {
	if s.byName == nil {
		s.byName = map[vizv1.Backend]Backend{}
	}
	s.byName[b.Name()] = b
}

// Get returns the backend of name.
func (s *Set) Get(name vizv1.Backend) (Backend, bool) {
	if s == nil {
		return nil, false
	}
	b, ok := s.byName[name]
	return b, ok
}

// All is every registered backend, by name.
func (s *Set) All() []Backend {
	if s == nil {
		return nil
	}
	out := make([]Backend, 0, len(s.byName))
	for _, b := range s.byName {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Backend) int { return strings.Compare(string(a.Name()), string(b.Name())) })
	return out
}

// NotImplemented is the error for a class naming a backend not in the set: it wraps
// sandbox.ErrBackendNotImplemented and names the available ones.
func (s *Set) NotImplemented(name vizv1.Backend) error {
	names := []string{}
	for _, b := range s.All() {
		names = append(names, string(b.Name()))
	}
	return fmt.Errorf("%w: backend %q is not available in this operator (available: %s)",
		sandbox.ErrBackendNotImplemented, name, strings.Join(names, ", "))
}

// CacheObjects merges the cache filters of the backends that have any into byObject
// (nil: a new map) and returns it.
func (s *Set) CacheObjects(byObject map[client.Object]cache.ByObject) map[client.Object]cache.ByObject {
	if byObject == nil {
		byObject = map[client.Object]cache.ByObject{}
	}
	for _, b := range s.All() {
		if c, ok := b.(Cacher); ok {
			for obj, by := range c.CacheObjects() {
				byObject[obj] = by
			}
		}
	}
	return byObject
}

// ReasonOf is the Ready reason of err: a SettingsError's own, else b's mapping (b may
// be nil); "" for the generic one.
func ReasonOf(b Backend, err error) string {
	var se *SettingsError
	if errors.As(err, &se) {
		return se.Reason
	}
	if b == nil || err == nil {
		return ""
	}
	return b.Reason(err)
}
