// Package state is the request controller's memory of requests between reconciles:
// the admission queue (places and slots), which UID lives under each name, which
// requests this process wrote as finished, and the queue position each waiting request
// last wrote. It decides nothing about status; the reconciler tells it what the status
// it wrote says (Settle) or that the write failed (Rollback), and memory follows.
//
// It is one object so the rules that keep its parts in step live in one place and are
// tested without an API server (memory_test.go).
package state

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/detect"
)

// Executor is what memory needs of the executor: whether a request has a job here
// (running, or finished and not yet recorded), how to stop one, and how to wake a
// request's reconcile.
type Executor interface {
	Running(uid types.UID) bool
	// Cancel stops uid's job; the channel closes when it has wound down (nil: no job).
	Cancel(uid types.UID) <-chan struct{}
	// Wake reconciles key soon (it was admitted); WakeRoutine is a lower-priority
	// wake (its queue position moved).
	Wake(key types.NamespacedName)
	WakeRoutine(key types.NamespacedName)
}

// Memory is the controller's memory of requests. It is safe for concurrent use.
type Memory struct {
	// Queue enforces the per-pool and operator-wide caps.
	Queue *admission.Queue
	exec  Executor
	// changed is called after the queue changed (the queue gauges).
	changed func(*admission.Queue)

	mu       sync.Mutex
	names    map[types.NamespacedName]types.UID
	finished map[types.UID]struct{}
	reported map[types.UID]int
	// detections are unfinished requests' detections, run once at intake and taken by
	// the pipeline, so a request is not detected again on every pass.
	detections map[types.UID]detect.Result
}

// New returns an empty memory over q and e; changed (may be nil) is called after each
// change of the queue.
func New(q *admission.Queue, e Executor, changed func(*admission.Queue)) *Memory {
	if changed == nil {
		changed = func(*admission.Queue) {}
	}
	return &Memory{
		Queue:      q,
		exec:       e,
		changed:    changed,
		names:      map[types.NamespacedName]types.UID{},
		finished:   map[types.UID]struct{}{},
		reported:   map[types.UID]int{},
		detections: map[types.UID]detect.Result{},
	}
}

// See records uid under key. When the name held another object (deleted without a
// reconcile seeing it gone: kubectl replace --force, GitOps), that one's job and slot
// go, and its UID is returned.
func (m *Memory) See(key types.NamespacedName, uid types.UID) (replaced types.UID) {
	m.mu.Lock()
	old, ok := m.names[key]
	m.names[key] = uid
	if ok && old != uid {
		m.forgetLocked(old)
	} else {
		old = ""
	}
	m.mu.Unlock()
	m.Drop(old)
	return old
}

// Gone forgets key (its object was deleted): its job and slot go.
func (m *Memory) Gone(key types.NamespacedName) {
	m.mu.Lock()
	uid := m.names[key]
	delete(m.names, key)
	m.forgetLocked(uid)
	m.mu.Unlock()
	m.Drop(uid)
}

func (m *Memory) forgetLocked(uid types.UID) {
	delete(m.finished, uid)
	delete(m.reported, uid)
	delete(m.detections, uid)
}

// Finish lets go of everything uid holds and remembers that this process wrote it
// finished, so a stale cached copy is never acted on again (Finished).
func (m *Memory) Finish(uid types.UID) {
	m.Drop(uid)
	m.mu.Lock()
	m.finished[uid] = struct{}{}
	delete(m.reported, uid)
	delete(m.detections, uid)
	m.mu.Unlock()
}

// Detection returns uid's detection, if this process has run it.
func (m *Memory) Detection(uid types.UID) (detect.Result, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.detections[uid]
	return d, ok
}

// SetDetection remembers uid's detection until the request finishes or goes; a
// finished request's is not kept.
func (m *Memory) SetDetection(uid types.UID, d detect.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, done := m.finished[uid]; done {
		return
	}
	m.detections[uid] = d
}

// Finished reports whether this process wrote uid finished.
func (m *Memory) Finished(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.finished[uid]
	return ok
}

// Drop stops uid's job and frees or leaves its slot or queue place, waking the
// requests admitted instead. Every path that ends a request's claim on the manager
// (finished, deleted, replaced by a new UID) goes through here; it is idempotent. A
// cancelled job keeps its slot until it has wound down.
func (m *Memory) Drop(uid types.UID) {
	if uid == "" {
		return
	}
	if ended := m.exec.Cancel(uid); ended != nil {
		go func() {
			<-ended
			m.Release(uid)
		}()
		return
	}
	m.Release(uid)
}

// Release frees uid's slot or queue place and wakes whoever was admitted instead.
func (m *Memory) Release(uid types.UID) {
	m.Wake(m.Queue.Release(string(uid)))
}

