package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
	"github.com/vizops/viz-operator/internal/sandbox/pyrunner"
)

// Inside an agent sandbox: where the agent's binary, its socket and token, and its
// contexts live.
const (
	agentBinMount  = "/opt/vizops/sandbox-agent"
	agentRunMount  = "/run/vizops"
	agentSocket    = agentRunMount + "/agent.sock"
	agentTokenFile = agentRunMount + "/token"
	agentWorkDir   = "/work"
)

var agentBin struct {
	once sync.Once
	path string
	err  error
}

// agentBinary is this process's executable, copied once into the cache directory:
// the sandbox user must be able to reach it (a test binary's directory is private),
// and a binary replaced on disk while the manager runs must not change the agent.
func agentBinary(opts Options) (string, error) {
	agentBin.once.Do(func() {
		self, err := os.Executable()
		if err != nil {
			agentBin.err = err
			return
		}
		st, err := os.Stat(self)
		if err != nil {
			agentBin.err = err
			return
		}
		dir := filepath.Join(opts.CacheDir, "agent")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			agentBin.err = err
			return
		}
		_ = os.Chmod(dir, 0o755)
		removeStaleAgentCopies(dir)
		dst := filepath.Join(dir, fmt.Sprintf("sandbox-agent-%d-%d-%d", os.Getpid(), st.Size(), st.ModTime().UnixNano()))
		if err := copyExecutable(self, dst); err != nil {
			agentBin.err = err
			return
		}
		agentBin.path = dst
	})
	if agentBin.err != nil {
		return "", fmt.Errorf("%w: copy this binary for the sandbox-agent: %v", sandbox.ErrUnavailable, agentBin.err)
	}
	return agentBin.path, nil
}

// removeStaleAgentCopies removes the copies of processes that are gone.
func removeStaleAgentCopies(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "sandbox-agent-%d-", &pid); err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func copyExecutable(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := to + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}

// agentArgs is the command line of one sandbox: every namespace, a read-only root, a
// size-capped /tmp, the cgroup (pyrunner.BaseBwrapArgs), plus the agent's binary and a
// directory of the host for its socket and token. bwrap's fd 3 receives its info JSON
// (the sandbox's host pid) and fd 4 blocks the sandbox until the caller has placed it
// in its cgroup, so nothing inside can fork before the limits apply.
func agentArgs(opts Options, cfg sandbox.PoolConfig, res sandbox.Resources, bin, runDir, oom string, rlimits bool) []string {
	args := append(baseBwrapArgs(cfg, res),
		"--info-fd", "3",
		"--block-fd", "4",
		"--ro-bind", filepath.Join(opts.CacheDir, "mpl"), mplCacheMount,
		"--ro-bind", bin, agentBinMount,
		"--bind", runDir, agentRunMount,
		// The contexts' directories, on a scratch of their own: each kernel mounts a
		// private /tmp over the sandbox's (--private-mounts).
		"--size", strconv.FormatInt(res.ScratchBytes, 10), "--tmpfs", agentWorkDir,
	)
	if oom != "" {
		// The agent tells a kernel the OOM killer ended by this counter, as in a Pod.
		target := "/sys/fs/cgroup/memory.events" // where the agent reads it (oomKillCount)
		if filepath.Base(oom) == "memory.oom_control" {
			target = "/sys/fs/cgroup/memory/memory.oom_control"
		}
		args = append(args, "--ro-bind", oom, target)
	}
	args = append(args,
		"--remount-ro", "/",
		"--", agentBinMount,
		"--listen", "unix:"+agentSocket,
		"--token-file", agentTokenFile,
		"--isolation", string(agent.IsolationNone),
		"--work-dir", agentWorkDir,
		"--python", opts.Python,
		"--network", string(cfg.Network),
		"--warm-kernels", "1",
		"--private-mounts",
		"--fork-kernels",
		"--scratch-mib", strconv.FormatInt(max(res.ScratchBytes>>20, 1), 10),
		"--max-contexts", "4",
		"--log-level", "warn",
	)
	if cfg.PlotlyJSURL != "" {
		args = append(args, "--plotly-js-url", cfg.PlotlyJSURL)
	}
	if opts.seccompArch != "" {
		args = append(args, "--seccomp-arch", opts.seccompArch)
	}
	if rlimits {
		// No cgroup enforces memory and processes here: each kernel gets rlimits.
		args = append(args, "--memory-mib", strconv.FormatInt(max(res.MemoryBytes>>20, 1), 10), "--pids", strconv.FormatInt(res.Pids, 10))
	}
	return args
}

