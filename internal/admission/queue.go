// Package admission decides which requests may run now: a per-pool cap, a global cap
// for the whole operator, and first-come-first-served order by creation time within
// a pool. It is plain Go, safe for concurrent use, and knows nothing about Kubernetes.
//
// The controller seeds it from live state (requests already running) before its first
// decision, so the caps hold across an operator restart.
package admission

import (
	"sort"
	"sync"
	"time"
)

// Item is one request asking for a slot.
type Item struct {
	// Key identifies the request ("namespace/name").
	Key string
	// Pool identifies its pool ("namespace/name").
	Pool string
	// Created orders the queue: older first; Key breaks ties.
	Created time.Time
}

// Decision is the answer to Admit.
type Decision struct {
	// Admitted is true when the request holds a slot now.
	Admitted bool
	// Position is the 1-based place in its pool's queue while not admitted.
	Position int
	// Others are requests admitted by this call besides item (older ones that were
	// waiting): the caller wakes them.
	Others []string
}

// Queue holds the running set and the waiting items.
type Queue struct {
	mu        sync.Mutex
	globalCap int
	poolCaps  map[string]int
	running   map[string]string // key -> pool
	waiting   map[string]Item   // key -> item
}

// NewQueue returns a queue with a global cap (at least 1).
func NewQueue(globalCap int) *Queue {
	if globalCap < 1 {
		globalCap = 1
	}
	return &Queue{
		globalCap: globalCap,
		poolCaps:  map[string]int{},
		running:   map[string]string{},
		waiting:   map[string]Item{},
	}
}

// SetPoolCap sets a pool's cap. A lowered cap never stops running requests; it only
// holds new ones back until the pool is under it.
func (q *Queue) SetPoolCap(pool string, maxRunning int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.poolCaps[pool] = maxRunning
}

// MarkRunning records a request that already holds a slot (seeding from live state
// after a restart). It may push a pool over its cap; nothing new is admitted there
// until it is under again.
func (q *Queue) MarkRunning(key, pool string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.waiting, key)
	q.running[key] = pool
}

// Admit asks for a slot for item. It is idempotent: a running item stays admitted,
// a waiting item keeps its place. An item is admitted only when it is first in its
// pool's queue among those that fit, so nobody jumps the line.
func (q *Queue) Admit(item Item) Decision {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.running[item.Key]; ok {
		return Decision{Admitted: true}
	}
	q.waiting[item.Key] = item
	var d Decision
	for _, key := range q.admittableLocked() {
		q.running[key] = q.waiting[key].Pool
		delete(q.waiting, key)
		if key == item.Key {
			d.Admitted = true
		} else {
			d.Others = append(d.Others, key)
		}
	}
	if !d.Admitted {
		d.Position = q.positionLocked(item)
	}
	return d
}

// Enqueue makes waiting requests known without admitting anything, so that an older
// request that has not asked yet still keeps its place ahead of a newer one that has.
func (q *Queue) Enqueue(items ...Item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range items {
		if _, ok := q.running[it.Key]; !ok {
			q.waiting[it.Key] = it
		}
	}
}

// Release frees a request's slot (or drops it from the queue) and returns the keys
// whose decision may have changed: the requests now admitted and the ones still
// waiting in the affected pool (their positions moved). The caller wakes them.
func (q *Queue) Release(key string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	pool, wasRunning := q.running[key]
	item, wasWaiting := q.waiting[key]
	delete(q.running, key)
	delete(q.waiting, key)
	if !wasRunning && !wasWaiting {
		return nil
	}
	if wasWaiting {
		pool = item.Pool
	}
	var wake []string
	if wasRunning {
		// A freed global slot can let any pool's head in.
		for _, k := range q.admittableLocked() {
			q.running[k] = q.waiting[k].Pool
			delete(q.waiting, k)
			wake = append(wake, k)
		}
	}
	for k, it := range q.waiting {
		if it.Pool == pool {
			wake = append(wake, k)
		}
	}
	sort.Strings(wake)
	return wake
}

// Running reports how many requests hold a slot, in all and in pool.
func (q *Queue) Running(pool string) (total, inPool int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range q.running {
		if p == pool {
			inPool++
		}
	}
	return len(q.running), inPool
}

// Waiting reports how many requests wait, in all.
func (q *Queue) Waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

// admittableLocked returns the waiting keys that may start now, oldest first across
// pools, never letting a pool's later item pass its earlier one.
func (q *Queue) admittableLocked() []string {
	free := q.globalCap - len(q.running)
	if free <= 0 || len(q.waiting) == 0 {
		return nil
	}
	perPool := map[string]int{}
	for _, p := range q.running {
		perPool[p]++
	}
	var out []string
	// Oldest first; a full pool skips all its items, so none passes an older one.
	for _, it := range q.sortedWaitingLocked() {
		if free == 0 {
			break
		}
		limit, ok := q.poolCaps[it.Pool]
		if !ok {
			limit = q.globalCap
		}
		if perPool[it.Pool] >= limit {
			continue
		}
		perPool[it.Pool]++
		free--
		out = append(out, it.Key)
	}
	return out
}

func (q *Queue) positionLocked(item Item) int {
	pos := 1
	for _, it := range q.waiting {
		if it.Pool == item.Pool && before(it, item) {
			pos++
		}
	}
	return pos
}

func (q *Queue) sortedWaitingLocked() []Item {
	items := make([]Item, 0, len(q.waiting))
	for _, it := range q.waiting {
		items = append(items, it)
	}
	sort.Slice(items, func(i, j int) bool { return before(items[i], items[j]) })
	return items
}

func before(a, b Item) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.Key < b.Key
}
