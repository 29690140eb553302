package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

// canaryEnv is set in this test process; no sandbox may ever see it.
const (
	canaryEnvName  = "VIZOPS_TEST_CANARY_SECRET"
	canaryEnvValue = "canary-7f3d9e-operator-secret"
)

func TestMain(m *testing.M) {
	agent.RunIfReexec() // every sandbox runs this binary as its agent
	os.Setenv(canaryEnvName, canaryEnvValue)
	code := m.Run()
	if featurePool != nil {
		tag := featurePool.tag
		if err := featurePool.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "closing the shared feature pool:", err)
			code = 1
		}
		if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/pids", cgroupParent, tag+"-*")); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "cgroups left after Close:", left)
			code = 1
		}
	}
	os.Exit(code)
}

// newTestPool starts a pool and registers a cleanup that closes it and checks that
// nothing (processes, cgroups) is left behind. It fails, never skips, when the
// backend is unavailable: CI installs bubblewrap and the Python libraries.
func newTestPool(t testing.TB, cfg sandbox.PoolConfig, opts Options) *Pool {
	t.Helper()
	p, err := NewPool(cfg, opts)
	if err != nil {
		t.Fatalf("NewPool: %v\n(the Local backend needs bubblewrap and Debian's python3-matplotlib, python3-numpy, python3-pandas, python3-seaborn, python3-plotly)", err)
	}
	t.Cleanup(func() { closeAndCheck(t, p) })
	return p
}

// closeAndCheck closes the pool and asserts every sandbox process and cgroup is gone.
func closeAndCheck(t testing.TB, p *Pool) {
	t.Helper()
	pids := poolPids(p)
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Killed processes take a moment to be reaped: wait for that, with a bound.
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for processExists(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if processExists(pid) {
			stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Errorf("process %d of pool %s still alive after Close: %s", pid, p.tag, stat)
		}
	}
	for _, ctrl := range []string{"memory", "pids", "cpu"} {
		matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctrl, cgroupParent, p.tag+"-*"))
		if len(matches) > 0 {
			t.Errorf("cgroups left after Close: %v", matches)
		}
	}
}

// poolPids lists every process of the pool's sandboxes: the bwrap processes and
// everything in their cgroups.
func poolPids(p *Pool) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	for _, s := range p.all {
		if s.proc == nil {
			continue
		}
		if s.proc.cmd.Process != nil {
			pids = append(pids, s.proc.cmd.Process.Pid)
		}
		if s.proc.cg != nil {
			pids = append(pids, readPids(filepath.Join(s.proc.cg.dirs["pids"], "cgroup.procs"))...)
		}
	}
	return pids
}

// processExists reports whether pid is a live (not zombie) process.
func processExists(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// runJob claims a sandbox, runs req and releases it, failing the test on a backend error.
func runJob(t testing.TB, p *Pool, req sandbox.Request) *sandbox.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := sandbox.Run(ctx, p, t.Name(), req)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func artifactNames(r *sandbox.Result) []string {
	var names []string
	for _, f := range r.Files {
		names = append(names, f.Name)
	}
	return names
}

func errName(r *sandbox.Result) string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Name
}

// hostProcessWithArg returns the pid of a host process whose command line contains arg.
func hostProcessWithArg(arg string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), arg) && processExists(pid) {
			return pid
		}
	}
	return 0
}

func signalAlive(pid int) bool { return syscall.Kill(pid, 0) == nil && processExists(pid) }
