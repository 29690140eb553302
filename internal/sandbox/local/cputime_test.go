package local

import (
	"fmt"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// TestCPUTimeLimit: a job runs under RLIMIT_CPU of sandbox.CPUTimeLimit(timeout), and
// code past it fails with CPUTimeLimitExceeded.
func TestCPUTimeLimit(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, Resources: abuseLimits}, Options{})
	t.Run("the limit is set", func(t *testing.T) {
		const timeout = 2 * time.Second
		r := runJob(t, p, sandbox.Request{Timeout: timeout, Code: "import resource\nu = resource.getrusage(resource.RUSAGE_SELF)\n" +
			"print(resource.getrlimit(resource.RLIMIT_CPU)[0], u.ru_utime + u.ru_stime)"})
		var soft int64
		var used float64
		if _, err := fmt.Sscan(r.Stdout, &soft, &used); err != nil || !r.Success {
			t.Fatalf("stdout %q, error %+v", r.Stdout, r.Error)
		}
		// The kernel counts from the execution's start: the job has the limit's
		// seconds on top of what the kernel used before.
		limit := int64(sandbox.CPUTimeLimit(timeout) / time.Second)
		if soft < limit || soft > int64(used)+1+limit {
			t.Errorf("RLIMIT_CPU soft limit %d with %.2fs used; want %ds for the job", soft, used, limit)
		}
	})
	t.Run("code past the limit fails with its name", func(t *testing.T) {
		// The code lowers its own soft limit to a second from now, then burns CPU.
		r := runJob(t, p, sandbox.Request{Timeout: 10 * time.Second, Code: "import resource\nu = resource.getrusage(resource.RUSAGE_SELF)\n" +
			"resource.setrlimit(resource.RLIMIT_CPU, (int(u.ru_utime + u.ru_stime) + 1, resource.getrlimit(resource.RLIMIT_CPU)[1]))\n" +
			"print('burning', flush=True)\nwhile True:\n    pass"})
		if errName(r) != sandbox.ErrNameCPUTimeLimitExceeded || r.Stdout != "burning\n" || r.Error.Value == "" {
			t.Errorf("error %+v, stdout %q; want %s with a message", r.Error, r.Stdout, sandbox.ErrNameCPUTimeLimitExceeded)
		}
		if next := runJob(t, p, sandbox.Request{Code: "6 * 7"}); next.Text != "42" {
			t.Errorf("next request: %+v", next.Error)
		}
	})
}
