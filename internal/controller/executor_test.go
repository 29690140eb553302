package controller

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// TestWakesGoFirst: behind a backlog of new requests, the request an ended execution
// (or an admission) wakes is reconciled first, so the slots turn over while thousands
// of new requests wait to be read.
func TestWakesGoFirst(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("wakes-go-first")
	defer q.ShutDown()
	for i := range 100 {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("new-%d", i)}})
	}
	// A routine wake (a queue position to refresh) waits its turn; an ended
	// execution's goes first.
	routine := wakeEvent(types.NamespacedName{Namespace: "ns", Name: "position"})
	routine.Object.SetAnnotations(map[string]string{routineWake: "true"})
	wakeHandler.Generic(context.Background(), routine, q)
	finished := &vizv1.VisualizationRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "finished"}}
	wakeHandler.Generic(context.Background(), event.TypedGenericEvent[client.Object]{Object: finished}, q)
	got, _ := q.Get()
	q.Done(got)
	if got.Name != "finished" {
		t.Errorf("the first request out of the queue is %s, want the woken one", got.Name)
	}
	for i := 0; i < 100; i++ {
		next, _ := q.Get()
		q.Done(next)
		if next.Name == "position" {
			t.Fatalf("the routine wake came out %d-th, ahead of requests queued before it", i+2)
		}
	}
}
