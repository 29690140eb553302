package state

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/vizops/viz-operator/internal/admission"
)

func TestPositionOutdated(t *testing.T) {
	for _, tc := range []struct {
		written, pos int
		want         bool
	}{
		{0, 7, true},      // never written
		{0, 500, true},    // never written, far back
		{3, 3, false},     // unchanged
		{3, 2, true},      // in the window: every change
		{11, 10, true},    // entering the window
		{10, 11, false},   // leaving it backwards, by less than double
		{500, 499, false}, // far back: a step is nothing new
		{500, 251, false},
		{500, 250, true}, // halved
		{40, 80, true},   // doubled (requests re-queued ahead)
		{40, 79, false},
	} {
		if got := PositionOutdated(tc.written, tc.pos); got != tc.want {
			t.Errorf("PositionOutdated(%d, %d) = %v, want %v", tc.written, tc.pos, got, tc.want)
		}
	}
}

// TestPositionWritesPerCompletion drains a queue of 2,000 behind a cap of 1, one
// completion between two position refreshes (the worst case: completions slower than
// the refresh interval), and counts the position writes: the refresher's wakes whose
// reconcile finds the written position outdated. With buckets (tens, hundreds, ...)
// every completion cost about one write per bucket boundary on top of the window's:
// about 29 each here.
func TestPositionWritesPerCompletion(t *testing.T) {
	const waiting = 2000
	e := newFakeExecutor()
	m := New(admission.NewQueue(1), e, nil)
	created := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	ids := map[string]string{} // key -> id
	item := func(i int) admission.Item {
		key := fmt.Sprintf("ns/req-%05d", i)
		ids[key] = fmt.Sprintf("uid-%05d", i)
		return admission.Item{ID: ids[key], Key: key, Pool: "ns/pool", Created: created.Add(time.Duration(i) * time.Second)}
	}
	running := item(0).ID
	if !m.Admit(item(0)) {
		t.Fatal("the first request was not admitted")
	}
	// Intake: each request is written once, with its place then.
	for i := 1; i <= waiting; i++ {
		it := item(i)
		m.Admit(it)
		m.Settle(types.UID(it.ID), Written{QueuePosition: m.Position(types.UID(it.ID))}, Before{})
	}
	writes, completions := 0, 0
	for m.Queue.Depth() > 0 {
		admitted := m.Queue.Release(running)
		if len(admitted) != 1 {
			t.Fatalf("a completion admitted %v", admitted)
		}
		running = admitted[0].ID
		m.Settle(types.UID(running), Written{Admitted: true}, Before{Known: true, Admitted: true})
		completions++
		e.routine = nil
		m.RefreshPositions()
		// Each wake is a reconcile that writes the position when it is outdated.
		for _, key := range e.routine {
			id := ids[key]
			prev, _ := m.ReportedPosition(types.UID(id))
			if pos := m.Position(types.UID(id)); pos > 0 && PositionOutdated(prev, pos) {
				writes++
				m.Settle(types.UID(id), Written{QueuePosition: pos}, Before{Known: true})
			}
		}
		// What kubectl shows: exact in the window, within a factor of two further back.
		for id, pos := range m.Queue.Positions() {
			shown, _ := m.ReportedPosition(types.UID(id))
			if pos <= PositionWindow && shown != pos {
				t.Fatalf("after %d completions a request at place %d shows %d", completions, pos, shown)
			}
			if shown < pos || shown >= 2*pos {
				t.Fatalf("after %d completions a request at place %d shows %d (not within a factor of two)", completions, pos, shown)
			}
		}
	}
	perCompletion := float64(writes) / float64(completions)
	t.Logf("%d position writes over %d completions: %.1f each", writes, completions, perCompletion)
	// The window's requests move on every completion (PositionWindow-1 of them, and
	// one enters); further back a request writes about log2(P/10) times in its wait.
	if perCompletion > 18 {
		t.Errorf("%.1f position writes per completion, want at most 18", perCompletion)
	}
}
