package pipeline

import (
	"os"
	"testing"

	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

// TestMain: the Local sandboxes of these tests run this test binary as their
// sandbox-agent.
func TestMain(m *testing.M) {
	agent.RunIfReexec()
	os.Exit(m.Run())
}
