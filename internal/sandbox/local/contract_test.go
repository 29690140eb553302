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
func TestPoolContract(t *testing.T) { runContract(t, EngineZygote) }

// TestPoolContractAgent runs the same contract on sandboxes that run the sandbox-agent.
func TestPoolContractAgent(t *testing.T) { runContract(t, EngineAgent) }

func runContract(t *testing.T, engine Engine) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Fatal("the Local backend needs bubblewrap")
	}
	pooltest.Run(t, func(t *testing.T, minReady, maxSandboxes int) pooltest.Fixture {
		// Not t.TempDir: its parent is private, and sandboxes start as nobody when the
		// tests run as root.
		dir, err := os.MkdirTemp("", "vizops-contract-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		starts, fail := filepath.Join(dir, "starts"), filepath.Join(dir, "fail")
		script := filepath.Join(dir, "bwrap")
		// Starts are told from the preflight check by runner.py's results pipe (fd 5),
		// or the agent's re-exec variable.
		body := "#!/bin/sh\n" +
			"if [ -e /proc/self/fd/5 ] || [ \"$" + agent.ReexecEnv + "\" = 1 ]; then\n" +
			"  echo $$ >> " + starts + "\n" +
			"  [ -e " + fail + " ] && exit 1\n" +
			"fi\n" +
			"exec " + bwrap + " \"$@\"\n"
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(starts, nil, 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(starts, 0o666); err != nil { // past the umask
			t.Fatal(err)
		}
		p := newTestPool(t, sandbox.PoolConfig{MinReady: minReady, MaxSandboxes: maxSandboxes}, Options{Bwrap: script, Engine: engine})
		pids := func() []int {
			data, _ := os.ReadFile(starts)
			var out []int
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					out = append(out, pid)
				}
			}
			return out
		}
		return pooltest.Fixture{
			Pool: p,
			Alive: func() int {
				n := 0
				for _, pid := range pids() {
					if processExists(pid) {
						n++
					}
				}
				return n
			},
			Created: func() int { return len(pids()) },
			Calls:   func() int { return len(pids()) }, // a Local pool's only "calls" start processes
			Break: func(id string) {
				p.mu.Lock()
				s := p.all[id]
				p.mu.Unlock()
				if s == nil || s.z == nil {
					t.Fatalf("no started sandbox %s to break", id)
				}
				_ = s.z.cmd.Process.Kill()
			},
			FailCreation: func(on bool) {
				if on {
					if err := os.WriteFile(fail, nil, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				_ = os.Remove(fail)
			},
		}
	}, pooltest.Options{Request: sandbox.Request{Code: "print(1)", Timeout: 30 * time.Second}})
}