// Wake wakes the requests just admitted.
func (m *Memory) Wake(admitted []admission.Item) {
	for _, it := range admitted {
		m.exec.Wake(ParseKey(it.Key))
	}
	m.changed(m.Queue)
}

// SetPoolCap sets a pool's cap, waking the requests a raised cap admits.
func (m *Memory) SetPoolCap(pool string, maxRunning int) {
	m.Wake(m.Queue.SetPoolCap(pool, maxRunning))
}

// Admit asks the queue for a slot: true when the request may run (it holds a slot,
// or has a job here), false when it waits. Others the call admits are woken.
func (m *Memory) Admit(it admission.Item) bool {
	if m.exec.Running(types.UID(it.ID)) || m.Queue.Admitted(it.ID) {
		return true
	}
	admitted := m.Queue.Enqueue(it)
	others := admitted[:0:0]
	self := false
	for _, a := range admitted {
		if a.ID == it.ID {
			self = true
		} else {
			others = append(others, a)
		}
	}
	m.Wake(others)
	return self
}

// Position is uid's place in its pool's queue (0: not waiting).
func (m *Memory) Position(uid types.UID) int { return m.Queue.Position(string(uid)) }

// Before is what the queue knew of a request when a reconcile pass began, so a pass
// whose status write fails can undo what it changed in memory.
type Before struct {
	Known, Admitted bool
}

// Remember records what the queue knows of uid now.
func (m *Memory) Remember(uid types.UID) Before {
	id := string(uid)
	return Before{Known: m.Queue.Known(id), Admitted: m.Queue.Admitted(id)}
}

// Rollback undoes a pass's admission after its status write failed: the slot goes
// back (the request keeps its place at the head) and a queue entry the pass added goes.
func (m *Memory) Rollback(uid types.UID, before Before) {
	id := string(uid)
	if !before.Admitted && m.Queue.Admitted(id) {
		m.Queue.Unadmit(id)
	}
	if !before.Known && m.Queue.Known(id) {
		m.Release(uid)
	}
	m.changed(m.Queue)
}

// Written is what the status a pass wrote (or, when it wrote nothing, the cached copy
// it read) says of the request, as far as memory cares.
type Written struct {
	// Finished: the request reached a final phase.
	Finished bool
	// Admitted: its Admitted condition is True.
	Admitted bool
	// QueuePosition is status.queuePosition (0: none).
	QueuePosition int
	// InBackoff: status.nextRetryTime is in the future.
	InBackoff bool
	// KeepPlace: the pass gave its slot back for a passing cause (its pool not live
	// yet) and keeps its place at the head.
	KeepPlace bool
	// Failed: a step failed with an error (the pass is retried).
	Failed bool
}

// Settle brings memory in line with the status just written: a finished request lets
// go of everything; a request with a job here (running, or finished and not yet
// recorded) keeps its slot; a request whose status does not say Admitted holds no slot
// (an admission that could not start gives its slot back, keeping its place when the
// cause was a passing error); a request in backoff leaves the queue.
//
// The status can be a stale copy when the pass wrote nothing: a slot under a live job
// is never freed by one (it would let a second request run beside it).
func (m *Memory) Settle(uid types.UID, w Written, before Before) {
	id := string(uid)
	if w.Finished {
		m.Finish(uid)
		return
	}
	m.setReported(uid, w.QueuePosition)
	if w.Admitted || m.exec.Running(uid) {
		return
	}
	switch {
	case m.Queue.Admitted(id) && (w.KeepPlace || (w.Failed && !before.Admitted)):
		m.Queue.Unadmit(id)
		m.changed(m.Queue)
	case m.Queue.Admitted(id), w.InBackoff && m.Queue.Known(id):
		m.Release(uid)
	}
}

func (m *Memory) setReported(uid types.UID, pos int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pos <= 0 {
		delete(m.reported, uid)
		return
	}
	m.reported[uid] = pos
}

// Seed fills memory from live state once, before the first decision: requests whose
// status says they hold a slot keep it (the caps hold across a restart), and waiting
// requests keep their order (waiting oldest first).
func (m *Memory) Seed(seen map[types.NamespacedName]types.UID, running, waiting []admission.Item) {
	m.mu.Lock()
	for k, uid := range seen {
		m.names[k] = uid
	}
	m.mu.Unlock()
	for _, it := range running {
		m.Queue.MarkRunning(it)
	}
	m.Queue.Add(waiting...)
	m.changed(m.Queue)
}

// ParseKey reads an admission.Item's Key ("namespace/name").
func ParseKey(k string) types.NamespacedName {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return types.NamespacedName{Namespace: k[:i], Name: k[i+1:]}
		}
	}
	return types.NamespacedName{Name: k}
}
