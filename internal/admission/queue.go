// Package admission decides which requests may run now: a per-pool cap, a global cap
// for the whole operator, and first-come-first-served order within a pool. It is plain
// Go, safe for concurrent use, and knows nothing about Kubernetes.
//
// Requests are identified by an ID that never repeats (the object's UID), so a request
// deleted and re-created under the same name is a different entry. Each pool keeps its
// waiting requests in a heap ordered by creation time, ties broken by a monotonic
// sequence number (the order the queue first heard of them), so every operation is
// O(log n) in the pool's queue and O(pools) across pools: the work of draining a queue
// grows with the queue, not with its square.
//
// The controller seeds it from live state (requests already running) before its first
// decision, so the caps hold across an operator restart.
package admission

import (
	"container/heap"
	"maps"
	"sort"
	"sync"
	"time"
)

// Item is one request asking for a slot.
type Item struct {
	// ID identifies the request and never repeats (its UID).
	ID string
	// Key is what the caller wakes the request by ("namespace/name").
	Key string
	// Pool identifies its pool ("namespace/name").
	Pool string
	// Created orders the queue: older first; the queue's own sequence breaks ties.
	Created time.Time
}

// Queue holds the running set and, per pool, the waiting items.
type Queue struct {
	mu        sync.Mutex
	globalCap int
	poolCaps  map[string]int
	running   map[string]Item   // id -> item
	perPool   map[string]int    // pool -> running count
	pools     map[string]*waitq // pool -> waiting heap
	index     map[string]*entry // id -> waiting entry
	seq       uint64
	positions map[string]int // id -> position at the last Positions call
}

type entry struct {
	item Item
	seq  uint64
	pos  int // heap index
}

// NewQueue returns a queue with a global cap (at least 1).
func NewQueue(globalCap int) *Queue {
	if globalCap < 1 {
		globalCap = 1
	}
	return &Queue{
		globalCap: globalCap,
		poolCaps:  map[string]int{},
		running:   map[string]Item{},
		perPool:   map[string]int{},
		pools:     map[string]*waitq{},
		index:     map[string]*entry{},
		positions: map[string]int{},
	}
}

// SetPoolCap sets a pool's cap and returns the items a raised cap admitted (the caller
// wakes them). A lowered cap never stops running requests; it only holds new ones back
// until the pool is under it.
func (q *Queue) SetPoolCap(pool string, maxRunning int) []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	if old, ok := q.poolCaps[pool]; ok && old == maxRunning {
		return nil
	}
	q.poolCaps[pool] = maxRunning
	return q.admitLocked()
}

// MarkRunning records a request that already holds a slot (seeding from live state
// after a restart). It may push a pool over its cap; nothing new is admitted there
// until it is under again.
func (q *Queue) MarkRunning(item Item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.removeWaitingLocked(item.ID)
	if _, ok := q.running[item.ID]; !ok {
		q.running[item.ID] = item
		q.perPool[item.Pool]++
	}
}

// Enqueue puts item in its pool's queue (a no-op when it is already waiting or
// running) and admits whatever may start now, oldest first. It returns every item this
// call admitted, item itself included when its turn came: the caller starts item and
// wakes the others.
func (q *Queue) Enqueue(item Item) []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(item)
	return q.admitLocked()
}

// Add makes waiting items known without admitting anything (seeding a pool's queue
// in order before the first decision).
func (q *Queue) Add(items ...Item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range items {
		q.addLocked(it)
	}
}

// Admitted reports whether id holds a slot.
func (q *Queue) Admitted(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.running[id]
	return ok
}

// Known reports whether id is waiting or running.
func (q *Queue) Known(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, r := q.running[id]
	_, w := q.index[id]
	return r || w
}

// Unadmit undoes an admission whose status write failed: the item goes back to the
// head of its pool's queue, keeping its place, and nobody else is admitted in its
// stead (it will ask again at once).
func (q *Queue) Unadmit(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it, ok := q.running[id]
	if !ok {
		return
	}
	delete(q.running, id)
	q.decPoolLocked(it.Pool)
	q.addLocked(it)
}

// Release frees id's slot, or drops it from its queue, and returns the items now
// admitted in its place (the caller wakes them). It is idempotent: releasing an
// unknown id does nothing.
func (q *Queue) Release(id string) []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.positions, id)
	if it, ok := q.running[id]; ok {
		delete(q.running, id)
		q.decPoolLocked(it.Pool)
		return q.admitLocked()
	}
	q.removeWaitingLocked(id)
	return nil
}

