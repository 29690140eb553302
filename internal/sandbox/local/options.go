// Package local is the Local sandbox backend: each sandbox is a bubblewrap container
// running the sandbox-agent (the server of a sandbox Pod, this process's own binary
// re-executed: agent.RunIfReexec), driven by package codeinterpreter over a Unix
// socket. Each job runs in a fresh context: a kernel forked ahead from the agent's
// pre-imported kernel zygote, in namespaces of its own, seccomp-filtered, deleted after
// the job. Limits come from a cgroup (v1 or v2: memory, pids, cpu) with rlimits as the
// fallback.
package local

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Options are the Local backend's own settings. Every zero value has a sensible default.
type Options struct {
	// Python is the interpreter inside the sandbox. Default /usr/bin/python3 (Debian's,
	// which has matplotlib, numpy, pandas, seaborn and plotly).
	Python string
	// Bwrap is the bubblewrap binary. Default "bwrap" from PATH.
	Bwrap string
	// CgroupRoot is where cgroup v1 controllers are mounted. Default /sys/fs/cgroup;
	// "none" disables cgroups (rlimits remain).
	CgroupRoot string
	// UID and GID the sandbox runs as on the host when the operator runs as root.
	// Default 65534 (nobody): an escape from the namespaces lands as nobody, not root.
	UID, GID int
	// CacheDir holds the prebuilt matplotlib font cache that sandboxes copy at start
	// (without it every sandbox spends seconds rebuilding it). Default
	// $TMPDIR/vizops-local-cache.
	CacheDir string
	// DefaultTimeout applies when a Request has none. Default
	// sandbox.DefaultLimits.Timeout (30s).
	DefaultTimeout time.Duration
	// MaxOutputBytes caps each of stdout, stderr and the last-expression text.
	// Default sandbox.DefaultLimits.MaxOutputBytes (1 MiB).
	MaxOutputBytes int
	// MaxArtifacts and MaxArtifactBytes cap the number and total size of artifacts.
	// Defaults sandbox.DefaultLimits' (32 and 32 MiB).
	MaxArtifacts     int
	MaxArtifactBytes int64
	// StartTimeout bounds a sandbox's start (imports included). Default
	// sandbox.DefaultLimits.StartTimeout (60s).
	StartTimeout time.Duration
	// IdleTTL is how long ready sandboxes beyond MinReady are kept after a burst
	// before they are destroyed. Default 2m.
	IdleTTL time.Duration
	// Quota, shared by the pools of one manager, caps their warm sandboxes and total
	// sandbox memory (a pool that would go over is refused, sandbox.ErrQuotaExceeded)
	// and their sandboxes with degraded limits. Nil means no caps.
	Quota *Quota

	// seccompArch, when set, replaces the machine name the kernels pick their seccomp
	// filter by (tests use it to check the fail-closed path).
	seccompArch string
}

// EngineAgent names the sandbox-agent, what runs in every Local sandbox: the value the
// manager's deprecated --local-engine flag still accepts.
const EngineAgent = "agent"

// CheckEngine checks a value of the deprecated --local-engine flag: "agent" (or empty)
// is what every sandbox runs. The zygote engine (runner.py) was removed in issue 22: a
// deployment that still asks for it is told so, rather than run something else silently.
func CheckEngine(name string) error {
	switch name {
	case "", EngineAgent:
		return nil
	case "zygote":
		return fmt.Errorf("--local-engine=zygote: the zygote engine was removed; every Local sandbox runs the sandbox-agent (docs/sandbox-agent.md). Drop the flag")
	}
	return fmt.Errorf("--local-engine=%q: unknown engine; every Local sandbox runs the sandbox-agent, so the flag is deprecated and accepts only %q. Drop the flag", name, EngineAgent)
}

// Resource defaults applied when PoolConfig.Resources leaves a field zero.
const (
	DefaultMemoryBytes  = 1 << 30
	DefaultPids         = 128
	DefaultCPUMillis    = 1000
	DefaultScratchBytes = 128 << 20
)

func (o Options) withDefaults() Options {
	if o.Python == "" {
		o.Python = "/usr/bin/python3"
	}
	if o.Bwrap == "" {
		o.Bwrap = "bwrap"
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = "/sys/fs/cgroup"
	}
	if o.UID == 0 {
		o.UID = 65534
	}
	if o.GID == 0 {
		o.GID = 65534
	}
	if os.Geteuid() != 0 {
		// Not root: bwrap runs as ourselves (unprivileged user namespaces).
		o.UID, o.GID = os.Geteuid(), os.Getegid()
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(os.TempDir(), "vizops-local-cache")
	}
	if o.DefaultTimeout == 0 {
		o.DefaultTimeout = sandbox.DefaultLimits.Timeout
	}
	if o.MaxOutputBytes == 0 {
		o.MaxOutputBytes = sandbox.DefaultLimits.MaxOutputBytes
	}
	if o.MaxArtifacts == 0 {
		o.MaxArtifacts = sandbox.DefaultLimits.MaxArtifacts
	}
	if o.MaxArtifactBytes == 0 {
		o.MaxArtifactBytes = sandbox.DefaultLimits.MaxArtifactBytes
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = sandbox.DefaultLimits.StartTimeout
	}
	if o.IdleTTL == 0 {
		o.IdleTTL = 2 * time.Minute
	}
	return o
}

func resourcesWithDefaults(r sandbox.Resources) sandbox.Resources {
	if r.MemoryBytes == 0 {
		r.MemoryBytes = DefaultMemoryBytes
	}
	if r.Pids == 0 {
		r.Pids = DefaultPids
	}
	if r.CPUMillis == 0 {
		r.CPUMillis = DefaultCPUMillis
	}
	if r.ScratchBytes == 0 {
		r.ScratchBytes = DefaultScratchBytes
	}
	return r
}