// startAgent starts a sandbox and waits until its agent answers /health (its first
// kernel is warm).
func startAgent(ctx context.Context, id string, opts Options, cfg sandbox.PoolConfig, res sandbox.Resources) (*agentProc, error) {
	bin, err := agentBinary(opts)
	if err != nil {
		return nil, err
	}
	runDir, err := os.MkdirTemp("", "vizops-agent-")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", sandbox.ErrUnavailable, err)
	}
	var tok [24]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	if err := os.WriteFile(filepath.Join(runDir, "token"), []byte(token), 0o400); err != nil {
		_ = os.RemoveAll(runDir)
		return nil, err
	}
	if os.Geteuid() == 0 {
		// Only the sandbox's user (and root) reach the socket and the token.
		_ = os.Chown(filepath.Join(runDir, "token"), opts.UID, opts.GID)
		_ = os.Chown(runDir, opts.UID, opts.GID)
	}
	cg, cgErr := newCgroup(opts.CgroupRoot, id, res)
	enforced := cgErr == nil && cg.enforced()["memory"] && cg.enforced()["pids"]

	infoR, infoW, err := os.Pipe()
	if err != nil {
		_ = cg.remove()
		_ = os.RemoveAll(runDir)
		return nil, err
	}
	blockR, blockW, err := os.Pipe()
	if err != nil {
		infoR.Close()
		infoW.Close()
		_ = cg.remove()
		_ = os.RemoveAll(runDir)
		return nil, err
	}
	defer infoR.Close()
	defer blockW.Close()

	cmd := exec.Command(opts.Bwrap, agentArgs(opts, cfg, res, bin, runDir, cg.oomCounter(), !enforced)...)
	cmd.Env = append(sandboxEnv(), agent.ReexecEnv+"=1", "TMPDIR=/tmp")
	cmd.ExtraFiles = []*os.File{infoW, blockR} // fds 3, 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(opts.UID), Gid: uint32(opts.GID), Groups: []uint32{}}
	}
	z := &agentProc{cmd: cmd, exited: make(chan struct{}), done: make(chan struct{}), cg: cg, stderr: pyrunner.NewTailBuffer(16 << 10), runDir: runDir}
	cmd.Stdout, cmd.Stderr = z.stderr, z.stderr
	err = cmd.Start()
	infoW.Close()
	blockR.Close()
	if err != nil {
		_ = cg.remove()
		_ = os.RemoveAll(runDir)
		return nil, fmt.Errorf("start %s: %w", opts.Bwrap, err)
	}
	go func() {
		_ = cmd.Wait()
		close(z.exited)
		close(z.done)
	}()
	if err := z.enterCgroup(infoR, blockW); err != nil {
		return nil, z.fail(err)
	}

	sock := filepath.Join(runDir, "agent.sock")
	z.client = &codeinterpreter.Client{
		BaseURL:     "http://sandbox",
		AccessToken: token,
		HTTP: &http.Client{Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			ResponseHeaderTimeout: opts.StartTimeout, // a context may wait for its interpreter
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       time.Minute,
			DisableCompression:    true,
		}},
		SandboxID:        id,
		MaxOutputBytes:   opts.MaxOutputBytes,
		MaxArtifacts:     opts.MaxArtifacts,
		MaxArtifactBytes: opts.MaxArtifactBytes,
		DefaultTimeout:   opts.DefaultTimeout,
	}
	deadline := time.NewTimer(opts.StartTimeout)
	defer deadline.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		err := z.client.Health(hctx)
		cancel()
		if err == nil {
			return z, nil
		}
		var se *codeinterpreter.StatusError
		if errors.As(err, &se) && se.Code == http.StatusInternalServerError {
			// The agent could not start a kernel and says why (a kernel without a
			// seccomp filter for this machine refuses to start): no use waiting.
			return nil, z.fail(fmt.Errorf("the sandbox-agent cannot start a kernel: %s", se.Body))
		}
		select {
		case <-z.exited:
			return nil, z.fail(errors.New("sandbox exited during start"))
		case <-deadline.C:
			return nil, z.fail(fmt.Errorf("the sandbox-agent was not ready after %s: %v", opts.StartTimeout, err))
		case <-ctx.Done():
			return nil, z.fail(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
