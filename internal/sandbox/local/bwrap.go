package local

import (
	"encoding/json"
	"path/filepath"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/pyrunner"
)

// The runner and its isolation are shared with the sandbox-agent (package pyrunner).
var (
	runnerSource    = pyrunner.RunnerSource
	chartDataSource = pyrunner.ChartDataSource
	sandboxEnv      = pyrunner.Env
	baseBwrapArgs   = pyrunner.BaseBwrapArgs
)

const mplCacheMount = pyrunner.MPLCacheMount

type (
	runnerConfig = pyrunner.Config
	runnerLimits = pyrunner.Limits
)

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
