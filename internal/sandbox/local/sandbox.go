package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
	"github.com/vizops/viz-operator/internal/sandbox/pyrunner"
)

// maxCodeBytes bounds Request.Code.
const maxCodeBytes = 512 << 10

// localSandbox is one sandbox of a pool. Its pool-side state is guarded by the pool's lock.
type localSandbox struct {
	id   string
	pool *Pool
	proc *agentProc

	run sync.Mutex // one job at a time

	// Guarded by pool.mu. claimed: between Acquire and Release (the engine holds
	// which sandboxes are ready or busy; this is Execute's check).
	claimed bool
	lost    bool
	// degradedSlot: this sandbox holds one of its Quota's MaxDegraded slots.
	degradedSlot bool
}

func (s *localSandbox) ID() string { return s.id }

// Execute runs one job through the sandbox's agent, in a fresh context deleted after
// it. Failures of the code (exceptions, limits, timeouts) are in the Result, mapped by
// codeinterpreter as for a Pod; an error means the sandbox itself failed (wraps
// sandbox.ErrSandboxLost) or ctx ended, and the sandbox is then discarded.
func (s *localSandbox) Execute(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	s.run.Lock()
	defer s.run.Unlock()
	if err := s.pool.checkClaimed(s); err != nil {
		return nil, err
	}
	if len(req.Code) > maxCodeBytes {
		return nil, fmt.Errorf("the code is %s; the sandbox accepts at most %s", humanBytes(int64(len(req.Code))), humanBytes(maxCodeBytes))
	}
	if err := codeinterpreter.CheckRequest(req); err != nil {
		return nil, err // a bad request: the sandbox is untouched
	}
	r, deleteErr, err := s.proc.client.RunChecked(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			_ = s.pool.lose(s, ctx.Err())
			return nil, fmt.Errorf("execution abandoned: %w", ctx.Err())
		}
		return nil, s.pool.lose(s, err)
	}
	// The job's context (its interpreter, its files) must be gone before the sandbox
	// takes another job: the agent forgets a context before it answers its DELETE (and
	// the next context waits for the kernel's teardown), so a sandbox whose DELETE
	// failed is discarded.
	if deleteErr != nil {
		_ = s.pool.lose(s, fmt.Errorf("the job's context was not deleted: %w", deleteErr))
	}
	return r, nil
}

// agentProc is one running sandbox: bwrap and the sandbox-agent inside it, driven by
// client over the socket in runDir (a host directory removed with the sandbox).
type agentProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	done   chan struct{} // closed when the process has exited and been reaped
	cg     *cgroup       // nil when limits are rlimits only
	stderr *pyrunner.TailBuffer
	client *codeinterpreter.Client
	runDir string

	killOnce sync.Once
}

// enterCgroup finishes a sandbox's start: bwrap has created the namespaces and
// reported its child's pid on info, and is blocked reading block (fd 4). Both
// processes move into the sandbox's cgroup before anything inside can fork; then bwrap
// is let go.
func (z *agentProc) enterCgroup(info io.Reader, block io.Writer) error {
	var started struct {
		ChildPid int `json:"child-pid"`
	}
	if err := json.NewDecoder(info).Decode(&started); err != nil {
		return fmt.Errorf("bwrap did not start the sandbox: %w", err)
	}
	if z.cg != nil {
		for _, pid := range []int{z.cmd.Process.Pid, started.ChildPid} {
			if err := z.cg.add(pid); err != nil {
				return err
			}
		}
	}
	if _, err := block.Write([]byte{1}); err != nil {
		return fmt.Errorf("unblock sandbox: %w", err)
	}
	return nil
}

// fail kills a half-started sandbox and returns err with its stderr for context.
func (z *agentProc) fail(err error) error {
	z.kill()
	if tail := strings.TrimSpace(z.stderr.String()); tail != "" {
		return fmt.Errorf("%w; sandbox stderr: %s", err, tail)
	}
	return err
}

// alive reports whether the process is still running.
func (z *agentProc) alive() bool {
	select {
	case <-z.done:
		return false
	default:
		return true
	}
}

// kill ends the sandbox and every process in it, and removes its cgroup and its host
// directory.
func (z *agentProc) kill() {
	z.killOnce.Do(func() {
		if z.cmd.Process != nil {
			_ = z.cmd.Process.Kill()
			select {
			case <-z.done:
			case <-time.After(5 * time.Second):
			}
		}
		_ = z.cg.remove()
		if z.client != nil {
			z.client.HTTP.CloseIdleConnections()
		}
		if z.runDir != "" {
			_ = os.RemoveAll(z.runDir)
		}
	})
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
