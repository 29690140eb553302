package local

import (
	"errors"
	"strings"
	"testing"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Issue 10, finding 10: tenants could exhaust the shared manager. SandboxPool is
// namespaced and minReady goes to 100; memory had no maximum.

func TestDefaultQuotas(t *testing.T) {
	tests := map[string]struct {
		limit      int64
		wantWarm   int
		wantMemory int64
	}{
		"no limit: no caps":            {0, 0, 0},
		"the chart's default, 4608Mi":  {4608 << 20, 25, 4 << 30},
		"tiny: still one warm sandbox": {256 << 20, 1, 160 << 20},
		"8Gi":                          {8 << 30, 48, 8<<30 - 512<<20},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			warm, memory := DefaultQuotas(tc.limit)
			if warm != tc.wantWarm || memory != tc.wantMemory {
				t.Errorf("DefaultQuotas(%d) = %d, %d; want %d, %d", tc.limit, warm, memory, tc.wantWarm, tc.wantMemory)
			}
		})
	}
}

func TestParseMemoryLimit(t *testing.T) {
	tests := map[string]int64{
		"max\n":                 0,
		"9223372036854771712\n": 0, // cgroup v1's "no limit"
		"4831838208\n":          4831838208,
		"":                      0,
		"-1":                    0,
	}
	for in, want := range tests {
		if got := parseMemoryLimit(in); got != want {
			t.Errorf("parseMemoryLimit(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestQuotaAcrossPools(t *testing.T) { testQuotaAcrossPools(t) }

func testQuotaAcrossPools(t *testing.T) {
	opts := Options{Quota: NewQuota(QuotaLimits{MaxWarm: 1, MaxMemory: 1 << 30})}
	res := sandbox.Resources{MemoryBytes: 512 << 20}
	first := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2, Resources: res}, opts)

	tests := map[string]struct {
		cfg  sandbox.PoolConfig
		want string
	}{
		"a second warm sandbox":        {sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, Resources: res}, "would keep 2 warm sandboxes across all Local pools; this operator allows 1"},
		"more memory than remains":     {sandbox.PoolConfig{MinReady: 0, MaxSandboxes: 1, Resources: res}, "all Local pools together would reach 1536 MiB; this operator allows 1 GiB"},
		"the reviewer's 100 warm ones": {sandbox.PoolConfig{MinReady: 100, MaxSandboxes: 100, Resources: res}, "minReady 100"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := NewPool(tc.cfg, opts)
			if err == nil {
				closeAndCheck(t, p)
				t.Fatal("pool created over the quota")
			}
			if !errors.Is(err, sandbox.ErrQuotaExceeded) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrQuotaExceeded containing %q", err, tc.want)
			}
		})
	}
	if err := first.Resize(2, 2); !errors.Is(err, sandbox.ErrQuotaExceeded) {
		t.Errorf("Resize over the warm quota: %v", err)
	}
	if err := first.Resize(0, 2); err != nil {
		t.Errorf("Resize within the quota: %v", err)
	}
	// Closing a pool frees its share.
	closeAndCheck(t, first)
	p, err := NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2, Resources: res}, opts)
	if err != nil {
		t.Fatalf("after the first pool closed: %v", err)
	}
	closeAndCheck(t, p)
}
