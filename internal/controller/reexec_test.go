package controller

import (
	"os"
	"testing"

	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

// TestMain: the suite's Local sandboxes run this test binary as their sandbox-agent.
func TestMain(m *testing.M) {
	agent.RunIfReexec()
	os.Exit(m.Run())
}
