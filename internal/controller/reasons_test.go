package controller

import (
	"testing"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/sandbox"
)

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
