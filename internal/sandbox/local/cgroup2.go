package local

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// cgroup v2 needs a subtree the operator may manage (delegation): the cgroup of a
// systemd unit with Delegate=yes, or, in a container, its own cgroup namespace when
// /sys/fs/cgroup is writable. The operator's own cgroup is that subtree. cgroup v2
// allows controllers to be enabled for children only in a group with no processes of
// its own, so the operator first moves itself into a leaf child, <base>/vizops-manager,
// then enables memory, pids and cpu for <base> and <base>/vizops, and makes one group
// <base>/vizops/<id> per sandbox with memory.max, memory.swap.max, pids.max and cpu.max.

// v2Manager is the leaf the operator moves its own processes into.
const v2Manager = "vizops-manager"

var (
	v2Mu      sync.Mutex
	v2Bases   = map[string]string{} // cgroup root -> prepared parent of sandbox groups
	selfCgrop = "/proc/self/cgroup"
)

// v2Mount returns the cgroup2 mount under root: root itself on a unified host, or
// root/unified on a hybrid one.
func v2Mount(root string) (string, error) {
	for _, dir := range []string{root, filepath.Join(root, "unified")} {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.controllers")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no cgroup2 mount at %s", root)
}

// ownV2Path is this process's cgroup v2 path (the "0::" line of /proc/self/cgroup).
func ownV2Path() (string, error) {
	f, err := os.Open(selfCgrop)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 entry in " + selfCgrop)
}

// v2Delegation prepares, once per root, the parent of sandbox groups, and returns it.
func v2Delegation(root string) (string, error) {
	v2Mu.Lock()
	defer v2Mu.Unlock()
	if base, ok := v2Bases[root]; ok {
		return base, nil
	}
	mount, err := v2Mount(root)
	if err != nil {
		return "", err
	}
	own, err := ownV2Path()
	if err != nil {
		return "", err
	}
	base := filepath.Join(mount, own)
	if filepath.Base(base) == v2Manager { // already moved, by an earlier pool of this process
		base = filepath.Dir(base)
	}
	if err := checkV2Controllers(base); err != nil {
		return "", err
	}
	want := "+" + strings.Join(controllers, " +")
	if !hasControllers(filepath.Join(base, "cgroup.subtree_control")) {
		// Only a group without processes may enable controllers for its children.
		if pids := readPids(filepath.Join(base, "cgroup.procs")); len(pids) > 0 {
			leaf := filepath.Join(base, v2Manager)
			if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return "", fmt.Errorf("create %s: %w", leaf, err)
			}
			for _, pid := range pids {
				// A process may exit meanwhile; one we cannot move fails the enable below.
				_ = os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
			}
		}
		if err := os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte(want), 0o644); err != nil {
			return "", fmt.Errorf("enable %s in %s (is the subtree delegated to the operator?): %w", want, base, err)
		}
	}
	parent := filepath.Join(base, cgroupParent)
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create %s: %w", parent, err)
	}
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte(want), 0o644); err != nil {
		return "", fmt.Errorf("enable %s in %s: %w", want, parent, err)
	}
	v2Bases[root] = parent
	return parent, nil
}

// checkV2Controllers fails unless memory, pids and cpu are available at base.
func checkV2Controllers(base string) error {
	data, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, c := range strings.Fields(string(data)) {
		have[c] = true
	}
	var missing []string
	for _, c := range controllers {
		if !have[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cgroup v2 controllers %s are not available in %s (bound to cgroup v1, or not delegated)", strings.Join(missing, ", "), base)
	}
	return nil
}

func hasControllers(subtreeControl string) bool {
	data, err := os.ReadFile(subtreeControl)
	if err != nil {
		return false
	}
	on := map[string]bool{}
	for _, c := range strings.Fields(string(data)) {
		on[c] = true
	}
	for _, c := range controllers {
		if !on[c] {
			return false
		}
	}
	return true
}

// newCgroupV2 creates <base>/vizops/<id> with the sandbox's limits.
func newCgroupV2(root, id string, r sandbox.Resources) (*cgroup, error) {
	parent, err := v2Delegation(root)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(parent, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	cg := &cgroup{v2: dir}
	settings := [][2]string{
		{"memory.max", strconv.FormatInt(r.MemoryBytes, 10)},
		{"memory.swap.max", "0"}, // absent without swap accounting
		{"memory.oom.group", "0"},
		{"pids.max", strconv.FormatInt(r.Pids, 10)},
		{"cpu.max", strconv.FormatInt(r.CPUMillis*100, 10) + " 100000"},
	}
	for _, kv := range settings {
		err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0o644)
		if err != nil && kv[0] != "memory.swap.max" && kv[0] != "memory.oom.group" {
			_ = cg.remove()
			return nil, fmt.Errorf("set %s in %s: %w", kv[0], dir, err)
		}
	}
	return cg, nil
}

// degradedMessage says which per-sandbox limits a group (nil: none could be made)
// does not enforce, and what applies instead; "" when all are enforced.
func degradedMessage(cg *cgroup, cause error) string {
	on := cg.enforced()
	var weak []string
	if !on["memory"] {
		weak = append(weak, "memory is RLIMIT_AS per process, not per sandbox")
	}
	if !on["pids"] {
		weak = append(weak, "processes are RLIMIT_NPROC per user, not per sandbox")
	}
	if !on["cpu"] {
		weak = append(weak, "CPU has no rate limit (only RLIMIT_CPU time)")
	}
	if len(weak) == 0 {
		return ""
	}
	msg := "sandbox limits degraded: " + strings.Join(weak, "; ")
	if cause != nil {
		msg += " (" + cause.Error() + ")"
	}
	return msg + ". Give the operator a cgroup it can manage: cgroup v1 controllers, or a delegated cgroup v2 subtree (systemd Delegate=yes, or a writable /sys/fs/cgroup in its own cgroup namespace)."
}
