package local

import (
	_ "embed"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/vizops/viz-operator/internal/sandbox"
)

//go:embed runner.py
var runnerMain string

// chartDataSource reads back what each captured figure plots (chartdata.py); it is
// prepended to the runner, which calls it after saving a figure.
//
//go:embed chartdata.py
var chartDataSource string

// runnerSource is the one script the sandbox's python3 runs (-c).
var runnerSource = chartDataSource + "\n" + runnerMain

// mplCacheMount is where the prebuilt matplotlib cache appears inside the sandbox.
const mplCacheMount = "/opt/vizops/mplcache"

// runnerConfig is runner.py's argv[1].
type runnerConfig struct {
	Network          bool         `json:"network"`
	Cgroup           bool         `json:"cgroup"`
	PlotlyJS         string       `json:"plotly_js"`
	MaxOutputBytes   int          `json:"max_output_bytes"`
	MaxArtifacts     int          `json:"max_artifacts"`
	MaxArtifactBytes int64        `json:"max_artifact_bytes"`
	GraceSeconds     float64      `json:"grace_seconds"`
	Limits           runnerLimits `json:"limits"`
	ResultsFD        int          `json:"results_fd"`
	SeccompArch      string       `json:"seccomp_arch,omitempty"`
}

type runnerLimits struct {
	MemoryBytes  int64 `json:"memory_bytes"`
	Pids         int64 `json:"pids"`
	ScratchBytes int64 `json:"scratch_bytes"`
	FileBytes    int64 `json:"file_bytes"`
}

// sandboxEnv is the whole environment inside the sandbox: nothing of the operator's
// (no tokens, no kube variables) crosses over.
func sandboxEnv() []string {
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

// baseBwrapArgs are the isolation flags shared by sandboxes and the preflight check:
// every namespace unshared, read-only system paths, a size-capped tmpfs as the only
// writable place. The caller appends its own binds, "--remount-ro /" and the command.
func baseBwrapArgs(cfg sandbox.PoolConfig, res sandbox.Resources) []string {
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
		// The zygote's own scratch; each job mounts a fresh one over it.
		"--size", itoa64(res.ScratchBytes), "--tmpfs", "/tmp",
		"--chdir", "/tmp",
	)
}

// bwrapArgs builds the command line of one sandbox. Fd 3 receives bwrap's info JSON
// (the sandbox's host pid) and fd 4 blocks the sandbox until the caller has placed it
// in its cgroup, so nothing inside can fork before the limits apply.
func bwrapArgs(opts Options, cfg sandbox.PoolConfig, res sandbox.Resources, rc runnerConfig) []string {
	args := append(baseBwrapArgs(cfg, res),
		"--info-fd", "3",
		"--block-fd", "4",
		"--ro-bind", filepath.Join(opts.CacheDir, "mpl"), mplCacheMount,
		"--remount-ro", "/",
	)
	cfgJSON, _ := json.Marshal(rc)
	return append(args, "--", opts.Python, "-I", "-B", "-c", runnerSource, string(cfgJSON))
}