// Position is id's 1-based place in its pool's queue as of the last Positions call,
// or, for an item added since, the length of its queue. 0 when id is not waiting.
func (q *Queue) Position(id string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.index[id]
	if !ok {
		return 0
	}
	if p, ok := q.positions[id]; ok {
		return p
	}
	return q.pools[e.item.Pool].Len()
}

// Positions computes every waiting item's place in its pool's queue (one sort per
// pool) and remembers it for Position. It returns id → position.
func (q *Queue) Positions() map[string]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[string]int, len(q.index))
	for _, w := range q.pools {
		es := make([]*entry, len(w.items))
		copy(es, w.items)
		sort.Slice(es, func(i, j int) bool { return less(es[i], es[j]) })
		for i, e := range es {
			out[e.item.ID] = i + 1
		}
	}
	q.positions = out
	// A copy: the queue goes on changing its own map (admissions delete from it) after
	// the lock is released, while the caller iterates.
	return maps.Clone(out)
}

// Waiting returns the item waiting under id.
func (q *Queue) Waiting(id string) (Item, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.index[id]
	if !ok {
		return Item{}, false
	}
	return e.item, true
}

// Running reports how many requests hold a slot, in all and in pool.
func (q *Queue) Running(pool string) (total, inPool int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.running), q.perPool[pool]
}

// Depth reports how many requests wait, in all.
func (q *Queue) Depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.index)
}

func (q *Queue) addLocked(it Item) {
	if _, ok := q.running[it.ID]; ok {
		return
	}
	if _, ok := q.index[it.ID]; ok {
		return
	}
	w := q.pools[it.Pool]
	if w == nil {
		w = &waitq{}
		q.pools[it.Pool] = w
	}
	q.seq++
	e := &entry{item: it, seq: q.seq}
	q.index[it.ID] = e
	heap.Push(w, e)
}

func (q *Queue) removeWaitingLocked(id string) {
	e, ok := q.index[id]
	if !ok {
		return
	}
	delete(q.index, id)
	w := q.pools[e.item.Pool]
	heap.Remove(w, e.pos)
	if w.Len() == 0 {
		delete(q.pools, e.item.Pool)
	}
}

func (q *Queue) decPoolLocked(pool string) {
	if q.perPool[pool]--; q.perPool[pool] <= 0 {
		delete(q.perPool, pool)
	}
}

// admitLocked admits heads while there is room: each round takes the oldest head among
// the pools under their caps, so no pool's later item passes its earlier one and a
// freed global slot goes to the oldest request that can use it.
func (q *Queue) admitLocked() []Item {
	var out []Item
	for len(q.running) < q.globalCap {
		var best *entry
		for pool, w := range q.pools {
			limit, ok := q.poolCaps[pool]
			if !ok {
				limit = q.globalCap
			}
			if q.perPool[pool] >= limit {
				continue
			}
			if h := w.items[0]; best == nil || less(h, best) {
				best = h
			}
		}
		if best == nil {
			break
		}
		q.removeWaitingLocked(best.item.ID)
		delete(q.positions, best.item.ID)
		q.running[best.item.ID] = best.item
		q.perPool[best.item.Pool]++
		out = append(out, best.item)
	}
	return out
}

func less(a, b *entry) bool {
	if !a.item.Created.Equal(b.item.Created) {
		return a.item.Created.Before(b.item.Created)
	}
	return a.seq < b.seq
}

// waitq is a min-heap of entries (container/heap).
type waitq struct{ items []*entry }

func (w *waitq) Len() int           { return len(w.items) }
func (w *waitq) Less(i, j int) bool { return less(w.items[i], w.items[j]) }
func (w *waitq) Swap(i, j int) {
	w.items[i], w.items[j] = w.items[j], w.items[i]
	w.items[i].pos, w.items[j].pos = i, j
}
func (w *waitq) Push(x any) {
	e := x.(*entry)
	e.pos = len(w.items)
	w.items = append(w.items, e)
}
func (w *waitq) Pop() any {
	n := len(w.items)
	e := w.items[n-1]
	w.items[n-1] = nil
	w.items = w.items[:n-1]
	return e
}
