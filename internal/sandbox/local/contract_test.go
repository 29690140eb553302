package local

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
	"github.com/vizops/viz-operator/internal/sandbox/pooltest"
)

// TestPoolContract runs the warm-pool contract against real bubblewrap sandboxes.
// bwrap is wrapped by a script that records each sandbox start (its pid, which
// becomes bwrap's) and fails starts while a marker file exists: the provider's view.
func TestPoolContract(t *testing.T) { runContract(t) }

func runContract(t *testing.T) {
	pooltest.Run(t, func(t *testing.T, minReady, maxSandboxes int) pooltest.Fixture {
		w := newBwrapWrapper(t)
		p := newTestPool(t, sandbox.PoolConfig{MinReady: minReady, MaxSandboxes: maxSandboxes}, Options{Bwrap: w.script})
		return pooltest.Fixture{
			Pool: p,
			Alive: func() int {
				n := 0
				for _, pid := range w.pids() {
					if processExists(pid) {
						n++
					}
				}
				return n
			},
			Created: func() int { return len(w.pids()) },
			Calls:   func() int { return len(w.pids()) }, // a Local pool's only "calls" start processes
			Break: func(id string) {
				p.mu.Lock()
				s := p.all[id]
				p.mu.Unlock()
				if s == nil || s.proc == nil {
					t.Fatalf("no started sandbox %s to break", id)
				}
				_ = s.proc.cmd.Process.Kill()
			},
			FailCreation: w.failStarts,
		}
	}, pooltest.Options{Request: sandbox.Request{Code: "print(1)", Timeout: 30 * time.Second}})
}

// bwrapWrapper is a script standing in for bwrap: it records each sandbox start (its
// pid, which becomes bwrap's) and fails starts while a marker file exists.
type bwrapWrapper struct {
	t                    testing.TB
	script, starts, fail string
}

func newBwrapWrapper(t testing.TB) *bwrapWrapper {
	t.Helper()
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Fatal("the Local backend needs bubblewrap")
	}
	// Not t.TempDir: its parent is private, and sandboxes start as nobody when the
	// tests run as root.
	dir, err := os.MkdirTemp("", "vizops-contract-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	w := &bwrapWrapper{t: t, script: filepath.Join(dir, "bwrap"), starts: filepath.Join(dir, "starts"), fail: filepath.Join(dir, "fail")}
	// Starts are told from the preflight check by the agent's re-exec variable.
	body := "#!/bin/sh\n" +
		"if [ \"$" + agent.ReexecEnv + "\" = 1 ]; then\n" +
		"  echo $$ >> " + w.starts + "\n" +
		"  [ -e " + w.fail + " ] && exit 1\n" +
		"fi\n" +
		"exec " + bwrap + " \"$@\"\n"
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.starts, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(w.starts, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	return w
}

// pids are the sandbox starts so far.
func (w *bwrapWrapper) pids() []int {
	data, _ := os.ReadFile(w.starts)
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// failStarts makes every later sandbox start fail (true), or work again (false).
func (w *bwrapWrapper) failStarts(on bool) {
	if on {
		if err := os.WriteFile(w.fail, nil, 0o644); err != nil {
			w.t.Fatal(err)
		}
		return
	}
	_ = os.Remove(w.fail)
}
