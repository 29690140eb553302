package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/detect"
)

// tracker is the manager's memory of requests, beyond the queue and the executor: which
// UID lives under a name (so a name re-used by a new object frees the old one's slot and
// job), which UIDs this process has written as finished (so a stale cache read of one
// never acts on it again), the queue position each waiting request last wrote, and
// each unfinished request's detection (run once, at intake; the pipeline takes it).
type tracker struct {
	mu         sync.Mutex
	names      map[types.NamespacedName]types.UID
	finished   map[types.UID]struct{}
	reported   map[types.UID]int
	detections map[types.UID]detect.Result
}

func newTracker() *tracker {
	return &tracker{
		names:      map[types.NamespacedName]types.UID{},
		finished:   map[types.UID]struct{}{},
		reported:   map[types.UID]int{},
		detections: map[types.UID]detect.Result{},
	}
}

// see records uid under key and returns the UID it replaces, if any.
func (t *tracker) see(key types.NamespacedName, uid types.UID) (replaced types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, ok := t.names[key]
	t.names[key] = uid
	if ok && old != uid {
		delete(t.finished, old)
		delete(t.reported, old)
		delete(t.detections, old)
		return old
	}
	return ""
}

// gone forgets key (the object was deleted) and returns the UID it had.
func (t *tracker) gone(key types.NamespacedName) types.UID {
	t.mu.Lock()
	defer t.mu.Unlock()
	uid := t.names[key]
	delete(t.names, key)
	delete(t.finished, uid)
	delete(t.reported, uid)
	delete(t.detections, uid)
	return uid
}

func (t *tracker) markFinished(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finished[uid] = struct{}{}
	delete(t.reported, uid)
	delete(t.detections, uid)
}

// detection returns uid's detection, if this process has run it.
func (t *tracker) detection(uid types.UID) (detect.Result, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.detections[uid]
	return d, ok
}

// setDetection remembers uid's detection until the request finishes or goes. A
// finished request's is not kept.
func (t *tracker) setDetection(uid types.UID, d detect.Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, done := t.finished[uid]; done {
		return
	}
	t.detections[uid] = d
}

func (t *tracker) isFinished(uid types.UID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.finished[uid]
	return ok
}

func (t *tracker) setReported(uid types.UID, pos int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pos == 0 {
		delete(t.reported, uid)
		return
	}
	t.reported[uid] = pos
}

func (t *tracker) reportedPosition(uid types.UID) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.reported[uid]
	return p, ok
}

// drop stops uid's execution and frees or leaves its slot or queue place, waking the
// requests admitted instead. Every path that ends a request's claim on the manager
// (finished, deleted, replaced by a new UID) goes through here; it is idempotent.
func (r *VisualizationRequestReconciler) drop(uid types.UID) {
	if uid == "" {
		return
	}
	if ended := r.Executor.Cancel(uid); ended != nil {
		// The slot stays held until the cancelled execution has wound down.
		go func() {
			<-ended
			r.release(uid)
		}()
		return
	}
	r.release(uid)
}

// release frees uid's slot or queue place and wakes whoever was admitted instead.
func (r *VisualizationRequestReconciler) release(uid types.UID) {
	r.wake(r.Queue.Release(string(uid)))
}

func (r *VisualizationRequestReconciler) wake(admitted []admission.Item) {
	for _, it := range admitted {
		r.Executor.Wake(parseKey(it.Key))
	}
	updateQueueGauges(r.Queue)
}

// memoryBefore is what the queue knew of a request when a reconcile pass began, so a
// pass whose status write fails can undo what it changed in memory.
type memoryBefore struct {
	known, admitted bool
}

func (r *VisualizationRequestReconciler) remember(uid types.UID) memoryBefore {
	id := string(uid)
	return memoryBefore{known: r.Queue.Known(id), admitted: r.Queue.Admitted(id)}
}

// rollback undoes a pass's admission after its status write failed: the slot goes back
// (the request keeps its place at the head) and a queue entry the pass added goes.
func (r *VisualizationRequestReconciler) rollback(uid types.UID, before memoryBefore) {
	id := string(uid)
	if !before.admitted && r.Queue.Admitted(id) {
		r.Queue.Unadmit(id)
	}
	if !before.known && r.Queue.Known(id) {
		r.release(uid)
	}
	updateQueueGauges(r.Queue)
}
