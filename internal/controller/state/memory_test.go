package state

import (
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/detect"
)

// fakeExecutor stands in for the executor: jobs are a set, a cancelled job winds down
// when the test says so, and wakes are recorded.
type fakeExecutor struct {
	mu      sync.Mutex
	jobs    map[types.UID]chan struct{}
	woken   []string
	routine []string
}

func newFakeExecutor() *fakeExecutor { return &fakeExecutor{jobs: map[types.UID]chan struct{}{}} }

func (f *fakeExecutor) start(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[uid] = make(chan struct{})
}

// windDown ends uid's cancelled job.
func (f *fakeExecutor) windDown(uid types.UID) {
	f.mu.Lock()
	ch := f.jobs[uid]
	delete(f.jobs, uid)
	f.mu.Unlock()
	close(ch)
}

func (f *fakeExecutor) Running(uid types.UID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.jobs[uid]
	return ok
}

func (f *fakeExecutor) Cancel(uid types.UID) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.jobs[uid]
	if !ok {
		return nil
	}
	return ch
}

func (f *fakeExecutor) Wake(key types.NamespacedName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.woken = append(f.woken, key.String())
}

func (f *fakeExecutor) WakeRoutine(key types.NamespacedName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routine = append(f.routine, key.String())
}

func (f *fakeExecutor) wokenKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.woken)
}

var t0 = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)

func item(name string, sec int) admission.Item {
	return admission.Item{ID: "uid-" + name, Key: "ns/" + name, Pool: "ns/default", Created: t0.Add(time.Duration(sec) * time.Second)}
}

// twoInCapOne is a memory with a cap of 1: a holds the slot, b waits behind it.
func twoInCapOne(t *testing.T) (*Memory, *fakeExecutor) {
	t.Helper()
	e := newFakeExecutor()
	m := New(admission.NewQueue(1), e, nil)
	m.SetPoolCap("ns/default", 1)
	if !m.Admit(item("a", 0)) {
		t.Fatal("a was not admitted into an empty pool")
	}
	if m.Admit(item("b", 1)) {
		t.Fatal("b was admitted beside a at a cap of 1")
	}
	return m, e
}

// eventually waits for cond, which a goroutine of Drop makes true.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not met")
}

// Settle decides from the status a pass wrote, which can be a stale copy when the
// pass wrote nothing. These cases pin what memory must do then: a slot under a live
// job is never freed by a stale copy (it would let a second request run beside it).
func TestSettle(t *testing.T) {
	queued := Written{QueuePosition: 1}
	tests := map[string]struct {
		job          bool
		written      Written
		before       Before
		wantAdmitted bool
		wantKnown    bool
		wantNextIn   bool // the next request was admitted in a's place
		wantLater    bool // ... once a's cancelled job has wound down
	}{
		"a stale Queued copy under a job keeps the slot": {
			job: true, written: queued, before: Before{Known: true, Admitted: true}, wantAdmitted: true, wantKnown: true,
		},
		"no job and not admitted in status: the slot goes to the next": {
			written: queued, before: Before{Known: true, Admitted: true}, wantNextIn: true,
		},
		"Admitted in status: the slot stays": {
			written: Written{Admitted: true}, before: Before{Known: true, Admitted: true}, wantAdmitted: true, wantKnown: true,
		},
		"a pool not live yet: the slot goes back, the place stays": {
			written: Written{KeepPlace: true}, before: Before{Known: true, Admitted: true}, wantKnown: true,
		},
		"a step failed in the pass that admitted it: the slot goes back, the place stays": {
			written: Written{Failed: true}, before: Before{Known: true}, wantKnown: true,
		},
		"a step failed after an earlier admission: the slot goes to the next": {
			written: Written{Failed: true}, before: Before{Known: true, Admitted: true}, wantNextIn: true,
		},
		"finished: everything goes, even under a job": {
			job: true, written: Written{Finished: true}, wantNextIn: true, wantLater: true,
		},
		"in backoff: leaves the queue": {
			written: Written{InBackoff: true}, before: Before{Known: true, Admitted: true}, wantNextIn: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m, e := twoInCapOne(t)
			if tc.job {
				e.start("uid-a")
			}
			m.Settle("uid-a", tc.written, tc.before)
			if tc.wantLater {
				if m.Queue.Admitted("uid-b") {
					t.Fatal("b was admitted before a's cancelled job wound down")
				}
				e.windDown("uid-a")
				eventually(t, func() bool { return m.Queue.Admitted("uid-b") })
			}
			if got := m.Queue.Admitted("uid-a"); got != tc.wantAdmitted {
				t.Errorf("a admitted = %v, want %v", got, tc.wantAdmitted)
			}
			if got := m.Queue.Known("uid-a"); got != tc.wantKnown {
				t.Errorf("a known = %v, want %v", got, tc.wantKnown)
			}
			if got := m.Queue.Admitted("uid-b"); got != tc.wantNextIn {
				t.Errorf("b admitted = %v, want %v", got, tc.wantNextIn)
			}
			if tc.wantNextIn && !slices.Contains(e.wokenKeys(), "ns/b") {
				t.Errorf("b was admitted but not woken (woken: %v)", e.wokenKeys())
			}
			if got := m.Finished("uid-a"); got != tc.written.Finished {
				t.Errorf("Finished(a) = %v, want %v", got, tc.written.Finished)
			}
		})
	}
}

