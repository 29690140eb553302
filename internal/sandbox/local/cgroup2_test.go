package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Issue 10, finding 2: no per-sandbox memory or CPU limit on cgroup v2 or inside a pod.

// fakeCgroupfs lays out a cgroup v2 tree in a plain directory: the files the kernel
// would show at the operator's own cgroup. It covers which files the delegation writes
// and in which order of groups; not what the kernel enforces, nor that it refuses
// writes (TestCgroupV2Enforced runs against the kernel where it can).
func fakeCgroupfs(t *testing.T, controllersAvailable string) (root, own string) {
	t.Helper()
	root = t.TempDir()
	own = filepath.Join(root, "kubepods", "pod1")
	if err := os.MkdirAll(own, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(root, "cgroup.controllers"):    "cpuset cpu io memory hugetlb pids rdma misc\n",
		filepath.Join(own, "cgroup.controllers"):     controllersAvailable + "\n",
		filepath.Join(own, "cgroup.subtree_control"): "",
		filepath.Join(own, "cgroup.procs"):           "4242\n4243\n",
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	self := filepath.Join(t.TempDir(), "cgroup")
	if err := os.WriteFile(self, []byte("0::/kubepods/pod1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := selfCgrop
	selfCgrop = self
	t.Cleanup(func() { selfCgrop = old })
	return root, own
}

func TestCgroupV2Delegation(t *testing.T) {
	res := sandbox.Resources{MemoryBytes: 512 << 20, Pids: 64, CPUMillis: 500, ScratchBytes: 16 << 20}
	tests := map[string]struct {
		controllers string
		wantErr     string
		wantFiles   map[string]string // relative to the operator's own cgroup
	}{
		"a delegated subtree with every controller": {
			controllers: "cpu memory pids",
			wantFiles: map[string]string{
				"vizops-manager/cgroup.procs":   "4243", // each pid written in turn; the fake keeps the last
				"cgroup.subtree_control":        "+memory +pids +cpu",
				"vizops/cgroup.subtree_control": "+memory +pids +cpu",
				"vizops/sbx-1/memory.max":       "536870912",
				"vizops/sbx-1/memory.swap.max":  "0",
				"vizops/sbx-1/memory.oom.group": "0",
				"vizops/sbx-1/pids.max":         "64",
				"vizops/sbx-1/cpu.max":          "50000 100000",
				"vizops/sbx-1/cgroup.procs":     "777",
			},
		},
		"memory and pids bound to cgroup v1 (this machine's layout)": {
			controllers: "hugetlb",
			wantErr:     "cgroup v2 controllers memory, pids, cpu are not available",
		},
		"no cpu controller delegated": {
			controllers: "memory pids",
			wantErr:     "cgroup v2 controllers cpu are not available",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			root, own := fakeCgroupfs(t, tc.controllers)
			cg, err := newCgroup(root, "sbx-1", res)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if msg := degradedMessage(cg, err); !strings.Contains(msg, "memory is RLIMIT_AS per process") {
					t.Errorf("degraded message %q", msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := cg.add(777); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for rel := range tc.wantFiles {
				data, _ := os.ReadFile(filepath.Join(own, rel))
				got[rel] = strings.TrimSpace(string(data))
			}
			if diff := cmp.Diff(tc.wantFiles, got); diff != "" {
				t.Errorf("cgroupfs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]bool{"memory": true, "pids": true, "cpu": true}, cg.enforced()); diff != "" {
				t.Errorf("enforced (-want +got):\n%s", diff)
			}
			if msg := degradedMessage(cg, nil); msg != "" {
				t.Errorf("degraded with every controller: %q", msg)
			}
		})
	}
}

func TestDegradedMessage(t *testing.T) {
	tests := map[string]struct {
		cg   *cgroup
		want []string // substrings; nil means ""
	}{
		"no cgroup":       {nil, []string{"memory is RLIMIT_AS", "processes are RLIMIT_NPROC", "CPU has no rate limit"}},
		"v1, memory only": {&cgroup{dirs: map[string]string{"memory": "/x"}}, []string{"processes are RLIMIT_NPROC", "CPU has no rate limit"}},
		"v1, all three":   {&cgroup{dirs: map[string]string{"memory": "/a", "pids": "/b", "cpu": "/c"}}, nil},
		"v2":              {&cgroup{v2: "/x"}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			msg := degradedMessage(tc.cg, errors.New("cause"))
			if tc.want == nil && msg != "" {
				t.Errorf("got %q, want no message", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not contain %q", msg, w)
				}
			}
			if tc.cg != nil && tc.cg.enforced()["memory"] && strings.Contains(msg, "memory is") {
				t.Errorf("memory is enforced but reported degraded: %q", msg)
			}
		})
	}
}

// TestCgroupV2Enforced runs the forked-children memory attack against a real cgroup v2
// hierarchy, where the kernel offers one with the memory, pids and cpu controllers.
func TestCgroupV2Enforced(t *testing.T) { testCgroupV2Enforced(t) }

func testCgroupV2Enforced(t *testing.T) {
	var root string
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(data)); contains(f, "memory") && contains(f, "pids") && contains(f, "cpu") {
			root = "/sys/fs/cgroup"
			break
		}
		t.Skipf("the cgroup2 mount at %s offers only %q: memory, pids and cpu are bound to cgroup v1 on this kernel, and any new cgroup2 mount shares that hierarchy, so v2 enforcement cannot be tested here (TestCgroupV2Delegation covers the setup)", dir, strings.TrimSpace(string(data)))
	}
	if root == "" {
		t.Skip("no cgroup2 mount")
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		t.Skip("cgroup v1 controllers are mounted and take precedence")
	}
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, Resources: abuseLimits}, Options{CgroupRoot: root})
	if d := p.Status().Degraded; d != "" {
		t.Fatalf("pool degraded on a cgroup v2 host: %s", d)
	}
	r := runJob(t, p, sandbox.Request{Code: forkedMemoryCode, Timeout: 30 * time.Second})
	checkForkedMemory(t, r)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// forkedMemoryCode is the reviewer's attack: four children that each stay under a
// per-process limit while together they exceed the sandbox's.
const forkedMemoryCode = `import os, time
kids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        try:
            b = bytearray(200 << 20)
            for j in range(0, len(b), 4096):
                b[j] = 1
            time.sleep(1)
            os._exit(0)
        except MemoryError:
            os._exit(3)
    kids.append(pid)
ok = sum(1 for k in kids if os.waitpid(k, 0)[1] == 0)
print('children that held 200 MB at once:', ok)`

// checkForkedMemory: with a per-sandbox limit (512 MiB here), four children of 200 MB
// cannot all succeed; the job either fails on the memory limit or sees children die.
// On a heavily loaded machine reclaim at the limit can also outlast the timeout: that
// too is a job that did not get its 800 MB.
func checkForkedMemory(t *testing.T, r *sandbox.Result) {
	t.Helper()
	if strings.Contains(r.Stdout, "at once: 4") {
		t.Errorf("four children held 800 MB under a 512 MiB sandbox limit; stdout %q", r.Stdout)
	}
	if !r.Success && errName(r) != sandbox.ErrNameMemoryLimitExceeded && errName(r) != sandbox.ErrNameTimeout {
		t.Errorf("failed with %q (%+v), want MemoryLimitExceeded or a partial count", errName(r), r.Error)
	}
}

// TestForkedChildrenShareTheSandboxLimit runs the same attack on this machine's
// cgroups (v1 here), where the per-sandbox group exists.
func TestForkedChildrenShareTheSandboxLimit(t *testing.T) {
	testForkedChildrenShareTheSandboxLimit(t)
}

func testForkedChildrenShareTheSandboxLimit(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, Resources: abuseLimits}, Options{})
	if d := p.Status().Degraded; d != "" {
		t.Skipf("no per-sandbox cgroup on this machine: %s", d)
	}
	checkForkedMemory(t, runJob(t, p, sandbox.Request{Code: forkedMemoryCode, Timeout: 30 * time.Second}))
}

