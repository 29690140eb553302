// Package pyrunner holds the Python side of vizops sandboxes, run by the
// sandbox-agent in a Pod and in each Local sandbox alike: the kernel's base (base.py:
// the pre-imported plotting stack, figure capture, the last expression's value, error
// formatting, capabilities and seccomp), the chart-data read-back (chartdata.py), the
// per-context kernel and the kernel zygote that forks kernels (kernel.py), and the
// bubblewrap command line that isolates them on a host.
package pyrunner

import (
	_ "embed"
	"os"
	"strconv"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// ChartDataSource reads back what each captured figure plots (chartdata.py); it comes
// first in KernelSource, which calls it after saving a figure. Tests load it alone.
//
//go:embed chartdata.py
var ChartDataSource string

//go:embed base.py
var baseMain string

//go:embed kernel.py
var kernelMain string

// KernelSource is the sandbox-agent's per-context interpreter: python3 -c
// KernelSource CONFIG_JSON runs one kernel ("kernel": true) or the kernel zygote
// ("zygote": true).
var KernelSource = ChartDataSource + "\n" + baseMain + "\n" + kernelMain

// MPLCacheMount is where a prebuilt matplotlib font cache is found (bound there on a
// host, baked there in the sandbox image); a kernel copies it into MPLCONFIGDIR.
const MPLCacheMount = "/opt/vizops/mplcache"

// Config is a kernel's argv[1] (JSON).
type Config struct {
	Network          bool   `json:"network"`
	PlotlyJS         string `json:"plotly_js"`
	MaxOutputBytes   int    `json:"max_output_bytes"`
	MaxArtifactBytes int64  `json:"max_artifact_bytes"`
	Limits           Limits `json:"limits"`
	ResultsFD        int    `json:"results_fd"`
	SeccompArch      string `json:"seccomp_arch,omitempty"`

	// Kernel runs kernel.py's loop: one kernel.
	Kernel bool `json:"kernel,omitempty"`
	// WorkDir is the code's working directory and FigDir where captured figures are
	// written; empty means the sandbox's /tmp/work and /tmp/.vizops/figures.
	WorkDir string `json:"work_dir,omitempty"`
	FigDir  string `json:"fig_dir,omitempty"`
	// HidePaths are covered, in a kernel that has a mount namespace (and
	// CAP_SYS_ADMIN in its user namespace until it hardens), by an empty read-only
	// tmpfs each, before any code runs: the sandbox-agent's token directory.
	HidePaths []string `json:"hide_paths,omitempty"`
	// PrivateMounts makes a kernel that is PID 1 of its own namespaces mount a /proc
	// of its own and a private /tmp of Limits.ScratchBytes; without a PID namespace
	// the kernel refuses to start. The Local backend's agent sets it.
	PrivateMounts bool `json:"private_mounts,omitempty"`
	// Zygote runs kernel.py's kernel zygote, which forks kernels (the agent's
	// Options.ForkKernels) instead of running one.
	Zygote bool `json:"zygote,omitempty"`
	// Precompiled are cell starts (codeinterpreter.CellDefinitions: the prelude's and
	// the epilogue's function definitions) a kernel compiles once, before it (or the
	// kernel zygote, before it forks) takes a job; an execution whose code starts with
	// one runs the compiled definition and compiles only the rest.
	Precompiled []string `json:"precompiled,omitempty"`
}

// Limits are a kernel's rlimits. Zero means none (the kernel then relies on the
// cgroup of its Pod or Local sandbox).
type Limits struct {
	MemoryBytes  int64 `json:"memory_bytes"`
	Pids         int64 `json:"pids"`
	ScratchBytes int64 `json:"scratch_bytes"`
	FileBytes    int64 `json:"file_bytes"`
}

// Env is the whole environment inside a sandbox: nothing of the operator's (no
// tokens, no kube variables) crosses over.
func Env() []string {
	return []string{
		"PATH=/usr/bin:/bin",
		"HOME=/tmp",
		"LANG=C.UTF-8",
		"MPLBACKEND=Agg",
		"MPLCONFIGDIR=/tmp/.mpl",
		"XDG_CACHE_HOME=/tmp/.cache",
		// One BLAS/OpenMP thread: jobs are small, and threads would eat the pids limit.
		"OPENBLAS_NUM_THREADS=1",
		"OMP_NUM_THREADS=1",
		"MKL_NUM_THREADS=1",
	}
}

// roBinds are host paths the interpreter and its libraries need, bound read-only when
// present. /usr holds Python and every library; the rest is configuration.
var roBinds = []string{
	"/usr",
	"/etc/alternatives", // libblas/liblapack are picked through alternatives on Debian
	"/etc/ld.so.cache",
	"/etc/ld.so.conf",
	"/etc/ld.so.conf.d",
	"/etc/matplotlibrc",
	"/etc/fonts",
	"/etc/python3",
	"/etc/python3.11",
	"/var/cache/fontconfig",
}

// egressBinds are added only when the sandbox may reach the network.
var egressBinds = []string{"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl", "/etc/ca-certificates"}

// BaseBwrapArgs are the isolation flags shared by sandboxes and preflight checks:
// every namespace unshared, read-only system paths, a size-capped tmpfs as the only
// writable place. The caller appends its own binds, "--remount-ro /" and the command.
func BaseBwrapArgs(cfg sandbox.PoolConfig, res sandbox.Resources) []string {
	args := []string{
		"--unshare-all",
		"--die-with-parent",
		"--new-session",
		"--hostname", "vizops-sandbox",
	}
	if cfg.Network == sandbox.NetworkEgress {
		args = append(args, "--share-net")
	}
	// Debian's merged /usr: /bin, /lib* are symlinks into /usr.
	for _, p := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if target, err := os.Readlink(p); err == nil {
			args = append(args, "--symlink", target, p)
		} else if st, err := os.Stat(p); err == nil && st.IsDir() {
			args = append(args, "--ro-bind", p, p)
		}
	}
	binds := roBinds
	if cfg.Network == sandbox.NetworkEgress {
		binds = append(append([]string{}, roBinds...), egressBinds...)
	}
	for _, p := range binds {
		if _, err := os.Stat(p); err == nil {
			args = append(args, "--ro-bind", p, p)
		}
	}
	return append(args,
		"--proc", "/proc",
		"--dev", "/dev",
		"--remount-ro", "/dev",
		// The sandbox's scratch; each kernel of a Local sandbox mounts a private /tmp over it.
		"--size", strconv.FormatInt(res.ScratchBytes, 10), "--tmpfs", "/tmp",
		"--chdir", "/tmp",
	)
}
