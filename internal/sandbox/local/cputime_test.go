package local

import (
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/sandboxtest"
)

// TestCPUTimeLimit: a job runs under RLIMIT_CPU of sandbox.CPUTimeLimit(timeout), and
// code past it fails with CPUTimeLimitExceeded.
func TestCPUTimeLimit(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, Resources: abuseLimits}, Options{})
	t.Run("the limit is set", func(t *testing.T) {
		const timeout = 2 * time.Second
		sandboxtest.CheckCPULimit(t, runJob(t, p, sandbox.Request{Timeout: timeout, Code: sandboxtest.CPULimitProbe}), timeout)
	})
	t.Run("code past the limit fails with its name", func(t *testing.T) {
		r := runJob(t, p, sandbox.Request{Timeout: 10 * time.Second, Code: sandboxtest.CPUBurner})
		if errName(r) != sandbox.ErrNameCPUTimeLimitExceeded || r.Stdout != "burning\n" || r.Error.Value == "" {
			t.Errorf("error %+v, stdout %q; want %s with a message", r.Error, r.Stdout, sandbox.ErrNameCPUTimeLimitExceeded)
		}
		if next := runJob(t, p, sandbox.Request{Code: "6 * 7"}); next.Text != "42" {
			t.Errorf("next request: %+v", next.Error)
		}
	})
}
