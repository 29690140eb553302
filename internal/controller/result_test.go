package controller

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/pipeline"
	"github.com/vizops/viz-operator/internal/requeststatus"
	"github.com/vizops/viz-operator/internal/requeststatus/statustest"
)

// TestPipelineResultStatus: reconcileResult records each result of the shared table
// as the table says (`kubectl viz render`'s TestRenderResultIsTheStatus runs the same
// table): status.codeGeneration and status.detection, CodeGenerated, Verified as the
// pipeline decided it (never verified again here), and the request's outcome.
func TestPipelineResultStatus(t *testing.T) {
	intake := requeststatus.Detection(statustest.Cases()["template, verified"].Result.Detection)
	for name, tc := range statustest.Cases() {
		t.Run(name, func(t *testing.T) {
			r := &VisualizationRequestReconciler{Executor: NewExecutor(), StatusBudgetBytes: DefaultStatusBudgetBytes, BackoffBase: time.Second, BackoffMax: time.Minute}
			vr := &vizv1.VisualizationRequest{}
			vr.Namespace, vr.Name, vr.UID, vr.Generation = "ns", "r", types.UID("uid-"+name), 1
			vr.Spec = vizv1.VisualizationRequestSpec{Prompt: "Bar chart of visits: A 3, B 5", MaxAttempts: 3, TimeoutSeconds: 30}
			vr.Status.Attempts, vr.Status.Phase, vr.Status.Detection = 1, vizv1.PhaseRunning, intake.DeepCopy()
			r.Executor.Submit(vr.UID, reqKey(vr), 1, func(context.Context) (pipeline.Result, error) { return tc.Result, tc.Err })
			for i := 0; ; i++ {
				if _, ok := r.Executor.Finished(vr.UID); ok {
					break
				}
				if i > 1e7 {
					t.Fatal("the job did not finish")
				}
				runtime.Gosched()
			}
			s := newScope(vr, time.Unix(1e9, 0))
			if _, err := r.reconcileResult(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			st := s.vr.Status
			w := tc.Want
			wantDetection := w.Detection
			if wantDetection == nil {
				wantDetection = intake
			}
			cond := func(t string) *statustest.Cond {
				c := meta.FindStatusCondition(st.Conditions, t)
				if c == nil {
					return nil
				}
				return &statustest.Cond{Status: c.Status, Reason: c.Reason, Message: c.Message}
			}
			type got struct {
				Detection      *vizv1.DetectionStatus
				CodeGeneration *vizv1.CodeGenerationStatus
				CodeGenerated  *statustest.Cond
				Verified       *statustest.Cond
			}
			if d := cmp.Diff(got{wantDetection, w.CodeGeneration, w.CodeGenerated, w.Verified},
				got{st.Detection, st.CodeGeneration, cond(vizv1.ConditionCodeGenerated), cond(vizv1.ConditionVerified)}); d != "" {
				t.Errorf("status (-want +got):\n%s", d)
			}
			ready := cond(vizv1.ConditionReady)
			switch {
			case w.Terminal:
				if st.Phase != vizv1.PhaseFailed || ready == nil || ready.Reason != w.CodeGenerated.Reason || ready.Message != w.CodeGenerated.Message {
					t.Errorf("phase %s, Ready %+v: want Failed with CodeGenerated's reason and message", st.Phase, ready)
				}
			case w.Skipped != "":
				if st.Phase != vizv1.PhaseSkipped || ready == nil || ready.Reason != vizv1.ReasonNotAVisualization || ready.Message != w.Skipped {
					t.Errorf("phase %s, Ready %+v: want Skipped with %q", st.Phase, ready, w.Skipped)
				}
			case tc.Err != nil:
				if st.Phase.Finished() || st.NextRetryTime == nil {
					t.Errorf("phase %s, next retry %v: want a retry", st.Phase, st.NextRetryTime)
				}
			case w.Verified != nil:
				if st.Phase != vizv1.PhaseSucceeded || ready == nil || ready.Status != metav1.ConditionTrue {
					t.Errorf("phase %s, Ready %+v: want Succeeded", st.Phase, ready)
				}
			}
		})
	}
}
