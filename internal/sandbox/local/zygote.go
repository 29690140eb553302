package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
	"github.com/vizops/viz-operator/internal/sandbox/pyrunner"
)

// zygote is one running sandbox: bwrap and the runner inside it, with the control
// channel on its stdin/stdout.
type zygote struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	frames chan []byte   // results, and the runner's ready/fatal/lost notices
	exited chan struct{} // closed when the notice stream ends: the runner is gone
	done   chan struct{} // closed when the process has exited and been reaped
	cg     *cgroup       // nil when limits are rlimits only
	stderr *pyrunner.TailBuffer
	// The runner's next job process is forked and warm when the runner's last
	// "armed" notice counted as many jobs as we have sent.
	armedAfter atomic.Int64
	sent       atomic.Int64
	warm       atomic.Bool // the runner has imported the whole stack (pandas, seaborn, plotly)

	// EngineAgent: the agent's client (over the socket in runDir, a host directory
	// removed with the sandbox). frames and stdin are then unused.
	client *codeinterpreter.Client
	runDir string

	killOnce sync.Once
}

// startZygote starts a sandbox and waits until its runner reports ready.
func startZygote(ctx context.Context, id string, opts Options, cfg sandbox.PoolConfig, res sandbox.Resources) (*zygote, error) {
	cg, cgErr := newCgroup(opts.CgroupRoot, id, res)
	rc := runnerConfig{
		Network: cfg.Network == sandbox.NetworkEgress,
		// rlimits stand in unless the group enforces both memory and processes.
		Cgroup:           cgErr == nil && cg.enforced()["memory"] && cg.enforced()["pids"],
		PlotlyJS:         cfg.PlotlyJSURL,
		MaxOutputBytes:   opts.MaxOutputBytes,
		MaxArtifacts:     opts.MaxArtifacts,
		MaxArtifactBytes: opts.MaxArtifactBytes,
		GraceSeconds:     opts.GraceTime.Seconds(),
		ResultsFD:        5,
		SeccompArch:      opts.seccompArch,
		Limits: runnerLimits{
			MemoryBytes:  res.MemoryBytes,
			Pids:         res.Pids,
			ScratchBytes: res.ScratchBytes,
			FileBytes:    res.ScratchBytes,
		},
	}
	infoR, infoW, err := os.Pipe()
	if err != nil {
		_ = cg.remove()
		return nil, err
	}
	blockR, blockW, err := os.Pipe()
	if err != nil {
		infoR.Close()
		infoW.Close()
		_ = cg.remove()
		return nil, err
	}
	defer infoR.Close()
	defer blockW.Close()

	cmd := exec.Command(opts.Bwrap, bwrapArgs(opts, cfg, res, rc)...)
	cmd.Env = sandboxEnv()
	// Results come on their own pipe, written by the job's supervisor directly.
	resultsR, resultsW, err := os.Pipe()
	if err != nil {
		infoR.Close()
		infoW.Close()
		blockR.Close()
		blockW.Close()
		_ = cg.remove()
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{infoW, blockR, resultsW} // fds 3, 4, 5
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(opts.UID), Gid: uint32(opts.GID), Groups: []uint32{}}
	}
	z := &zygote{cmd: cmd, frames: make(chan []byte, 8), exited: make(chan struct{}), done: make(chan struct{}), cg: cg, stderr: pyrunner.NewTailBuffer(16 << 10)}
	resultsHandedOff := false
	defer func() {
		if !resultsHandedOff {
			resultsR.Close()
		}
	}()
	cmd.Stderr = z.stderr
	// A plain pipe rather than StdoutPipe: Wait must not close it before the last
	// frame (say, a fatal message just before exit) has been read.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, z.fail(err)
	}
	handedOff := false
	defer func() {
		if !handedOff {
			stdout.Close()
		}
	}()
	cmd.Stdout = stdoutW
	if z.stdin, err = cmd.StdinPipe(); err != nil {
		stdoutW.Close()
		return nil, z.fail(err)
	}
	err = cmd.Start()
	infoW.Close()
	blockR.Close()
	stdoutW.Close()
	resultsW.Close()
	if err != nil {
		_ = cg.remove()
		return nil, fmt.Errorf("start %s: %w", opts.Bwrap, err)
	}
	go func() {
		_ = cmd.Wait()
		close(z.done)
	}()

	// bwrap has created the namespaces and is blocked on fd 4: move it and its child
	// into the cgroup before anything inside can fork.
	if err := z.enterCgroup(infoR, blockW); err != nil {
		return nil, z.fail(err)
	}
	go z.readFrames(stdout, 64<<10, true)
	go z.readFrames(resultsR, frameLimit(opts), false)
	handedOff, resultsHandedOff = true, true

	timer := time.NewTimer(opts.StartTimeout)
	defer timer.Stop()
	select {
	case <-z.exited:
		return nil, z.fail(errors.New("sandbox exited during start"))
	case frame := <-z.frames:
		var msg struct{ Type, Message string }
		if err := json.Unmarshal(frame, &msg); err != nil || msg.Type != "ready" {
			return nil, z.fail(fmt.Errorf("sandbox failed to start: %s", msg.Message))
		}
		return z, nil
	case <-timer.C:
		return nil, z.fail(fmt.Errorf("sandbox not ready after %s", opts.StartTimeout))
	case <-ctx.Done():
		return nil, z.fail(ctx.Err())
	}
}

