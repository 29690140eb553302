package admission

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func item(key, pool string, sec int) Item {
	return Item{Key: key, Pool: pool, Created: t0.Add(time.Duration(sec) * time.Second)}
}

func TestAdmit(t *testing.T) {
	type step struct {
		admit   *Item
		release string
		want    Decision
		wake    []string
	}
	tests := map[string]struct {
		global int
		caps   map[string]int
		steps  []step
	}{
		"pool cap holds and frees in order": {
			global: 10, caps: map[string]int{"p": 1},
			steps: []step{
				{admit: ptr(item("a", "p", 1)), want: Decision{Admitted: true}},
				{admit: ptr(item("c", "p", 3)), want: Decision{Position: 1}},
				{admit: ptr(item("b", "p", 2)), want: Decision{Position: 1}}, // older: goes first
				{admit: ptr(item("c", "p", 3)), want: Decision{Position: 2}},
				{release: "a", wake: []string{"b", "c"}},
				{admit: ptr(item("b", "p", 2)), want: Decision{Admitted: true}},
				{admit: ptr(item("c", "p", 3)), want: Decision{Position: 1}},
			},
		},
		"global cap across pools: oldest head first": {
			global: 1, caps: map[string]int{"p": 5, "q": 5},
			steps: []step{
				{admit: ptr(item("a", "p", 1)), want: Decision{Admitted: true}},
				{admit: ptr(item("y", "q", 3)), want: Decision{Position: 1}},
				{admit: ptr(item("x", "p", 2)), want: Decision{Position: 1}},
				{release: "a", wake: []string{"x"}},
				{admit: ptr(item("y", "q", 3)), want: Decision{Position: 1}},
			},
		},
		"a full pool does not block another pool": {
			global: 3, caps: map[string]int{"p": 1, "q": 2},
			steps: []step{
				{admit: ptr(item("a", "p", 1)), want: Decision{Admitted: true}},
				{admit: ptr(item("b", "p", 2)), want: Decision{Position: 1}},
				{admit: ptr(item("c", "q", 3)), want: Decision{Admitted: true}},
			},
		},
		"release of a waiting item moves the ones behind": {
			global: 1, caps: map[string]int{"p": 1},
			steps: []step{
				{admit: ptr(item("a", "p", 1)), want: Decision{Admitted: true}},
				{admit: ptr(item("b", "p", 2)), want: Decision{Position: 1}},
				{admit: ptr(item("c", "p", 3)), want: Decision{Position: 2}},
				{release: "b", wake: []string{"c"}},
				{admit: ptr(item("c", "p", 3)), want: Decision{Position: 1}},
			},
		},
		"unknown key releases nothing": {
			global: 1,
			steps:  []step{{release: "nope", wake: nil}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q := NewQueue(tc.global)
			for p, c := range tc.caps {
				q.SetPoolCap(p, c)
			}
			for i, s := range tc.steps {
				if s.admit != nil {
					if diff := cmp.Diff(s.want, q.Admit(*s.admit)); diff != "" {
						t.Fatalf("step %d admit %s (-want +got):\n%s", i, s.admit.Key, diff)
					}
					continue
				}
				if diff := cmp.Diff(s.wake, q.Release(s.release)); diff != "" {
					t.Fatalf("step %d release %s (-want +got):\n%s", i, s.release, diff)
				}
			}
		})
	}
}

func TestEnqueuedOlderRequestKeepsItsPlace(t *testing.T) {
	q := NewQueue(5)
	q.SetPoolCap("p", 1)
	// The older request is known (from the cache) but has not asked yet; the newer
	// one asks first and must not take the slot.
	q.Enqueue(item("older", "p", 1))
	d := q.Admit(item("newer", "p", 2))
	if diff := cmp.Diff(Decision{Position: 1, Others: []string{"older"}}, d); diff != "" {
		t.Fatalf("admit newer (-want +got):\n%s", diff)
	}
	if d := q.Admit(item("older", "p", 1)); !d.Admitted {
		t.Fatalf("older not admitted: %+v", d)
	}
	// Enqueue never demotes a running request.
	q.Enqueue(item("older", "p", 1))
	if total, _ := q.Running("p"); total != 1 {
		t.Fatalf("running = %d, want 1", total)
	}
}

func TestSeededRunningCountsAgainstCaps(t *testing.T) {
	q := NewQueue(2)
	q.SetPoolCap("p", 2)
	// After a restart two requests are already running: nothing else may start.
	q.MarkRunning("old1", "p")
	q.MarkRunning("old2", "p")
	if d := q.Admit(item("new", "p", 9)); d.Admitted {
		t.Fatalf("admitted over the cap after restart: %+v", d)
	}
	if wake := q.Release("old1"); !cmp.Equal(wake, []string{"new"}) {
		t.Fatalf("release woke %v, want [new]", wake)
	}
	if total, inPool := q.Running("p"); total != 2 || inPool != 2 {
		t.Fatalf("running = %d/%d, want 2/2", total, inPool)
	}
}

// TestCapsNeverExceeded drives random admissions and releases and checks the caps
// after every step, and that each pool admits in creation order.
func TestCapsNeverExceeded(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	q := NewQueue(3)
	caps := map[string]int{"p": 2, "q": 1, "r": 3}
	for p, c := range caps {
		q.SetPoolCap(p, c)
	}
	pools := []string{"p", "q", "r"}
	var running []string
	items := map[string]Item{}
	// FIFO: when an item is admitted, nothing older of its pool may still wait.
	checkFIFO := func(k string) {
		t.Helper()
		for _, w := range q.waiting {
			if w.Pool == items[k].Pool && before(w, items[k]) {
				t.Fatalf("%s admitted while older %s of pool %s waits", k, w.Key, w.Pool)
			}
		}
	}
	for i := 0; i < 300; i++ {
		it := item(fmt.Sprintf("k%03d", i), pools[rng.Intn(3)], i)
		items[it.Key] = it
		if q.Admit(it).Admitted {
			checkFIFO(it.Key)
			running = append(running, it.Key)
		}
		if len(running) > 0 && rng.Intn(2) == 0 {
			k := running[rng.Intn(len(running))]
			for _, w := range q.Release(k) {
				if d := q.Admit(items[w]); d.Admitted && !contains(running, w) {
					checkFIFO(w)
					running = append(running, w)
				}
			}
			running = remove(running, k)
		}
		total, _ := q.Running("")
		if total > 3 {
			t.Fatalf("global cap exceeded: %d", total)
		}
		for p, c := range caps {
			if _, n := q.Running(p); n > c {
				t.Fatalf("pool %s cap %d exceeded: %d", p, c, n)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

func contains(s []string, k string) bool {
	for _, x := range s {
		if x == k {
			return true
		}
	}
	return false
}

func remove(s []string, k string) []string {
	out := s[:0]
	for _, x := range s {
		if x != k {
			out = append(out, x)
		}
	}
	return out
}
