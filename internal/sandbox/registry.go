package sandbox

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Factory makes a pool of one backend. backendConfig is that backend's own settings
// (nil for Local), already resolved (Secrets read) by the caller.
type Factory func(cfg PoolConfig, backendConfig any) (Pool, error)

// ErrBackendNotImplemented is returned for a backend no factory is registered for.
var ErrBackendNotImplemented = errors.New("sandbox backend not implemented")

// Registry holds the live pools by key (the SandboxPool's "namespace/name") and the
// factories that make them, so a new backend plugs in by registering a Factory.
type Registry struct {
	mu        sync.Mutex
	factories map[string]Factory
	pools     map[string]*registered
}

type registered struct {
	pool        Pool
	backend     string
	fingerprint string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{factories: map[string]Factory{}, pools: map[string]*registered{}}
}

// Register makes backend available.
func (r *Registry) Register(backend string, f Factory) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.factories[backend] = f
}

// Ensure returns the pool for key, creating it on first use. A change of minReady or
// maxSandboxes resizes the live pool; any other change replaces it (busy jobs on the
// old pool see ErrSandboxLost and are retried by their callers).
func (r *Registry) Ensure(key, backend string, cfg PoolConfig, backendConfig any) (Pool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fp := fingerprint(backend, cfg, backendConfig)
	if cur, ok := r.pools[key]; ok {
		if cur.fingerprint == fp {
			if err := cur.pool.Resize(cfg.MinReady, cfg.MaxSandboxes); err != nil {
				return nil, err
			}
			return cur.pool, nil
		}
		_ = cur.pool.Close()
		delete(r.pools, key)
	}
	f, ok := r.factories[backend]
	if !ok {
		return nil, fmt.Errorf("%w: backend %q is not available in this build (available: %s)",
			ErrBackendNotImplemented, backend, strings.Join(r.backendsLocked(), ", "))
	}
	p, err := f(cfg, backendConfig)
	if err != nil {
		return nil, err
	}
	r.pools[key] = &registered{pool: p, backend: backend, fingerprint: fp}
	return p, nil
}

// Get returns the live pool for key and its backend.
func (r *Registry) Get(key string) (Pool, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.pools[key]
	if !ok {
		return nil, "", false
	}
	return cur.pool, cur.backend, true
}

// Remove closes and forgets the pool for key.
func (r *Registry) Remove(key string) error {
	r.mu.Lock()
	cur, ok := r.pools[key]
	delete(r.pools, key)
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return cur.pool.Close()
}

// Close closes every pool.
func (r *Registry) Close() error {
	r.mu.Lock()
	pools := r.pools
	r.pools = map[string]*registered{}
	r.mu.Unlock()
	var errs []error
	for _, p := range pools {
		errs = append(errs, p.pool.Close())
	}
	return errors.Join(errs...)
}

func (r *Registry) backendsLocked() []string {
	out := make([]string, 0, len(r.factories))
	for b := range r.factories {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}

// fingerprint identifies the settings that need a new pool when they change.
func fingerprint(backend string, cfg PoolConfig, backendConfig any) string {
	cfg.MinReady, cfg.MaxSandboxes, cfg.OnSandboxStarted = 0, 0, nil
	return fmt.Sprintf("%s|%+v|%#v", backend, cfg, deref(backendConfig))
}

func deref(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return rv.Elem().Interface()
	}
	return v
}
