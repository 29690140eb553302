package controller

import (
	"testing"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// TestVerifiedReason: every reason a chartdata.Verdict can carry is mapped to a reason
// of the Verified condition, and to the same word: `kubectl viz render --local` prints
// the verdict's own reason, which must read as the condition does.
func TestVerifiedReason(t *testing.T) {
	for _, r := range chartdata.Reasons {
		got, ok := verifiedReasons[r]
		if !ok {
			t.Errorf("chartdata.%s has no Verified reason: map it in verifiedReasons", r)
			continue
		}
		if got != string(r) || verifiedReason(r) != got {
			t.Errorf("verifiedReason(%s) = %q, want the API's reason %q", r, verifiedReason(r), string(r))
		}
	}
	if len(verifiedReasons) != len(chartdata.Reasons) {
		t.Errorf("verifiedReasons maps %d reasons, chartdata has %d", len(verifiedReasons), len(chartdata.Reasons))
	}
}

// TestExecErrorNames: the names capability packages report with that the controller
// uses as condition reasons as they are (a Timeout is told by Result.TimedOut) are the
// API's reasons.
func TestExecErrorNames(t *testing.T) {
	for got, want := range map[string]string{
		sandbox.ErrNameOutputLimitExceeded: vizv1.ReasonOutputLimitExceeded,
		codegen.ReasonDataNotAccounted:     vizv1.ReasonDataNotAccounted,
		codegen.ReasonDataNotUnderstood:    vizv1.ReasonDataNotUnderstood,
	} {
		if got != want {
			t.Errorf("capability name %q, API reason %q: they must agree", got, want)
		}
	}
}
