package controller

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/vizops/viz-operator/internal/pipeline"
)

// Executor owns in-flight executions, so reconcile workers never wait on a sandbox
// or a model. Jobs are keyed by the request's UID: a request deleted and re-created
// under the same name never inherits the old one's job. A finished execution wakes its
// request through a channel source; the result stays here until the request's status
// has recorded it (Forget).
type Executor struct {
	mu     sync.Mutex
	base   context.Context // parent of every job; cancelled when the manager stops
	stop   context.CancelFunc
	jobs   map[types.UID]*job
	events chan event.GenericEvent
}

type job struct {
	key      types.NamespacedName
	attempt  int32
	cancel   context.CancelFunc
	ended    chan struct{} // closed when fn has returned
	done     bool
	result   pipeline.Result
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
		jobs:   map[types.UID]*job{},
		events: make(chan event.GenericEvent, 4096),
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

// Submit starts fn for the request's attempt in the background.
func (e *Executor) Submit(uid types.UID, key types.NamespacedName, attempt int32, fn func(ctx context.Context) (pipeline.Result, error)) {
	e.mu.Lock()
	ctx, cancel := context.WithCancel(e.base)
	j := &job{key: key, attempt: attempt, cancel: cancel, started: time.Now(), ended: make(chan struct{})}
	if old, ok := e.jobs[uid]; ok {
		old.cancel()
	}
	e.jobs[uid] = j
	e.mu.Unlock()
	go func() {
		out, err := fn(ctx)
		close(j.ended)
		e.mu.Lock()
		j.done, j.result, j.err, j.finished = true, out, err, time.Now()
		current := e.jobs[uid] == j
		e.mu.Unlock()
		cancel()
		if current {
			e.Wake(key)
		}
	}()
}

// Running reports whether uid has an execution here, running or finished but not
// yet recorded.
func (e *Executor) Running(uid types.UID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.jobs[uid]
	return ok
}

// Finished returns uid's finished execution, if any.
func (e *Executor) Finished(uid types.UID) (*job, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, ok := e.jobs[uid]
	if !ok || !j.done {
		return nil, false
	}
	return j, true
}

// Forget drops uid's finished execution once status has recorded it.
func (e *Executor) Forget(uid types.UID, j *job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.jobs[uid] == j {
		delete(e.jobs, uid)
	}
}

// Cancel stops uid's execution, if any, and forgets it. It returns a channel closed
// when the execution has really ended (nil when none was running), so the caller frees
// the slot only then and the caps hold while a cancelled job winds down. Idempotent.
func (e *Executor) Cancel(uid types.UID) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, ok := e.jobs[uid]
	if !ok {
		return nil
	}
	j.cancel()
	delete(e.jobs, uid)
	if j.done {
		return nil
	}
	return j.ended
}

// Len is the number of executions held (running or not yet recorded).
func (e *Executor) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.jobs)
}

// Wake enqueues key's request without blocking the caller, ahead of other work
// (wakePriority): an execution ended, or the request was admitted.
func (e *Executor) Wake(key types.NamespacedName) { e.send(wakeEvent(key)) }

// WakeRoutine enqueues key's request at the default priority, for work that may wait
// behind new requests (a queue position to refresh).
func (e *Executor) WakeRoutine(key types.NamespacedName) {
	ev := wakeEvent(key)
	ev.Object.SetAnnotations(map[string]string{routineWake: "true"})
	e.send(ev)
}

func (e *Executor) send(ev event.GenericEvent) {
	select {
	case e.events <- ev:
	default:
		go func() { e.events <- ev }()
	}
}

// routineWake marks a wake event (never a stored object) that needs no priority.
const routineWake = "viz.vizops.io/routine-wake"

// wakePriority puts the executor's wakes (an execution ended; a waiting request was
// admitted) ahead of new and changed requests in the controller's priority queue. The
// requests they wake are the ones that free and take the slots: behind a burst of
// thousands of new requests at the default priority, the pool would idle meanwhile.
const wakePriority = 10

// wakeHandler enqueues a wake event's request at wakePriority; routine wakes, and
// every wake when the controller's queue is not a priority queue, go in plainly.
var wakeHandler = handler.TypedFuncs[client.Object, reconcile.Request]{
	GenericFunc: func(_ context.Context, e event.TypedGenericEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)}
		if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok && e.Object.GetAnnotations()[routineWake] == "" {
			pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(wakePriority)}, req)
			return
		}
		q.Add(req)
	},
}
