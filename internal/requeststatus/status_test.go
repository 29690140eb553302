package requeststatus_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/requeststatus"
	"github.com/vizops/viz-operator/internal/requeststatus/statustest"
)

// TestOf: each result of the shared table becomes its status.
func TestOf(t *testing.T) {
	for name, tc := range statustest.Cases() {
		t.Run(name, func(t *testing.T) {
			st := requeststatus.Of(tc.Result, tc.Err)
			if d := cmp.Diff(tc.Want, Want(st)); d != "" {
				t.Errorf("status (-want +got):\n%s", d)
			}
		})
	}
}

// Want reads st back as the table's Want.
func Want(st requeststatus.Status) statustest.Want {
	w := statustest.Want{Detection: st.Detection, CodeGeneration: st.CodeGeneration, Skipped: st.NotAVisualization}
	cond := func(c *requeststatus.Condition) *statustest.Cond {
		if c == nil {
			return nil
		}
		return &statustest.Cond{Status: c.Status, Reason: c.Reason, Message: c.Message}
	}
	w.CodeGenerated = cond(st.CodeGenerated)
	if st.Failed != nil {
		w.CodeGenerated, w.Terminal = cond(st.Failed), true
	}
	w.Verified = cond(st.Verified)
	return w
}
