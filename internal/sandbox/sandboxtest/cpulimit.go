package sandboxtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// CPULimitProbe prints RLIMIT_CPU's soft limit and the CPU seconds used so far.
const CPULimitProbe = "import resource\nu = resource.getrusage(resource.RUSAGE_SELF)\nprint(resource.getrlimit(resource.RLIMIT_CPU)[0], u.ru_utime + u.ru_stime)"

// CPUBurner lowers its own soft CPU limit to a second from now (allowed: the hard
// limit is what bounds it) and burns CPU past it; it prints "burning" first.
const CPUBurner = "import resource\nu = resource.getrusage(resource.RUSAGE_SELF)\n" +
	"resource.setrlimit(resource.RLIMIT_CPU, (int(u.ru_utime + u.ru_stime) + 1, resource.getrlimit(resource.RLIMIT_CPU)[1]))\n" +
	"print('burning', flush=True)\nwhile True:\n    pass"

// CheckCPULimit checks what CPULimitProbe printed for a request with timeout: the
// soft limit is sandbox.CPUTimeLimit(timeout) on top of the CPU the kernel had used
// before the execution started (the kernel counts from its own start).
func CheckCPULimit(t testing.TB, res *sandbox.Result, timeout time.Duration) {
	t.Helper()
	var soft int64
	var used float64
	if _, err := fmt.Sscan(res.Stdout, &soft, &used); err != nil || !res.Success {
		t.Fatalf("stdout %q, error %+v", res.Stdout, res.Error)
	}
	limit := int64(sandbox.CPUTimeLimit(timeout) / time.Second)
	if soft < limit || soft > int64(used)+1+limit {
		t.Errorf("RLIMIT_CPU soft limit %d with %.2fs used; want %ds from the execution's start", soft, used, limit)
	}
}