// A pass whose status write fails undoes what it did to the queue.
func TestRollback(t *testing.T) {
	t.Run("an admission is undone, the place kept at the head", func(t *testing.T) {
		e := newFakeExecutor()
		m := New(admission.NewQueue(1), e, nil)
		before := m.Remember("uid-a")
		if !m.Admit(item("a", 0)) {
			t.Fatal("a not admitted")
		}
		m.Rollback("uid-a", before)
		if m.Queue.Admitted("uid-a") || m.Queue.Known("uid-a") {
			t.Fatalf("a new request's entry survived a failed write: admitted %v known %v", m.Queue.Admitted("uid-a"), m.Queue.Known("uid-a"))
		}
	})
	t.Run("a waiting request admitted in a failed pass keeps its place", func(t *testing.T) {
		m, _ := twoInCapOne(t)
		m.Release("uid-a") // b is admitted
		before := Before{Known: true}
		m.Rollback("uid-b", before)
		if m.Queue.Admitted("uid-b") || !m.Queue.Known("uid-b") || m.Position("uid-b") != 1 {
			t.Fatalf("b: admitted %v known %v position %d, want waiting at the head", m.Queue.Admitted("uid-b"), m.Queue.Known("uid-b"), m.Position("uid-b"))
		}
	})
	t.Run("what was there before the pass stays", func(t *testing.T) {
		m, _ := twoInCapOne(t)
		m.Rollback("uid-a", Before{Known: true, Admitted: true})
		if !m.Queue.Admitted("uid-a") {
			t.Fatal("a rollback took a slot held before the pass")
		}
	})
}

// A name re-used by a new object, or deleted, frees what the old object held.
func TestSeeAndGone(t *testing.T) {
	key := types.NamespacedName{Namespace: "ns", Name: "a"}
	t.Run("a new UID under a name stops the old one's job, then frees its slot", func(t *testing.T) {
		m, e := twoInCapOne(t)
		m.See(key, "uid-a")
		e.start("uid-a")
		if old := m.See(key, "uid-a2"); old != "uid-a" {
			t.Fatalf("See returned %q, want uid-a", old)
		}
		if m.Queue.Admitted("uid-b") {
			t.Fatal("b admitted while a's cancelled job still runs")
		}
		e.windDown("uid-a")
		eventually(t, func() bool { return m.Queue.Admitted("uid-b") })
	})
	t.Run("the same UID again is nothing new", func(t *testing.T) {
		m, _ := twoInCapOne(t)
		m.See(key, "uid-a")
		if old := m.See(key, "uid-a"); old != "" {
			t.Fatalf("See returned %q for the same UID", old)
		}
		if !m.Queue.Admitted("uid-a") {
			t.Fatal("a lost its slot")
		}
	})
	t.Run("a deleted request frees its slot and is forgotten", func(t *testing.T) {
		m, _ := twoInCapOne(t)
		m.See(key, "uid-a")
		m.Finish("uid-a")
		m.Gone(key)
		if m.Finished("uid-a") {
			t.Fatal("a deleted request is still remembered as finished")
		}
		if !m.Queue.Admitted("uid-b") {
			t.Fatal("b not admitted after a was deleted")
		}
	})
	t.Run("a re-used name forgets the old one's written position", func(t *testing.T) {
		m, _ := twoInCapOne(t)
		bKey := types.NamespacedName{Namespace: "ns", Name: "b"}
		m.See(bKey, "uid-b")
		m.Settle("uid-b", Written{QueuePosition: 1}, Before{Known: true})
		m.See(bKey, "uid-b2")
		if _, ok := m.ReportedPosition("uid-b"); ok {
			t.Fatal("the old UID's written position is still remembered")
		}
	})
}