// TestDegradedPool: where no cgroup can be made, Status says which limits are
// degraded, and the Quota's MaxDegraded holds the operator to that many sandboxes.
func TestDegradedPool(t *testing.T) { testDegradedPool(t) }

func testDegradedPool(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 2, MaxSandboxes: 2, Resources: abuseLimits},
		Options{CgroupRoot: t.TempDir(), Quota: NewQuota(QuotaLimits{MaxDegraded: 1})})
	st := p.Status()
	for _, want := range []string{"memory is RLIMIT_AS per process", "CPU has no rate limit", "At most 1 such sandbox"} {
		if !strings.Contains(st.Degraded, want) {
			t.Errorf("Status().Degraded %q does not contain %q", st.Degraded, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first, err := p.Acquire(ctx, "first")
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if sb, err := p.Acquire(short, "second"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a second degraded sandbox was handed out: %v, %v", sb, err)
	}
	if total := p.Status().Total; total != 1 {
		t.Errorf("%d sandboxes exist, want 1", total)
	}
	p.Release(first)
	second, err := p.Acquire(ctx, "second")
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	p.Release(second)
}

// TestDegradedSlotsPerQuota: the degraded cap is counted per Quota, across its pools,
// and a slot freed by one pool wakes another pool of the same Quota. Pools of another
// Quota (another manager in the same process) neither take nor wait for those slots.
func TestDegradedSlotsPerQuota(t *testing.T) { testDegradedSlotsPerQuota(t) }

func testDegradedSlotsPerQuota(t *testing.T) {
	shared := Options{CgroupRoot: t.TempDir(), Quota: NewQuota(QuotaLimits{MaxDegraded: 1})}
	other := Options{CgroupRoot: t.TempDir(), Quota: NewQuota(QuotaLimits{MaxDegraded: 1})}
	cfg := sandbox.PoolConfig{MinReady: 0, MaxSandboxes: 1, Resources: abuseLimits}
	a := newTestPool(t, cfg, shared)
	b := newTestPool(t, cfg, shared)
	c := newTestPool(t, cfg, other)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fromA, err := a.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	fromC, err := c.Acquire(ctx, "c")
	if err != nil {
		t.Fatalf("a pool of another Quota waits for this one's degraded slot: %v", err)
	}
	c.Release(fromC)

	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if sb, err := b.Acquire(short, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the second pool of a Quota with MaxDegraded 1 got a sandbox: %v, %v", sb, err)
	}

	got := make(chan error, 1)
	go func() {
		sb, err := b.Acquire(ctx, "b")
		if err == nil {
			b.Release(sb)
		}
		got <- err
	}()
	a.Release(fromA)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Errorf("the slot pool a freed did not reach pool b: %v", err)
	}
}
