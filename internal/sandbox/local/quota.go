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
// would go over is refused with an error wrapping sandbox.ErrQuotaExceeded.

// Quota is the ledger the pools of one manager share. Give every pool's Options the
// same *Quota; pools without one are not counted or capped.
type Quota struct {
	maxWarm   int
	maxMemory int64

	mu     sync.Mutex
	claims map[*Pool]quotaClaim
}

// NewQuota caps the sum of MinReady (maxWarm) and of MaxSandboxes × memory
// (maxMemory) over the pools that share it; zero turns a cap off.
func NewQuota(maxWarm int, maxMemory int64) *Quota {
	return &Quota{maxWarm: maxWarm, maxMemory: maxMemory, claims: map[*Pool]quotaClaim{}}
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
	if q.maxWarm > 0 && warm+c.warm > q.maxWarm {
		return fmt.Errorf("%w: minReady %d would keep %d warm sandboxes across all Local pools; this operator allows %d (--max-warm-sandboxes). Lower minReady here or in another pool",
			sandbox.ErrQuotaExceeded, c.warm, warm+c.warm, q.maxWarm)
	}
	if q.maxMemory > 0 && memory+c.memory > q.maxMemory {
		return fmt.Errorf("%w: maxSandboxes × memory is %s, and all Local pools together would reach %s; this operator allows %s (--max-sandbox-memory). Lower maxSandboxes or memory",
			sandbox.ErrQuotaExceeded, humanBytes(c.memory), humanBytes(memory+c.memory), humanBytes(q.maxMemory))
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

// DefaultQuotas derives MaxWarmSandboxes and MaxTotalMemoryBytes from the memory
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