// Admit lets a request with a job here run without asking the queue again (a restart
// re-seeds slots from status, and a job outlives the queue's view of it).
func TestAdmitWithAJob(t *testing.T) {
	m, e := twoInCapOne(t)
	e.start("uid-c")
	if !m.Admit(item("c", 2)) {
		t.Fatal("a request with a job here was made to wait")
	}
	if m.Queue.Known("uid-c") {
		t.Fatal("a request with a job took a queue entry")
	}
}

// Seed restores slots and order from live state: the caps hold across a restart.
func TestSeed(t *testing.T) {
	e := newFakeExecutor()
	m := New(admission.NewQueue(1), e, nil)
	m.SetPoolCap("ns/default", 1)
	seen := map[types.NamespacedName]types.UID{{Namespace: "ns", Name: "a"}: "uid-a"}
	m.Seed(seen, []admission.Item{item("a", 5)}, []admission.Item{item("b", 1), item("c", 2)})
	if !m.Queue.Admitted("uid-a") {
		t.Fatal("the running request lost its slot")
	}
	m.RefreshPositions()
	if m.Position("uid-b") != 1 || m.Position("uid-c") != 2 {
		t.Fatalf("positions b=%d c=%d, want 1 and 2", m.Position("uid-b"), m.Position("uid-c"))
	}
	if m.Admit(item("d", 0)) {
		t.Fatal("a new request was admitted past the seeded cap")
	}
	if old := m.See(types.NamespacedName{Namespace: "ns", Name: "a"}, "uid-a2"); old != "uid-a" {
		t.Fatalf("the seeded name was not remembered: See returned %q", old)
	}
}

// The gauge callback follows every change of the queue.
func TestChangedCallback(t *testing.T) {
	calls := 0
	m := New(admission.NewQueue(1), newFakeExecutor(), func(*admission.Queue) { calls++ })
	m.Admit(item("a", 0))
	m.Release("uid-a")
	if calls < 2 {
		t.Fatalf("changed called %d times over an admission and a release", calls)
	}
}

func TestParseKey(t *testing.T) {
	for in, want := range map[string]types.NamespacedName{
		"ns/a":  {Namespace: "ns", Name: "a"},
		"a":     {Name: "a"},
		"ns/a/": {Namespace: "ns", Name: "a/"},
	} {
		if got := ParseKey(in); got != want {
			t.Errorf("ParseKey(%q) = %v, want %v", in, got, want)
		}
	}
}

// A detection is kept while the request is unfinished, and never for a finished,
// deleted or replaced one.
func TestDetections(t *testing.T) {
	key := types.NamespacedName{Namespace: "ns", Name: "a"}
	d := detect.Result{Visualization: true, ChartType: "bar"}
	m := New(admission.NewQueue(1), newFakeExecutor(), nil)
	m.See(key, "uid-a")
	m.SetDetection("uid-a", d)
	if got, ok := m.Detection("uid-a"); !ok || got.ChartType != "bar" {
		t.Fatalf("Detection = %+v, %v", got, ok)
	}
	m.See(key, "uid-a2")
	if _, ok := m.Detection("uid-a"); ok {
		t.Fatal("a replaced request's detection is kept")
	}
	m.SetDetection("uid-a2", d)
	m.Finish("uid-a2")
	if _, ok := m.Detection("uid-a2"); ok {
		t.Fatal("a finished request's detection is kept")
	}
	m.SetDetection("uid-a2", d) // a late pass over a stale copy
	if _, ok := m.Detection("uid-a2"); ok {
		t.Fatal("a detection was remembered for a request written finished")
	}
	m.See(types.NamespacedName{Namespace: "ns", Name: "b"}, "uid-b")
	m.SetDetection("uid-b", d)
	m.Gone(types.NamespacedName{Namespace: "ns", Name: "b"})
	if _, ok := m.Detection("uid-b"); ok {
		t.Fatal("a deleted request's detection is kept")
	}
}
