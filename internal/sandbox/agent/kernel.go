package agent

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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
	"github.com/vizops/viz-operator/internal/sandbox/pyrunner"
)

// kernel is one running interpreter (kernel.py): requests go to its stdin, messages
// come on fd 3, and what its subprocesses write on fds 1 and 2 arrives on pipes.
type kernel struct {
	id     string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	frames chan []byte   // messages of fd 3, in order
	exited chan struct{} // closed when fd 3 ends: the kernel is gone
	done   chan struct{} // closed when the process has been reaped
	cwd    string        // the working directory as the code sees it
	pid    int           // the process to kill (with its process group)
	// status is how the process ended, once done is closed.
	status func() (syscall.WaitStatus, bool)
	sweep  bool // kill the orphans left behind when it ends (Options.KillOrphans)
	// oomKills is the container's OOM-kill count when the kernel started (-1: unknown).
	oomKills int64
	// partial: forked before its zygote had imported the whole plotting stack (the
	// first kernel of a new agent); it imports what its code uses.
	partial bool

	mu   sync.Mutex
	sink func(kind, text string) // where raw fd 1/2 output goes during an execution

	killOnce sync.Once
}

// frameLimit bounds one message from a kernel (a figure is one message).
func frameLimit(o Options) int { return int(o.MaxFigureBytes)*2 + o.MaxOutputBytes*8 + 4<<20 }

// kernelDirs are a kernel's host directories with IsolationNone.
func kernelDirs(o Options, id string) (work, figs, home string) {
	return filepath.Join(o.WorkDir, "contexts", id), filepath.Join(o.WorkDir, "figures", id), filepath.Join(o.WorkDir, "home", id)
}

// kernelConfig is the runner configuration every kernel of o shares.
func kernelConfig(o Options) pyrunner.Config {
	cfg := pyrunner.Config{
		Kernel:           true,
		Network:          o.Network == sandbox.NetworkEgress,
		PlotlyJS:         o.PlotlyJSURL,
		MaxOutputBytes:   o.MaxOutputBytes,
		MaxArtifactBytes: o.MaxFigureBytes,
		ResultsFD:        3,
		SeccompArch:      o.SeccompArch,
		Limits: pyrunner.Limits{
			MemoryBytes: o.Resources.MemoryBytes,
			Pids:        o.Resources.Pids,
		},
		Precompiled: codeinterpreter.CellDefinitions,
	}
	if o.Isolation == IsolationNone && o.PrivateMounts {
		cfg.PrivateMounts = true
		cfg.Limits.ScratchBytes = o.Resources.ScratchBytes
	}
	return cfg
}

// kernelEnv is an IsolationNone kernel's environment, its home directory home.
func kernelEnv(home string) []string {
	env := pyrunner.Env()
	for i, kv := range env {
		switch {
		case strings.HasPrefix(kv, "HOME="):
			env[i] = "HOME=" + home
		case strings.HasPrefix(kv, "MPLCONFIGDIR="):
			env[i] = "MPLCONFIGDIR=" + filepath.Join(home, ".mpl")
		case strings.HasPrefix(kv, "XDG_CACHE_HOME="):
			env[i] = "XDG_CACHE_HOME=" + filepath.Join(home, ".cache")
		}
	}
	return env
}

// startKernel starts a kernel and waits until it is ready.
func startKernel(ctx context.Context, o Options, id string) (*kernel, error) {
	return launchKernel(ctx, o, id, nil)
}

