package admission

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func item(id, pool string, sec int) Item {
	return Item{ID: id, Key: "ns/" + id, Pool: pool, Created: t0.Add(time.Duration(sec) * time.Second)}
}

func ids(items []Item) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

func TestQueue(t *testing.T) {
	type step struct {
		enqueue  *Item
		release  string
		unadmit  string
		admitted []string // ids admitted by this step
		position map[string]int
	}
	tests := map[string]struct {
		global int
		caps   map[string]int
		steps  []step
	}{
		"pool cap holds and frees in order": {
			global: 10, caps: map[string]int{"p": 1},
			steps: []step{
				{enqueue: ptr(item("a", "p", 1)), admitted: []string{"a"}},
				{enqueue: ptr(item("c", "p", 3)), admitted: []string{}},
				{enqueue: ptr(item("b", "p", 2)), admitted: []string{}, position: map[string]int{"b": 1, "c": 2}},
				{release: "a", admitted: []string{"b"}, position: map[string]int{"c": 1}},
				{release: "b", admitted: []string{"c"}},
			},
		},
		"global cap across pools: oldest head first": {
			global: 1, caps: map[string]int{"p": 5, "q": 5},
			steps: []step{
				{enqueue: ptr(item("a", "p", 1)), admitted: []string{"a"}},
				{enqueue: ptr(item("y", "q", 3)), admitted: []string{}},
				{enqueue: ptr(item("x", "p", 2)), admitted: []string{}},
				{release: "a", admitted: []string{"x"}},
				{release: "x", admitted: []string{"y"}},
			},
		},
		"a full pool does not block another pool": {
			global: 3, caps: map[string]int{"p": 1, "q": 2},
			steps: []step{
				{enqueue: ptr(item("a", "p", 1)), admitted: []string{"a"}},
				{enqueue: ptr(item("b", "p", 2)), admitted: []string{}},
				{enqueue: ptr(item("c", "q", 3)), admitted: []string{"c"}},
			},
		},
		"ties in creation time go by arrival, not by name": {
			global: 1, caps: map[string]int{"p": 1},
			steps: []step{
				{enqueue: ptr(item("run", "p", 0)), admitted: []string{"run"}},
				{enqueue: ptr(item("zz", "p", 1)), admitted: []string{}},
				{enqueue: ptr(item("aa", "p", 1)), admitted: []string{}, position: map[string]int{"zz": 1, "aa": 2}},
				{release: "run", admitted: []string{"zz"}},
			},
		},
		"releasing a waiting item moves the ones behind and admits nobody": {
			global: 10, caps: map[string]int{"p": 1},
			steps: []step{
				{enqueue: ptr(item("a", "p", 1)), admitted: []string{"a"}},
				{enqueue: ptr(item("b", "p", 2)), admitted: []string{}},
				{enqueue: ptr(item("c", "p", 3)), admitted: []string{}},
				{release: "b", admitted: []string{}, position: map[string]int{"c": 1}},
			},
		},
		"release is idempotent": {
			global: 2, caps: map[string]int{"p": 2},
			steps: []step{
				{enqueue: ptr(item("a", "p", 1)), admitted: []string{"a"}},
				{release: "a", admitted: []string{}},
				{release: "a", admitted: []string{}},
				{release: "never-seen", admitted: []string{}},
				{enqueue: ptr(item("b", "p", 2)), admitted: []string{"b"}},
				{enqueue: ptr(item("c", "p", 3)), admitted: []string{"c"}},
				{enqueue: ptr(item("d", "p", 4)), admitted: []string{}},
			},
		},
		"unadmit puts the item back at its place without admitting another": {
			global: 1, caps: map[string]int{"p": 1},
			steps: []step{
				{enqueue: ptr(item("a", "p", 1)), admitted: []string{"a"}},
				{enqueue: ptr(item("b", "p", 2)), admitted: []string{}},
				{unadmit: "a", position: map[string]int{"a": 1, "b": 2}},
				{enqueue: ptr(item("a", "p", 1)), admitted: []string{"a"}},
			},
		},
		"enqueue of a running item is a no-op": {
			global: 1, caps: map[string]int{"p": 1},
			steps: []step{
				{enqueue: ptr(item("a", "p", 1)), admitted: []string{"a"}},
				{enqueue: ptr(item("a", "p", 1)), admitted: []string{}},
				{enqueue: ptr(item("b", "p", 2)), admitted: []string{}},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q := NewQueue(tc.global)
			for p, c := range tc.caps {
				q.SetPoolCap(p, c)
			}
			for i, s := range tc.steps {
				var got []Item
				switch {
				case s.enqueue != nil:
					got = q.Enqueue(*s.enqueue)
				case s.release != "":
					got = q.Release(s.release)
				case s.unadmit != "":
					q.Unadmit(s.unadmit)
				}
				if s.admitted != nil {
					if diff := cmp.Diff(s.admitted, ids(got)); diff != "" {
						t.Fatalf("step %d admitted (-want +got):\n%s", i, diff)
					}
				}
				if s.position != nil {
					all := q.Positions()
					for id, want := range s.position {
						if all[id] != want || q.Position(id) != want {
							t.Fatalf("step %d: position of %s = %d (Position %d), want %d", i, id, all[id], q.Position(id), want)
						}
					}
				}
			}
		})
	}
}

