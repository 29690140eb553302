package local

import "github.com/vizops/viz-operator/internal/sandbox/pyrunner"

// The sandbox's environment and isolation are shared with the sandbox-agent's own
// (package pyrunner).
var (
	sandboxEnv    = pyrunner.Env
	baseBwrapArgs = pyrunner.BaseBwrapArgs
)

const mplCacheMount = pyrunner.MPLCacheMount