// launchKernel starts a kernel as a new interpreter, or forked from z (IsolationNone
// only) when z is set, and waits until it is ready.
func launchKernel(ctx context.Context, o Options, id string, z *kernelZygote) (*kernel, error) {
	cfg := kernelConfig(o)
	env := pyrunner.Env()
	var cmd *exec.Cmd
	k := &kernel{id: id, frames: make(chan []byte, 16), exited: make(chan struct{}), done: make(chan struct{}), sweep: o.KillOrphans}
	switch o.Isolation {
	case IsolationBwrap:
		cfg.Limits.FileBytes = o.Resources.ScratchBytes
		k.cwd = "/tmp/work"
		args := pyrunner.BaseBwrapArgs(sandbox.PoolConfig{Network: o.Network}, o.Resources)
		if st, err := os.Stat(filepath.Join(o.WorkDir, "mpl")); err == nil && st.IsDir() {
			args = append(args, "--ro-bind", filepath.Join(o.WorkDir, "mpl"), pyrunner.MPLCacheMount)
		}
		cfgJSON, _ := json.Marshal(cfg)
		args = append(args, "--remount-ro", "/", "--", o.Python, "-I", "-B", "-c", pyrunner.KernelSource, string(cfgJSON))
		cmd = exec.Command(o.Bwrap, args...)
	default:
		work, figs, home := kernelDirs(o, id)
		for _, d := range []string{work, figs, home} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, fmt.Errorf("create %s: %w", d, err)
			}
			if os.Geteuid() == 0 {
				_ = os.Chown(d, o.UID, o.GID)
			}
		}
		cfg.WorkDir, cfg.FigDir, k.cwd = work, figs, work
		env = kernelEnv(home)
		if z != nil || (!o.NoPIDNamespace && pidNamespaces(o)) {
			cfg.HidePaths = o.HidePaths // the kernel has a mount namespace to cover them in
		}
		if z == nil {
			cfgJSON, _ := json.Marshal(cfg)
			cmd = exec.Command(o.Python, "-I", "-B", "-c", pyrunner.KernelSource, string(cfgJSON))
			cmd.Dir = work
		}
	}
	if z != nil {
		return z.fork(ctx, o, k, cfg, env)
	}
	cmd.Env = env
	if o.Isolation == IsolationNone {
		// With a PID namespace the kernel is PID 1 of its own: everything it starts
		// ends with it (procs.go).
		cmd.SysProcAttr = kernelAttr(o, !o.NoPIDNamespace && pidNamespaces(o))
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	}
	k.cmd = cmd

	resR, resW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		resR.Close()
		resW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		resR.Close()
		resW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{resW}
	cmd.Stdout, cmd.Stderr = outW, errW
	stdin, err := cmd.StdinPipe()
	if err == nil {
		k.stdin = stdin
		k.oomKills = oomKillCount()
		err = cmd.Start()
	}
	resW.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		resR.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("%w: start the kernel: %w", sandbox.ErrUnavailable, err)
	}
	pid := cmd.Process.Pid
	k.pid = pid
	k.status = func() (syscall.WaitStatus, bool) {
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		return ws, ok
	}
	kernelPIDs.Store(pid, struct{}{})
	go func() {
		_ = cmd.Wait()
		kernelPIDs.Delete(pid)
		close(k.done)
	}()
	return k.awaitReady(ctx, o, resR, outR, errR)
}

