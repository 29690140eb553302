package local

import (
	"strings"
	"testing"
)

// TestCheckEngine: the deprecated --local-engine accepts only the agent (or nothing);
// the removed zygote, or any other name, is refused with a reason.
func TestCheckEngine(t *testing.T) {
	for in, want := range map[string]string{
		"":       "",
		"agent":  "",
		"zygote": "was removed",
		"Agent":  "unknown engine",
		"docker": "unknown engine",
	} {
		err := CheckEngine(in)
		switch {
		case want == "" && err != nil:
			t.Errorf("CheckEngine(%q) = %v, want nil", in, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("CheckEngine(%q) = %v, want an error saying %q", in, err, want)
		}
	}
}
