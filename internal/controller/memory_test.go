package controller

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/admission"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/pipeline"
)

// settle decides from the status a pass wrote, which can be a stale copy when the pass
// wrote nothing. These cases pin what memory must do then: a slot under a live job is
// never freed by a stale copy (it would let a second request run beside it).
func TestSettle(t *testing.T) {
	now := time.Now()
	queued := func(vr *vizv1.VisualizationRequest) {
		vr.Status.Phase = vizv1.PhaseQueued
		vr.Status.Conditions = []metav1.Condition{{Type: vizv1.ConditionAdmitted, Status: metav1.ConditionFalse, Reason: vizv1.ReasonQueued}}
	}
	tests := map[string]struct {
		job          string // "", "running", "done"
		status       func(*vizv1.VisualizationRequest)
		keepPlace    bool
		wantAdmitted bool
		wantKnown    bool
		wantNextIn   bool // the next request was admitted in its place
		wantLater    bool // ... once the cancelled job has wound down
	}{
		"a stale Queued copy under a running job keeps the slot": {
			job: "running", status: queued, wantAdmitted: true, wantKnown: true,
		},
		"a stale Queued copy under a finished, unrecorded job keeps the slot": {
			job: "done", status: queued, wantAdmitted: true, wantKnown: true,
		},
		"no job and not admitted in status: the slot goes to the next": {
			status: queued, wantNextIn: true,
		},
		"a pool not live yet: the slot goes back, the place stays": {
			status: queued, keepPlace: true, wantKnown: true,
		},
		"finished: everything goes, even under a running job": {
			job: "running",
			status: func(vr *vizv1.VisualizationRequest) {
				vr.Status.Phase = vizv1.PhaseFailed
			},
			wantNextIn: true, wantLater: true, // freed once the cancelled job has ended
		},
		"in backoff: leaves the queue": {
			status: func(vr *vizv1.VisualizationRequest) {
				next := metav1.NewTime(now.Add(time.Minute))
				vr.Status.NextRetryTime = &next
			},
			wantNextIn: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := &VisualizationRequestReconciler{Queue: admission.NewQueue(1), Executor: NewExecutor(), tracker: newTracker()}
			vr := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "uid-a"}}
			r.Queue.SetPoolCap("ns/default", 1)
			r.Queue.Enqueue(queueItem(vr))
			next := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b", UID: "uid-b",
				CreationTimestamp: metav1.NewTime(now.Add(time.Second))}}
			r.Queue.Enqueue(queueItem(next))
			block := make(chan struct{})
			defer close(block)
			switch tc.job {
			case "running":
				r.Executor.Submit(vr.UID, types.NamespacedName{Namespace: "ns", Name: "a"}, 1, func(ctx context.Context) (pipeline.Result, error) {
					select {
					case <-block:
					case <-ctx.Done():
					}
					return pipeline.Result{}, nil
				})
			case "done":
				r.Executor.Submit(vr.UID, types.NamespacedName{Namespace: "ns", Name: "a"}, 1, func(context.Context) (pipeline.Result, error) { return pipeline.Result{}, nil })
				for i := 0; i < 1000; i++ {
					if _, ok := r.Executor.Finished(vr.UID); ok {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			s := newScope(vr, now)
			tc.status(s.vr)
			s.keepPlace = tc.keepPlace
			r.settle(s, memoryBefore{known: true, admitted: true}, nil)
			if tc.wantLater {
				for i := 0; i < 1000 && !r.Queue.Admitted("uid-b"); i++ {
					time.Sleep(time.Millisecond)
				}
			}
			if got := r.Queue.Admitted("uid-a"); got != tc.wantAdmitted {
				t.Errorf("admitted = %v, want %v", got, tc.wantAdmitted)
			}
			if got := r.Queue.Known("uid-a"); got != tc.wantKnown {
				t.Errorf("known = %v, want %v", got, tc.wantKnown)
			}
			if got := r.Queue.Admitted("uid-b"); got != tc.wantNextIn {
				t.Errorf("next admitted = %v, want %v", got, tc.wantNextIn)
			}
		})
	}
}

// TestTrackerForgetsDetections: a request's detection is kept from intake until the
// request finishes, is deleted, or its name holds a new object; never after.
func TestTrackerForgetsDetections(t *testing.T) {
	d := detect.Result{Visualization: true, Source: detect.SourceKeywords}
	key := types.NamespacedName{Namespace: "ns", Name: "a"}
	tests := map[string]func(tr *tracker){
		"finished": func(tr *tracker) { tr.markFinished("u1") },
		"deleted":  func(tr *tracker) { tr.gone(key) },
		"replaced": func(tr *tracker) { tr.see(key, "u2") },
	}
	for name, end := range tests {
		t.Run(name, func(t *testing.T) {
			tr := newTracker()
			tr.see(key, "u1")
			tr.setDetection("u1", d)
			if _, ok := tr.detection("u1"); !ok {
				t.Fatal("the detection was not kept")
			}
			end(tr)
			if _, ok := tr.detection("u1"); ok {
				t.Error("the detection outlived the request")
			}
			tr.setDetection("u1", d)
			if _, ok := tr.detection("u1"); ok && name == "finished" {
				t.Error("a finished request's detection was kept")
			}
		})
	}
}