func TestRaisedPoolCapAdmits(t *testing.T) {
	q := NewQueue(10)
	q.SetPoolCap("p", 1)
	q.Enqueue(item("a", "p", 1))
	q.Enqueue(item("b", "p", 2))
	q.Enqueue(item("c", "p", 3))
	if diff := cmp.Diff([]string{"b", "c"}, ids(q.SetPoolCap("p", 3))); diff != "" {
		t.Fatalf("raising the cap admitted (-want +got):\n%s", diff)
	}
	if got := q.SetPoolCap("p", 3); got != nil {
		t.Fatalf("an unchanged cap admitted %v", ids(got))
	}
}

func TestMarkRunningHoldsTheCap(t *testing.T) {
	q := NewQueue(10)
	q.SetPoolCap("p", 2)
	q.MarkRunning(item("a", "p", 1))
	q.MarkRunning(item("b", "p", 2))
	q.MarkRunning(item("b", "p", 2)) // twice: counted once
	if got := q.Enqueue(item("c", "p", 0)); len(got) != 0 {
		t.Fatalf("admitted %v over a cap filled by seeded requests", ids(got))
	}
	if total, in := q.Running("p"); total != 2 || in != 2 {
		t.Fatalf("running = %d/%d, want 2/2", total, in)
	}
	if diff := cmp.Diff([]string{"c"}, ids(q.Release("a"))); diff != "" {
		t.Fatal(diff)
	}
}

// TestRandomAgainstModel drives the queue with random operations and checks, after
// each, the caps and FIFO order against a simple model (sort everything, every time).
func TestRandomAgainstModel(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		global := 1 + rng.Intn(4)
		caps := map[string]int{"p": 1 + rng.Intn(3), "q": 1 + rng.Intn(3)}
		q := NewQueue(global)
		for p, c := range caps {
			q.SetPoolCap(p, c)
		}
		type st struct {
			it      Item
			arrival int
		}
		waiting := map[string]st{}
		running := map[string]Item{}
		arrival := 0
		for op := 0; op < 400; op++ {
			var admitted []Item
			if rng.Intn(3) > 0 || len(running) == 0 {
				id := fmt.Sprintf("r%d", op)
				it := item(id, []string{"p", "q"}[rng.Intn(2)], rng.Intn(5))
				arrival++
				waiting[id] = st{it, arrival}
				admitted = q.Enqueue(it)
			} else {
				var keys []string
				for k := range running {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				k := keys[rng.Intn(len(keys))]
				delete(running, k)
				admitted = q.Release(k)
			}
			for _, it := range admitted {
				w, ok := waiting[it.ID]
				if !ok {
					t.Fatalf("seed %d op %d: admitted %s, which was not waiting", seed, op, it.ID)
				}
				// Nobody older in the same pool may still wait.
				for _, o := range waiting {
					if o.it.Pool == it.Pool && o.it.ID != it.ID &&
						(o.it.Created.Before(it.Created) || (o.it.Created.Equal(it.Created) && o.arrival < w.arrival)) {
						t.Fatalf("seed %d op %d: %s admitted before older %s", seed, op, it.ID, o.it.ID)
					}
				}
				delete(waiting, it.ID)
				running[it.ID] = it
			}
			per := map[string]int{}
			for _, it := range running {
				per[it.Pool]++
			}
			if len(running) > global {
				t.Fatalf("seed %d op %d: %d running over the global cap %d", seed, op, len(running), global)
			}
			for p, n := range per {
				if n > caps[p] {
					t.Fatalf("seed %d op %d: pool %s runs %d over its cap %d", seed, op, p, n, caps[p])
				}
			}
			// Work conservation: a waiting item whose pool and the operator have room
			// must not be left waiting.
			for _, w := range waiting {
				if len(running) < global && per[w.it.Pool] < caps[w.it.Pool] {
					t.Fatalf("seed %d op %d: %s waits although there is room", seed, op, w.it.ID)
				}
			}
			if q.Depth() != len(waiting) {
				t.Fatalf("seed %d op %d: depth %d, model %d", seed, op, q.Depth(), len(waiting))
			}
		}
	}
}

func BenchmarkDrain(b *testing.B) {
	for _, n := range []int{50, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				q := NewQueue(4)
				q.SetPoolCap("p", 4)
				var running []string
				for j := 0; j < n; j++ {
					running = append(running, ids(q.Enqueue(item(fmt.Sprint(j), "p", j%7)))...)
				}
				for len(running) > 0 {
					id := running[0]
					running = running[1:]
					for _, it := range q.Release(id) {
						running = append(running, it.ID)
					}
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