// awaitReady reads a started kernel's channels and waits for its ready message.
func (k *kernel) awaitReady(ctx context.Context, o Options, resR, outR, errR *os.File) (*kernel, error) {
	diag := pyrunner.NewTailBuffer(8 << 10)
	go k.readFrames(resR, frameLimit(o))
	go k.forward(outR, "stdout", nil)
	go k.forward(errR, "stderr", diag)

	timer := time.NewTimer(o.StartTimeout)
	defer timer.Stop()
	fail := func(err error) (*kernel, error) {
		k.kill()
		if tail := strings.TrimSpace(diag.String()); tail != "" {
			err = fmt.Errorf("%w; kernel stderr: %s", err, tail)
		}
		return nil, err
	}
	select {
	case frame, ok := <-k.frames:
		if !ok {
			return fail(errors.New("the kernel exited during start"))
		}
		var msg struct{ Type, Message string }
		if err := json.Unmarshal(frame, &msg); err != nil || msg.Type != "ready" {
			return fail(fmt.Errorf("the kernel failed to start: %s", msg.Message))
		}
		return k, nil
	case <-k.exited:
		return fail(errors.New("the kernel exited during start"))
	case <-timer.C:
		return fail(fmt.Errorf("the kernel was not ready after %s", o.StartTimeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// readFrames forwards the kernel's messages until fd 3 ends.
func (k *kernel) readFrames(r *os.File, limit int) {
	defer r.Close()
	defer close(k.exited)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		buf, err := pyrunner.ReadFrame(br, limit)
		if errors.Is(err, pyrunner.ErrFrameTooLarge) {
			k.kill() // a kernel that breaks the protocol is not trusted further
			return
		}
		if err != nil {
			return
		}
		select {
		case k.frames <- buf:
		case <-k.done:
			return
		}
	}
}

// outputMark is what kernel.py writes on fds 1 and 2 just before it is ready: what
// came before it (import warnings) is the kernel's, not an execution's.
var outputMark = []byte("\x00vizops-kernel-ready\x00")

// forward hands what subprocesses write on fds 1 and 2 to the running execution.
func (k *kernel) forward(r *os.File, kind string, diag *pyrunner.TailBuffer) {
	defer r.Close()
	buf := make([]byte, 32<<10)
	var pending []byte // output before the mark, while looking for it
	marked := false
	for {
		n, err := r.Read(buf)
		chunk := buf[:n]
		if !marked && n > 0 {
			pending = append(pending, chunk...)
			i := bytes.Index(pending, outputMark)
			if i < 0 {
				if keep := len(outputMark) - 1; len(pending) > keep {
					if diag != nil {
						_, _ = diag.Write(pending[:len(pending)-keep])
					}
					pending = append([]byte(nil), pending[len(pending)-keep:]...)
				}
				chunk = nil
			} else {
				if diag != nil {
					_, _ = diag.Write(pending[:i])
				}
				chunk, marked, pending = pending[i+len(outputMark):], true, nil
			}
		}
		if len(chunk) > 0 {
			n := len(chunk)
			text := string(bytes.ToValidUTF8(chunk[:n], []byte("\uFFFD")))
			k.mu.Lock()
			sink := k.sink
			k.mu.Unlock()
			if sink != nil {
				sink(kind, text)
			} else if diag != nil {
				_, _ = diag.Write(chunk)
			}
		}
		if err != nil {
			return
		}
	}
}

func (k *kernel) setSink(f func(kind, text string)) {
	k.mu.Lock()
	k.sink = f
	k.mu.Unlock()
}

func (k *kernel) send(v any) error {
	return pyrunner.WriteFrame(k.stdin, v)
}

func (k *kernel) alive() bool {
	select {
	case <-k.exited:
		return false
	default:
		return true
	}
}

// exitStatus describes how the kernel ended, once it has, and names it in sandbox's
// vocabulary: ErrNameProcessExited for an exit (or a kernel that left the protocol),
// ErrNameMemoryLimitExceeded, ErrNameCPUTimeLimitExceeded or ErrNameKilled for a
// signal.
func (k *kernel) exitStatus() (status, name string) {
	select {
	case <-k.done:
	case <-time.After(2 * time.Second):
		return "it stopped answering", sandbox.ErrNameProcessExited
	}
	ws, ok := k.status()
	switch {
	case !ok:
		return "it exited", sandbox.ErrNameProcessExited
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL && k.oomKills >= 0 && oomKillCount() > k.oomKills:
		// In a Pod the kernel, not the container, is what the OOM killer picks (its
		// oom_score_adj is 1000), so the kubelet reports nothing: say it here.
		return statusOOMKilled, sandbox.ErrNameMemoryLimitExceeded
	case ws.Signaled() && ws.Signal() == syscall.SIGXCPU:
		return statusCPUTime, sandbox.ErrNameCPUTimeLimitExceeded
	case ws.Signaled():
		return fmt.Sprintf("it was killed by signal %d (%s), for example for using more memory than allowed", ws.Signal(), ws.Signal()), sandbox.ErrNameKilled
	default:
		return fmt.Sprintf("it exited with status %d", ws.ExitStatus()), sandbox.ErrNameProcessExited
	}
}

// statusOOMKilled is exitStatus for a kernel the OOM killer ended.
const statusOOMKilled = "the kernel's OOM killer ended it: the sandbox reached its memory limit"

// statusCPUTime is exitStatus for a kernel its RLIMIT_CPU ended (SIGXCPU: code that
// took the kernel's handler away).
const statusCPUTime = "it was stopped for using more CPU time than its execution's limit (SIGXCPU)"

// signal sends the kernel and its process group SIGKILL, without waiting.
func (k *kernel) signal() {
	if k.pid > 0 {
		_ = syscall.Kill(-k.pid, syscall.SIGKILL)
		_ = syscall.Kill(k.pid, syscall.SIGKILL)
	}
}

// kill ends the kernel and every process it started, and waits for it.
func (k *kernel) kill() {
	k.killOnce.Do(func() {
		k.signal()
		if k.stdin != nil {
			_ = k.stdin.Close()
		}
		if k.pid > 0 {
			select {
			case <-k.done:
			case <-time.After(5 * time.Second):
			}
		}
		if k.sweep {
			sweepOrphans()
		}
	})
}

// oomKillCount is how many processes the OOM killer has ended in this container's
// memory cgroup (cgroup v2 memory.events, or v1 memory.oom_control, both "oom_kill N";
// v1 needs kernel 4.13+), or -1 when neither can be read (bwrap on a host).
func oomKillCount() int64 {
	return readOOMKills([]string{"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"})
}

func readOOMKills(paths []string) int64 {
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if n, ok := strings.CutPrefix(line, "oom_kill "); ok {
				if v, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64); err == nil {
					return v
				}
			}
		}
	}
	return -1
}
