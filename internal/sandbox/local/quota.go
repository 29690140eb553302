package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// The manager's own memory bounds every Local sandbox together (they run in its
// container), and SandboxPool is a namespaced resource that tenants may create. So
// the pools of one process share two quotas, first come first served: the warm
// sandboxes they keep (each about 144 MB resident while idle) and the memory their
// sandboxes may use at once (maxSandboxes × memory, summed over pools). A pool that
// would go over is refused with an error wrapping sandbox.ErrQuotaExceeded. They also
// share a count of the sandboxes that run without a cgroup of their own (degraded),
// which one weak sandbox too many could turn into one tenant starving the rest.

// Quota is the ledger the pools of one manager share. Give every pool's Options the
// same *Quota; pools without one are not counted or capped. Two managers in one
// process (tests do this) keep separate ledgers.
type Quota struct {
	limits QuotaLimits

	mu       sync.Mutex
	claims   map[*Pool]quotaClaim
	degraded int // sandboxes that exist now with degraded limits, across the pools
}

// QuotaLimits are the caps a Quota enforces; zero turns a cap off.
type QuotaLimits struct {
	// MaxWarm caps the sum of MinReady over the pools.
	MaxWarm int
	// MaxMemory caps the sum of MaxSandboxes × memory over the pools.
	MaxMemory int64
	// MaxDegraded caps the sandboxes that may exist at once, across the pools, when no
	// per-sandbox cgroup can be made (memory and processes are then bounded per process,
	// not per sandbox, and CPU is not rate-limited). A pool over it waits for a slot.
	MaxDegraded int
}

// NewQuota returns a ledger with these caps.
func NewQuota(limits QuotaLimits) *Quota {
	return &Quota{limits: limits, claims: map[*Pool]quotaClaim{}}
}

// maxDegraded is the degraded-sandbox cap (0: none, and for a nil Quota).
func (q *Quota) maxDegraded() int {
	if q == nil {
		return 0
	}
	return q.limits.MaxDegraded
}

// reserveDegraded takes one degraded-sandbox slot, or says none is free.
func (q *Quota) reserveDegraded() bool {
	if q == nil {
		return true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.limits.MaxDegraded > 0 && q.degraded >= q.limits.MaxDegraded {
		return false
	}
	q.degraded++
	return true
}

// releaseDegraded frees a slot and wakes the degraded pools that may wait for one.
func (q *Quota) releaseDegraded() {
	if q == nil {
		return
	}
	q.mu.Lock()
	q.degraded--
	var waiting []*Pool
	for p := range q.claims {
		if p.degraded != "" {
			waiting = append(waiting, p)
		}
	}
	q.mu.Unlock()
	for _, p := range waiting {
		p.kick() // its engine asks Admit again
	}
}

type quotaClaim struct {
	warm   int
	memory int64
}

func claimOf(minReady, maxSandboxes int, res sandbox.Resources) quotaClaim {
	return quotaClaim{warm: minReady, memory: int64(maxSandboxes) * res.MemoryBytes}
}

// reserve records p's claim, or refuses it when the claims of every other pool plus
// this one would exceed a cap.
func (q *Quota) reserve(p *Pool, c quotaClaim) error {
	if q == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var warm int
	var memory int64
	for other, oc := range q.claims {
		if other != p {
			warm += oc.warm
			memory += oc.memory
		}
	}
	if q.limits.MaxWarm > 0 && warm+c.warm > q.limits.MaxWarm {
		return fmt.Errorf("%w: minReady %d would keep %d warm sandboxes across all Local pools; this operator allows %d (--max-warm-sandboxes). Lower minReady here or in another pool",
			sandbox.ErrQuotaExceeded, c.warm, warm+c.warm, q.limits.MaxWarm)
	}
	if q.limits.MaxMemory > 0 && memory+c.memory > q.limits.MaxMemory {
		return fmt.Errorf("%w: maxSandboxes × memory is %s, and all Local pools together would reach %s; this operator allows %s (--max-sandbox-memory). Lower maxSandboxes or memory",
			sandbox.ErrQuotaExceeded, humanBytes(c.memory), humanBytes(memory+c.memory), humanBytes(q.limits.MaxMemory))
	}
	q.claims[p] = c
	return nil
}

func (q *Quota) release(p *Pool) {
	if q == nil {
		return
	}
	q.mu.Lock()
	delete(q.claims, p)
	q.mu.Unlock()
}

// ManagerReserveBytes is the memory the manager keeps for itself when quotas are
// derived from its container's limit, and WarmSandboxBytes what one idle warm sandbox
// is budgeted (about 144 MB resident, measured).
const (
	ManagerReserveBytes = 512 << 20
	WarmSandboxBytes    = 160 << 20
)

// DefaultQuotas derives QuotaLimits' MaxWarm and MaxMemory from the memory
// limit of the container the manager (and so every sandbox) runs in: the limit minus
// ManagerReserveBytes goes to sandboxes, and a warm sandbox counts WarmSandboxBytes.
// No limit (0) means no caps.
func DefaultQuotas(containerLimit int64) (warm int, memory int64) {
	if containerLimit <= 0 {
		return 0, 0
	}
	memory = max(containerLimit-ManagerReserveBytes, WarmSandboxBytes)
	return max(int(memory/WarmSandboxBytes), 1), memory
}

// ContainerMemoryLimit reads this process's memory limit from cgroupfs under root
// (cgroup v2 memory.max of its own group, else cgroup v1 memory.limit_in_bytes); 0
// when there is none.
func ContainerMemoryLimit(root string) int64 {
	candidates := []string{filepath.Join(root, "memory", ownV1Path("memory"), "memory.limit_in_bytes")}
	if own, err := ownV2Path(); err == nil {
		if mount, err := v2Mount(root); err == nil {
			candidates = append([]string{filepath.Join(mount, own, "memory.max")}, candidates...)
		}
	}
	for _, path := range candidates {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		return parseMemoryLimit(string(data))
	}
	return 0
}

// ownV1Path is this process's group in a cgroup v1 controller ("/" when unknown).
func ownV1Path(controller string) string {
	data, err := os.ReadFile(selfCgrop)
	if err != nil {
		return "/"
	}
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2]
			}
		}
	}
	return "/"
}

// parseMemoryLimit reads memory.max or memory.limit_in_bytes: "max", or v1's page-
// rounded 2^63-1, mean no limit.
func parseMemoryLimit(s string) int64 {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0
	}
	return n
}
