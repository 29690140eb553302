package controller

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// Executor owns in-flight executions, so reconcile workers never wait on a sandbox
// or a model. A finished execution wakes its request through a channel source; the
// result stays here until the request's status has recorded it (Forget).
type Executor struct {
	mu     sync.Mutex
	base   context.Context // parent of every job; cancelled when the manager stops
	stop   context.CancelFunc
	jobs   map[types.NamespacedName]*job
	events chan event.GenericEvent
}

type job struct {
	attempt  int32
	cancel   context.CancelFunc
	done     bool
	outcome  Outcome
	err      error
	started  time.Time
	finished time.Time
}

// NewExecutor returns an executor; the manager starts it (it is a Runnable).
func NewExecutor() *Executor {
	// Its own base context, so that a job submitted before Start still ends with the
	// manager.
	base, stop := context.WithCancel(context.Background())
	return &Executor{
		base:   base,
		stop:   stop,
		jobs:   map[types.NamespacedName]*job{},
		events: make(chan event.GenericEvent, 1024),
	}
}

// Start implements manager.Runnable: executions live as long as the manager.
func (e *Executor) Start(ctx context.Context) error {
	<-ctx.Done()
	e.stop()
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (e *Executor) NeedLeaderElection() bool { return true }

// Submit starts fn for key's attempt in the background.
func (e *Executor) Submit(key types.NamespacedName, attempt int32, fn func(ctx context.Context) (Outcome, error)) {
	e.mu.Lock()
	ctx, cancel := context.WithCancel(e.base)
	j := &job{attempt: attempt, cancel: cancel, started: time.Now()}
	if old, ok := e.jobs[key]; ok {
		old.cancel()
	}
	e.jobs[key] = j
	e.mu.Unlock()
	go func() {
		out, err := fn(ctx)
		e.mu.Lock()
		j.done, j.outcome, j.err, j.finished = true, out, err, time.Now()
		current := e.jobs[key] == j
		e.mu.Unlock()
		cancel()
		if current {
			e.Wake(key)
		}
	}()
}

// Running reports whether key has an execution here, running or finished but not
// yet recorded.
func (e *Executor) Running(key types.NamespacedName) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.jobs[key]
	return ok
}

// Finished returns key's finished execution, if any.
func (e *Executor) Finished(key types.NamespacedName) (*job, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, ok := e.jobs[key]
	if !ok || !j.done {
		return nil, false
	}
	return j, true
}

// Forget drops key's finished execution once status has recorded it.
func (e *Executor) Forget(key types.NamespacedName, j *job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.jobs[key] == j {
		delete(e.jobs, key)
	}
}

// Cancel stops key's execution (the request was deleted).
func (e *Executor) Cancel(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j, ok := e.jobs[key]; ok {
		j.cancel()
		delete(e.jobs, key)
	}
}

// Wake enqueues key's request without blocking the caller.
func (e *Executor) Wake(key types.NamespacedName) {
	select {
	case e.events <- wakeEvent(key):
	default:
		go func() { e.events <- wakeEvent(key) }()
	}
}
