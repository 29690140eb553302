package local

import (
	"strings"
	"testing"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// TestAgentRunsAJob runs the seed chart and a failing job on the sandbox-agent
// re-executed from this test binary under bubblewrap.
func TestAgentRunsAJob(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, Options{})
	r := runJob(t, p, sandbox.Request{Code: seedBarChart, Files: []sandbox.File{{Name: "data.csv", Data: []byte("a,b\n1,2\n")}}})
	if !r.Success || len(r.Files) != 1 || r.Files[0].Name != "figure_1.png" {
		t.Fatalf("seed chart: %+v (stderr %s)", r.Error, r.Stderr)
	}
	r = runJob(t, p, sandbox.Request{Code: "print(1)\n1/0"})
	if errName(r) != "ZeroDivisionError" || r.Stdout != "1\n" {
		t.Errorf("got error %q, stdout %q; want ZeroDivisionError and 1", errName(r), r.Stdout)
	}
	// Kernels were forked by the agent's zygote, not started as new interpreters.
	p.mu.Lock()
	for _, s := range p.all {
		if log := s.proc.stderr.String(); strings.Contains(log, "zygote did not start") {
			t.Errorf("the agent started no kernel zygote: %s", log)
		}
	}
	p.mu.Unlock()
}
