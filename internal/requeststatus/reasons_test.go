package requeststatus

import (
	"testing"

	"github.com/vizops/viz-operator/internal/chartdata"
)

// TestVerifiedReason: every reason a chartdata.Verdict can carry is mapped to a reason
// of the Verified condition, and to the same word.
func TestVerifiedReason(t *testing.T) {
	for _, r := range chartdata.Reasons {
		got, ok := verifiedReasons[r]
		if !ok {
			t.Errorf("chartdata.%s has no Verified reason: map it in verifiedReasons", r)
			continue
		}
		if got != string(r) || VerifiedReason(r) != got {
			t.Errorf("VerifiedReason(%s) = %q, want the API's reason %q", r, VerifiedReason(r), string(r))
		}
	}
	if len(verifiedReasons) != len(chartdata.Reasons) {
		t.Errorf("verifiedReasons maps %d reasons, chartdata has %d", len(verifiedReasons), len(chartdata.Reasons))
	}
}
