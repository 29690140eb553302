package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vizops/viz-operator/internal/sandbox"
)

func TestNewPoolUnavailable(t *testing.T) {
	tests := map[string]struct {
		opts Options
		want string
	}{
		"bwrap missing":                   {Options{Bwrap: "/nonexistent/bwrap"}, "install bubblewrap"},
		"interpreter missing":             {Options{Python: "/nonexistent/python3"}, "install python3-matplotlib"},
		"interpreter outside the sandbox": {Options{Python: "/root/.pyenv/shims/python3"}, "must live under /usr"},
		"interpreter without libraries":   {Options{Python: "/usr/bin/true"}, "cannot import the plotting libraries"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if name == "interpreter outside the sandbox" {
				if _, err := os.Stat(tc.opts.Python); err != nil {
					tc.opts.Python = os.Args[0] // any file outside /usr does
				}
			}
			p, err := NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, tc.opts)
			if err == nil {
				p.Close()
				t.Fatal("NewPool succeeded, want ErrUnavailable")
			}
			if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrUnavailable mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNewPoolRejectsBadSizes(t *testing.T) {
	tests := map[string]sandbox.PoolConfig{
		"min above max": {MinReady: 3, MaxSandboxes: 2},
		"negative min":  {MinReady: -1, MaxSandboxes: 2},
		"bad network":   {MinReady: 0, MaxSandboxes: 1, Network: "Bridge"},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if p, err := NewPool(cfg, Options{}); err == nil {
				p.Close()
				t.Fatal("NewPool accepted a bad config")
			}
		})
	}
}

func TestPoolKeepsMinReadyWithinMax(t *testing.T) {
	var startedCount atomic.Int32
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 2, MaxSandboxes: 3, OnSandboxStarted: func(d time.Duration) {
		if d > 0 {
			startedCount.Add(1)
		}
	}}, Options{})
	waitFor(t, 2*time.Minute, "2 ready sandboxes", func() bool { return p.Status().Ready == 2 })

	sb, err := p.Acquire(t.Context(), "ns/req-1")
	if err != nil {
		t.Fatal(err)
	}
	st := p.Status()
	var owners []string
	for _, s := range st.Sandboxes {
		if s.State == sandbox.StateBusy {
			owners = append(owners, s.ID+"="+s.Owner)
		}
		if !strings.HasPrefix(s.ID, p.Tag()+"-") {
			t.Errorf("sandbox ID %q lacks the pool tag %q", s.ID, p.Tag())
		}
	}
	if diff := cmp.Diff([]string{sb.ID() + "=ns/req-1"}, owners); diff != "" {
		t.Errorf("busy sandboxes (-want +got):\n%s", diff)
	}
	// The claim is replenished behind, within the cap.
	waitFor(t, 2*time.Minute, "replenishment to 2 ready + 1 busy", func() bool {
		st := p.Status()
		return st.Ready == 2 && st.Busy == 1 && st.Total == 3
	})
	p.Release(sb)
	st = p.Status()
	if diff := cmp.Diff([3]int{3, 0, 3}, [3]int{st.Ready, st.Busy, st.Total}); diff != "" {
		t.Errorf("after release [ready busy total] (-want +got):\n%s", diff)
	}
	if startedCount.Load() != 3 {
		t.Errorf("OnSandboxStarted called %d times, want 3", startedCount.Load())
	}
}

func TestPoolNeverExceedsMax(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 2, MaxSandboxes: 2}, Options{})
	// Sample the count the whole time, while we claim everything and crash sandboxes.
	var maxSeen atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := int32(p.Status().Total); n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	a, err := p.Acquire(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire(t.Context(), "b")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = p.Acquire(ctx, "c")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("third Acquire on a full pool: %v, want context.DeadlineExceeded", err)
	}
	p.Release(a)
	p.Release(b)
	// Crash the sandboxes a few times: the pool replaces them, never beyond the cap.
	killed := map[int]bool{}
	replaced := func() bool {
		for _, pid := range bwrapPids(p) {
			if killed[pid] {
				return false
			}
		}
		return p.Status().Ready == 2
	}
	for i := 0; i < 2; i++ {
		waitFor(t, 2*time.Minute, "2 fresh ready sandboxes", replaced)
		for _, pid := range bwrapPids(p) {
			killed[pid] = true
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	waitFor(t, 2*time.Minute, "recovery to 2 fresh ready sandboxes", replaced)
	close(stop)
	wg.Wait()
	if got := maxSeen.Load(); got > 2 {
		t.Errorf("saw %d sandboxes, cap is 2", got)
	}
	if r := runJob(t, p, sandbox.Request{Code: "1 + 1"}); r.Text != "2" {
		t.Errorf("job after crashes: %+v", r.Error)
	}
}

func bwrapPids(p *Pool) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	for _, s := range p.all {
		if s.proc != nil && s.proc.cmd.Process != nil {
			pids = append(pids, s.proc.cmd.Process.Pid)
		}
	}
	return pids
}

