package controller

import (
	"encoding/json"
	"math/rand"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// finishedPair is a request as read (Running) and as the pass that finishes it
// writes it: a 24 KiB PNG inline, the conditions and execution of a real run.
func finishedPair() (before, after *vizv1.VisualizationRequest) {
	now := metav1.NewTime(time.Now())
	before = &vizv1.VisualizationRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "warm-001", Namespace: "bench", ResourceVersion: "42", UID: "u", Generation: 1},
		Spec:       vizv1.VisualizationRequestSpec{SandboxPoolRef: vizv1.SandboxPoolReference{Name: "bench"}},
	}
	before.Spec.Code = "import matplotlib.pyplot as plt\nplt.bar([\"a\", \"b\"], [1, 2])\nplt.savefig(\"figure_1.png\")\n"
	for _, c := range []string{vizv1.ConditionDetected, vizv1.ConditionAdmitted, vizv1.ConditionExecuted, vizv1.ConditionReady} {
		before.Status.Conditions = append(before.Status.Conditions, metav1.Condition{Type: c, Status: metav1.ConditionTrue, Reason: "R", Message: "a message of some length, as the controller writes", LastTransitionTime: now, ObservedGeneration: 1})
	}
	before.Status.Phase = vizv1.PhaseRunning
	before.Status.Attempts = 1
	before.Status.Execution = &vizv1.ExecutionStatus{Backend: "Local", StartTime: &now}
	after = before.DeepCopy()
	png := make([]byte, 24<<10)
	rand.New(rand.NewSource(1)).Read(png)
	after.Status.Phase = vizv1.PhaseSucceeded
	after.Status.CompletionTime = &now
	after.Status.Execution.SandboxID = "local-1"
	after.Status.Execution.DurationMillis = 300
	after.Status.Artifacts = []vizv1.ArtifactStatus{{Name: "figure_1.png", Format: "png", MIMEType: "image/png", SizeBytes: int64(len(png)), SHA256: "abc", Data: png}}
	return before, after
}

// BenchmarkStatusWriteBody compares what the manager computes to send the status write
// that finishes a request: a JSON merge patch of the whole object under the optimistic
// lock (both objects serialized, parsed and diffed) against an update's body (the
// object serialized once).
func BenchmarkStatusWriteBody(b *testing.B) {
	before, after := finishedPair()
	b.Run("merge-patch", func(b *testing.B) {
		p := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
		for i := 0; i < b.N; i++ {
			if _, err := p.Data(after); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("update", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := json.Marshal(after); err != nil {
				b.Fatal(err)
			}
		}
	})
}
