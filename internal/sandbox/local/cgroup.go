package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// cgroupParent is the directory under each controller that holds vizops sandboxes.
const cgroupParent = "vizops"

// cgroup is one sandbox's group: cgroup v1 groups in the memory, pids and cpu
// controllers, or one cgroup v2 group with all three.
type cgroup struct {
	dirs map[string]string // v1: controller -> directory
	v2   string            // v2: the group's directory
}

// oomCounter is the file of the group's memory controller that counts OOM kills
// (cgroup v2 memory.events, v1 memory.oom_control), or "" without one.
func (c *cgroup) oomCounter() string {
	if c == nil {
		return ""
	}
	if c.v2 != "" {
		return filepath.Join(c.v2, "memory.events")
	}
	if dir, ok := c.dirs["memory"]; ok {
		return filepath.Join(dir, "memory.oom_control")
	}
	return ""
}

// controllers are the limits a sandbox's cgroup enforces.
var controllers = []string{"memory", "pids", "cpu"}

// enforced reports which of controllers this group applies.
func (c *cgroup) enforced() map[string]bool {
	m := map[string]bool{}
	if c == nil {
		return m
	}
	if c.v2 != "" {
		for _, ctrl := range controllers {
			m[ctrl] = true
		}
		return m
	}
	for ctrl := range c.dirs {
		m[ctrl] = true
	}
	return m
}

// newCgroup creates the sandbox's group with the limits in r: cgroup v1 groups
// root/{memory,pids,cpu}/vizops/<id> where those controllers are mounted, else a
// cgroup v2 group on the delegated subtree (see v2Delegation). It returns an error
// when neither works; the caller then relies on rlimits.
func newCgroup(root, id string, r sandbox.Resources) (*cgroup, error) {
	if root == "none" {
		return nil, errors.New("cgroups disabled")
	}
	cg, v1err := newCgroupV1(root, id, r)
	if v1err == nil {
		return cg, nil
	}
	cg, v2err := newCgroupV2(root, id, r)
	if v2err == nil {
		return cg, nil
	}
	return nil, fmt.Errorf("no per-sandbox cgroup: %v; cgroup v2: %v", v1err, v2err)
}

func newCgroupV1(root, id string, r sandbox.Resources) (*cgroup, error) {
	cg := &cgroup{dirs: map[string]string{}}
	settings := map[string][][2]string{
		"memory": {
			{"memory.limit_in_bytes", strconv.FormatInt(r.MemoryBytes, 10)},
			// Same cap on memory+swap, so swap is no way around the limit.
			{"memory.memsw.limit_in_bytes", strconv.FormatInt(r.MemoryBytes, 10)},
			{"memory.swappiness", "0"},
		},
		"pids": {{"pids.max", strconv.FormatInt(r.Pids, 10)}},
		"cpu": {
			{"cpu.cfs_period_us", "100000"},
			{"cpu.cfs_quota_us", strconv.FormatInt(r.CPUMillis*100, 10)},
		},
	}
	for _, ctrl := range []string{"memory", "pids", "cpu"} {
		base := filepath.Join(root, ctrl)
		if _, err := os.Stat(base); err != nil {
			continue
		}
		dir := filepath.Join(base, cgroupParent, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			_ = cg.remove() // best effort: the error being returned says what failed
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		cg.dirs[ctrl] = dir
		for _, kv := range settings[ctrl] {
			err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0o644)
			// memsw exists only with swap accounting; swappiness may be refused.
			if err != nil && kv[0] != "memory.memsw.limit_in_bytes" && kv[0] != "memory.swappiness" {
				_ = cg.remove() // best effort: the error being returned says what failed
				return nil, fmt.Errorf("set %s in %s: %w", kv[0], dir, err)
			}
		}
	}
	if len(cg.dirs) == 0 {
		return nil, fmt.Errorf("no memory, pids or cpu controller under %s", root)
	}
	return cg, nil
}

// add moves a process into every controller's group.
func (c *cgroup) add(pid int) error {
	if c.v2 != "" {
		if err := os.WriteFile(filepath.Join(c.v2, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move pid %d into %s: %w", pid, c.v2, err)
		}
		return nil
	}
	for _, dir := range c.dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move pid %d into %s: %w", pid, dir, err)
		}
	}
	return nil
}

// remove kills whatever is left in the group and deletes it, retrying briefly because
// a killed process leaves the group only once the kernel has reaped it.
func (c *cgroup) remove() error {
	if c == nil {
		return nil
	}
	var errs []error
	dirs := make([]string, 0, len(c.dirs)+1)
	for _, dir := range c.dirs {
		dirs = append(dirs, dir)
	}
	if c.v2 != "" {
		dirs = append(dirs, c.v2)
		_ = os.WriteFile(filepath.Join(c.v2, "cgroup.kill"), []byte("1"), 0o644) // Linux 5.14+
	}
	for _, dir := range dirs {
		deadline := time.Now().Add(5 * time.Second)
		for {
			for _, pid := range readPids(filepath.Join(dir, "cgroup.procs")) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
				break
			}
			time.Sleep(5 * time.Millisecond) // waiting on the kernel to reap: no event to wait for in v1
		}
	}
	return errors.Join(errs...)
}

func readPids(path string) []int {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// staleCgroupAge is how old an empty sandbox group must be before a sweep removes it:
// old enough that no process (this one or another operator on the node) is still
// setting it up.
const staleCgroupAge = 10 * time.Minute

var sweepOnce sync.Once

// sweepStaleCgroups removes sandbox groups an earlier, crashed operator left behind.
// Removing a cgroup that still has tasks fails, so a live sandbox is never touched.
func sweepStaleCgroups(root string, now time.Time) (removed int) {
	if root == "none" {
		return 0
	}
	parents := []string{}
	for _, ctrl := range []string{"memory", "pids", "cpu"} {
		parents = append(parents, filepath.Join(root, ctrl, cgroupParent))
	}
	if mount, err := v2Mount(root); err == nil {
		if own, err := ownV2Path(); err == nil {
			base := filepath.Join(mount, own)
			if filepath.Base(base) == v2Manager {
				base = filepath.Dir(base)
			}
			parents = append(parents, filepath.Join(base, cgroupParent))
		}
	}
	for _, parent := range parents {
		entries, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || !e.IsDir() || now.Sub(info.ModTime()) < staleCgroupAge {
				continue
			}
			if os.Remove(filepath.Join(parent, e.Name())) == nil {
				removed++
			}
		}
	}
	return removed
}