// TestAcquireFailsFastWhenStartsFail: after 3 sandbox starts in a row failed, with
// none in flight, a claim fails at once with an error wrapping ErrUnavailable (not at
// its context's end), and the pool recovers once starts work again.
func TestAcquireFailsFastWhenStartsFail(t *testing.T) {
	w := newBwrapWrapper(t)
	w.failStarts(true)
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, Options{Bwrap: w.script})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := p.Acquire(ctx, "doomed")
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "sandbox starts failed") {
		t.Fatalf("Acquire while every start fails: %v, want ErrUnavailable saying the starts failed", err)
	}
	if n := len(w.pids()); n < startFailuresBeforeUnavailable {
		t.Errorf("the claim failed after %d starts, want %d", n, startFailuresBeforeUnavailable)
	}
	w.failStarts(false)
	waitFor(t, 2*time.Minute, "a ready sandbox once starts work again", func() bool { return p.Status().Ready == 1 })
	if r := runJob(t, p, sandbox.Request{Code: "1 + 1"}); r.Text != "2" {
		t.Errorf("job after recovery: %+v", r.Error)
	}
}

// readySandboxes lists the pool's ready sandboxes, ready longest first.
func readySandboxes(p *Pool) []*localSandbox {
	ready, _ := p.eng.Held()
	out := make([]*localSandbox, len(ready))
	for i, sb := range ready {
		out[i] = sb.(*localSandbox)
	}
	return out
}