// fail kills a half-started sandbox and returns err with its stderr for context.
// enterCgroup finishes a sandbox's start: bwrap has created the namespaces and
// reported its child's pid on info, and is blocked reading block (fd 4). Both
// processes move into the sandbox's cgroup before anything inside can fork; then bwrap
// is let go.
func (z *zygote) enterCgroup(info io.Reader, block io.Writer) error {
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

func (z *zygote) fail(err error) error {
	z.kill()
	if tail := strings.TrimSpace(z.stderr.String()); tail != "" {
		return fmt.Errorf("%w; sandbox stderr: %s", err, tail)
	}
	return err
}

func frameLimit(opts Options) int {
	return int(opts.MaxArtifactBytes)*2 + opts.MaxOutputBytes*8 + 4<<20
}

// Notices from the runner, in json.dumps form: its next job process is warm
// (armed, with the number of jobs taken so far); it has finished importing the whole
// stack (warm).
var (
	armedPrefix = []byte(`{"type": "armed", "jobs": `)
	warmFrame   = []byte(`{"type": "warm"}`)
)

// armed reports whether a job sent now starts at once on a warm job process.
func (z *zygote) armed() bool { return z.armedAfter.Load() == z.sent.Load() }

// readFrames forwards frames from one of the runner's streams until it ends. The
// notice stream's end means the runner is gone: it closes z.exited.
func (z *zygote) readFrames(r *os.File, limit int, notices bool) {
	defer r.Close()
	if notices {
		defer close(z.exited)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		buf, err := pyrunner.ReadFrame(br, limit)
		if errors.Is(err, pyrunner.ErrFrameTooLarge) {
			z.kill() // a runner that breaks the protocol is not trusted further
			return
		}
		if err != nil {
			return
		}
		switch {
		case notices && bytes.HasPrefix(buf, armedPrefix):
			var msg struct{ Jobs int64 }
			if json.Unmarshal(buf, &msg) == nil {
				z.armedAfter.Store(msg.Jobs)
			}
		case notices && bytes.Equal(buf, warmFrame):
			z.warm.Store(true)
		case notices:
			// ready, fatal or lost: never block the stream that signals the exit.
			select {
			case z.frames <- buf:
			default:
			}
		default:
			select {
			case z.frames <- buf:
			case <-z.exited:
				return
			}
		}
	}
}

func (z *zygote) send(v any) error {
	z.sent.Add(1)
	return pyrunner.WriteFrame(z.stdin, v)
}

// alive reports whether the process is still running.
func (z *zygote) alive() bool {
	select {
	case <-z.done:
		return false
	default:
		return true
	}
}

// kill ends the sandbox and every process in it, and removes its cgroup.
func (z *zygote) kill() {
	z.killOnce.Do(func() {
		if z.cmd.Process != nil {
			_ = z.cmd.Process.Kill()
		}
		if z.stdin != nil {
			_ = z.stdin.Close()
		}
		if z.cmd.Process != nil {
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
