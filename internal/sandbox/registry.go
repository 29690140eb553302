package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBackendNotImplemented is returned for a backend this operator does not run.
var ErrBackendNotImplemented = errors.New("sandbox backend not implemented")

// Registry holds the live pools by key (the SandboxPool's "namespace/name"). It knows
// no backend: each backend's adapter (internal/backends) hands Ensure its own typed
// options and the function that makes a pool from them.
//
// No lock is held while a pool is made, resized or closed (a backend's preflight can
// take long): the registry's own lock guards only its maps, and a per-key lock keeps
// two callers from making the same pool twice. Requests of other pools are never held
// up by one pool's start.
type Registry struct {
	mu       sync.Mutex
	pools    map[string]*registered
	keyLocks map[string]*sync.Mutex
	// DrainPoll is how often a replaced pool is checked for running jobs before it is
	// closed; DrainTimeout is the longest it is kept for them.
	DrainPoll, DrainTimeout time.Duration
}

type registered struct {
	pool        Pool
	backend     string
	fingerprint string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		pools:        map[string]*registered{},
		keyLocks:     map[string]*sync.Mutex{},
		DrainPoll:    100 * time.Millisecond,
		DrainTimeout: 11 * time.Minute, // past the longest execution timeout (600 s)
	}
}

func (r *Registry) keyLock(key string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.keyLocks[key]
	if !ok {
		l = &sync.Mutex{}
		r.keyLocks[key] = l
	}
	return l
}

// Ensure returns the pool for key, making it with newPool on first use. opts are the
// backend's own typed options, resolved by its adapter (Secrets read): newPool gets
// them as they are, and their JSON with cfg (less the sizes) is the fingerprint that
// tells a change. A change of minReady or maxSandboxes resizes the live pool; any other
// change replaces it: new jobs go to the new pool at once, and the old one is closed
// when its running jobs have finished, so a settings change costs no running request an
// attempt. A pool of another backend under the same key is replaced the same way.
func Ensure[O any](r *Registry, key, backend string, cfg PoolConfig, opts O, newPool func(PoolConfig, O) (Pool, error)) (Pool, error) {
	fp, err := fingerprint(backend, cfg, opts)
	if err != nil {
		return nil, err
	}
	return r.ensure(key, backend, cfg, fp, func() (Pool, error) { return newPool(cfg, opts) })
}

func (r *Registry) ensure(key, backend string, cfg PoolConfig, fp string, newPool func() (Pool, error)) (Pool, error) {
	kl := r.keyLock(key)
	kl.Lock()
	defer kl.Unlock()

	r.mu.Lock()
	cur, ok := r.pools[key]
	r.mu.Unlock()
	if ok && cur.fingerprint == fp {
		if err := cur.pool.Resize(cfg.MinReady, cfg.MaxSandboxes); err != nil {
			return nil, err
		}
		return cur.pool, nil
	}
	p, err := newPool()
	if err != nil {
		if ok {
			r.retire(key, cur)
		}
		return nil, err
	}
	r.mu.Lock()
	r.pools[key] = &registered{pool: p, backend: backend, fingerprint: fp}
	r.mu.Unlock()
	if ok {
		go r.drainAndClose(cur.pool)
	}
	return p, nil
}

// Retire forgets key's pool (its settings are no longer valid, or its backend is not
// run here) and closes it once its running jobs have finished.
func (r *Registry) Retire(key string) {
	kl := r.keyLock(key)
	kl.Lock()
	defer kl.Unlock()
	r.mu.Lock()
	cur, ok := r.pools[key]
	r.mu.Unlock()
	if ok {
		r.retire(key, cur)
	}
}

// retire drops key's pool (its settings are no longer valid) and drains it.
func (r *Registry) retire(key string, cur *registered) {
	r.mu.Lock()
	if r.pools[key] == cur {
		delete(r.pools, key)
	}
	r.mu.Unlock()
	go r.drainAndClose(cur.pool)
}

// drainAndClose closes p once no job runs in it (or DrainTimeout passed).
func (r *Registry) drainAndClose(p Pool) {
	deadline := time.Now().Add(r.DrainTimeout)
	for p.Status().Running > 0 && time.Now().Before(deadline) {
		time.Sleep(r.DrainPoll)
	}
	_ = p.Close()
}

// Get returns the live pool for key, its backend, and whether there is one.
func (r *Registry) Get(key string) (Pool, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.pools[key]
	if !ok {
		return nil, "", false
	}
	return cur.pool, cur.backend, true
}

// Remove closes and forgets the pool for key (the SandboxPool was deleted): its
// running jobs end with ErrSandboxLost and are retried by their callers.
func (r *Registry) Remove(key string) error {
	kl := r.keyLock(key)
	kl.Lock()
	defer kl.Unlock()
	r.mu.Lock()
	cur, ok := r.pools[key]
	delete(r.pools, key)
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return cur.pool.Close()
}

// Detacher is a pool whose sandboxes may outlive this process (Kubernetes Pods):
// Detach stops it as Close does but leaves its sandboxes for whoever runs next.
type Detacher interface {
	Detach()
}

// Shutdown is the registry's end when the manager stops cleanly: pools that can
// detach leave their sandboxes to the next manager (warm Pods survive a rollout);
// the others are closed, which destroys theirs (Local's processes die with the
// manager anyway; E2B's sandboxes cost money while they live).
func (r *Registry) Shutdown() error { return r.end(true) }

// Close closes every pool, destroying their sandboxes.
func (r *Registry) Close() error { return r.end(false) }

// end forgets every pool, detaching those that can when detach is set and closing
// the rest.
func (r *Registry) end(detach bool) error {
	r.mu.Lock()
	pools := r.pools
	r.pools = map[string]*registered{}
	r.mu.Unlock()
	var errs []error
	for _, p := range pools {
		if d, ok := p.pool.(Detacher); ok && detach {
			d.Detach()
			continue
		}
		errs = append(errs, p.pool.Close())
	}
	return errors.Join(errs...)
}

// fingerprint identifies the settings that need a new pool when they change: the
// serialized config and options (values, not pointers) less the sizes and callbacks.
func fingerprint[O any](backend string, cfg PoolConfig, opts O) (string, error) {
	cfg.MinReady, cfg.MaxSandboxes, cfg.OnSandboxStarted = 0, 0, nil
	b, err := json.Marshal(struct {
		Backend  string
		Config   PoolConfig
		Settings O
	}{backend, cfg, opts})
	if err != nil {
		return "", fmt.Errorf("pool settings cannot be compared: %w", err)
	}
	return string(b), nil
}