func TestPoolResize(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 2, MaxSandboxes: 3}, Options{})
	waitFor(t, 2*time.Minute, "2 ready", func() bool { return p.Status().Ready == 2 })
	busy, err := p.Acquire(t.Context(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(0, 1); err != nil {
		t.Fatal(err)
	}
	// Idle sandboxes go; the busy one is left alone.
	waitFor(t, time.Minute, "shrink to the busy sandbox", func() bool {
		st := p.Status()
		return st.Total == 1 && st.Busy == 1
	})
	if r, err := busy.Execute(t.Context(), sandbox.Request{Code: "'still running'"}); err != nil || r.Text != "still running" {
		t.Fatalf("busy sandbox after shrink: %v %+v", err, r)
	}
	p.Release(busy)
	if err := p.Resize(2, 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "grow to 2 ready", func() bool { return p.Status().Ready == 2 })
	if err := p.Resize(3, 1); err == nil {
		t.Error("Resize(3, 1) accepted minReady > maxSandboxes")
	}
}

func TestExecuteSandboxLost(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, Options{})
	sb, err := p.Acquire(t.Context(), "victim")
	if err != nil {
		t.Fatal(err)
	}
	pid := bwrapPids(p)[0]
	errc := make(chan error, 1)
	go func() {
		// The subprocess's unique argument makes the job's start visible on the host.
		_, err := sb.Execute(context.Background(), sandbox.Request{Code: "import subprocess, time\nsubprocess.Popen(['sleep', '61.0101'])\ntime.sleep(60)", Timeout: time.Minute})
		errc <- err
	}()
	// Kill the sandbox once the job is running.
	waitFor(t, time.Minute, "the job to start", func() bool { return hostProcessWithArg("61.0101") != 0 })
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case err := <-errc:
		if !errors.Is(err, sandbox.ErrSandboxLost) {
			t.Errorf("Execute: %v, want ErrSandboxLost", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Execute did not return after its sandbox was killed")
	}
	p.Release(sb)
	if _, err := sb.Execute(t.Context(), sandbox.Request{Code: "1"}); !errors.Is(err, sandbox.ErrSandboxLost) {
		t.Errorf("Execute on a lost sandbox: %v, want ErrSandboxLost", err)
	}
	if r := runJob(t, p, sandbox.Request{Code: "1 + 1"}); r.Text != "2" {
		t.Errorf("job on the replacement: %+v", r.Error)
	}
}

func TestExecuteContextCanceled(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, Options{})
	sb, err := p.Acquire(t.Context(), "cancel")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err = sb.Execute(ctx, sandbox.Request{Code: "import time\ntime.sleep(60)", Timeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sandbox.ErrSandboxLost) {
		t.Errorf("Execute: %v, want the context's error (not ErrSandboxLost)", err)
	}
	p.Release(sb)
	if r := runJob(t, p, sandbox.Request{Code: "1 + 1"}); r.Text != "2" {
		t.Errorf("job after a canceled one: %+v", r.Error)
	}
}

func TestExecuteRequiresClaim(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, Options{})
	sb, err := p.Acquire(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	p.Release(sb)
	if _, err := sb.Execute(t.Context(), sandbox.Request{Code: "1"}); err == nil {
		t.Error("Execute after Release succeeded")
	}
}

func TestCloseKillsEverything(t *testing.T) {
	p, err := NewPool(sandbox.PoolConfig{MinReady: 2, MaxSandboxes: 2}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "2 ready", func() bool { return p.Status().Ready == 2 })
	sb, err := p.Acquire(t.Context(), "busy-at-close")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := sb.Execute(context.Background(), sandbox.Request{Code: "import subprocess, time\nsubprocess.Popen(['sleep', '600.0202'])\ntime.sleep(60)", Timeout: time.Minute})
		errc <- err
	}()
	waitFor(t, time.Minute, "the job's sleep to start", func() bool { return hostProcessWithArg("600.0202") != 0 })
	closeAndCheck(t, p) // asserts no process and no cgroup is left
	if err := <-errc; err == nil {
		t.Error("Execute on a closed pool's sandbox succeeded")
	}
	if _, err := p.Acquire(t.Context(), "late"); !errors.Is(err, sandbox.ErrPoolClosed) {
		t.Errorf("Acquire after Close: %v, want ErrPoolClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSandboxProcessesAreInCgroup checks bwrap is held until it is in its cgroup:
// every process of the sandbox must be counted against its limits (bwrap, the agent,
// its kernel zygote and the spare kernel).
func TestSandboxProcessesAreInCgroup(t *testing.T) {
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, Options{})
	waitFor(t, 2*time.Minute, "1 ready", func() bool { return p.Status().Ready == 1 })
	root := bwrapPids(p)[0]
	id := p.Status().Sandboxes[0].ID
	for _, ctrl := range []string{"memory", "pids", "cpu"} {
		// The tree first, then the cgroup: a process the agent forks in between is in
		// the cgroup but not in an earlier tree, never the other way round. One that
		// exited in between is not checked.
		tree := descendants(root)
		if len(tree) < 4 { // bwrap, the agent, its kernel zygote, the spare kernel
			t.Fatalf("sandbox process tree too small: %v", tree)
		}
		want := "/" + cgroupParent + "/" + id
		for _, pid := range tree {
			// The process's own cgroup file, not the cgroup's procs list: a process
			// that is exiting has left the list while /proc still shows it.
			got, ok := cgroupOf(pid, ctrl)
			if !ok {
				continue // exited since the tree was read
			}
			if got != want {
				t.Errorf("%s: process %d of the sandbox is in cgroup %q, want %q", ctrl, pid, got, want)
			}
		}
	}
}

// cgroupOf is the path of pid's cgroup v1 hierarchy of controller ctrl, as
// /proc/<pid>/cgroup shows it; false once the process is gone.
func cgroupOf(pid int, ctrl string) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", false
	}
	for line := range strings.Lines(string(data)) {
		// "4:memory:/vizops/<id>"; a hierarchy may hold several controllers ("cpu,cpuacct").
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), ctrl) {
			return parts[2], true
		}
	}
	return "", true
}

// descendants returns pid and every process below it.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// TestNetworkEgress checks that Egress really gives the sandbox the host's network
// (loopback included, which is why docs/security.md says to fence it), while the
// abuse tests show None gives none.
func TestNetworkEgress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = c.Write([]byte("hello from the host\n"))
			c.Close()
		}
	}()
	p := newTestPool(t, sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1, Network: sandbox.NetworkEgress}, Options{})
	code := fmt.Sprintf("import socket\ns = socket.create_connection(('127.0.0.1', %d), timeout=10)\ns.recv(100).decode()", ln.Addr().(*net.TCPAddr).Port)
	r := runJob(t, p, sandbox.Request{Code: code})
	if r.Text != "hello from the host\\n" { // the value's repr, its quotes stripped as E2B's server does
		t.Errorf("Egress sandbox could not reach the host: text %q error %+v", r.Text, r.Error)
	}
}
