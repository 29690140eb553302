package sandbox

import "time"

// Limits bound one job's time and what it may send back. Every backend (and the
// sandbox-agent in a Pod) fills the limits its options leave zero from DefaultLimits,
// so a job meets the same bounds whichever backend runs it.
type Limits struct {
	// Timeout is a job's wall-clock timeout when its Request has none.
	Timeout time.Duration
	// StartTimeout bounds a sandbox's (or a kernel's) start, imports included.
	StartTimeout time.Duration
	// MaxOutputBytes caps each of stdout, stderr and the last expression's text.
	MaxOutputBytes int
	// MaxArtifacts caps the number of artifacts a job returns.
	MaxArtifacts int
	// MaxArtifactBytes caps their total size (and so any one figure's).
	MaxArtifactBytes int64
}

// DefaultLimits are the limits that apply where a backend's options leave them zero.
// Read it; never change it.
var DefaultLimits = Limits{
	Timeout:          30 * time.Second,
	StartTimeout:     60 * time.Second,
	MaxOutputBytes:   1 << 20,
	MaxArtifacts:     32,
	MaxArtifactBytes: 32 << 20,
}

// CPUTimeLimit is the CPU time a job with this wall-clock timeout may use, its
// RLIMIT_CPU: twice the timeout plus 2 s, in whole seconds (a job may keep two cores
// busy for its whole timeout). The sandbox-agent's kernels (every backend's but E2B's) set
// it on each execution; past it the job fails with
// ErrNameCPUTimeLimitExceeded.
func CPUTimeLimit(timeout time.Duration) time.Duration {
	return time.Duration(int64(timeout.Seconds()*2)+2) * time.Second
}

// Names of the ExecErrors a backend reports itself, rather than passing on an
// exception of the user's code: one vocabulary for every backend, so callers match
// them without knowing which backend ran the job. The controller fails a request
// whose error is ErrNameOutputLimitExceeded with the condition reason of that name
// (TestExecErrorNames there checks they agree).
const (
	// ErrNameTimeout: the job ran past its wall-clock timeout; Result.TimedOut is set.
	ErrNameTimeout = "Timeout"
	// ErrNameOutputLimitExceeded: the job produced more output than is collected
	// (artifacts over MaxArtifacts or MaxArtifactBytes, or more than the sandbox may send).
	ErrNameOutputLimitExceeded = "OutputLimitExceeded"
	// ErrNameMemoryLimitExceeded: the job used more than Resources.MemoryBytes.
	ErrNameMemoryLimitExceeded = "MemoryLimitExceeded"
	// ErrNameProcessLimitExceeded: the job tried to run more than Resources.Pids processes or threads.
	ErrNameProcessLimitExceeded = "ProcessLimitExceeded"
	// ErrNameScratchLimitExceeded: the job filled its Resources.ScratchBytes.
	ErrNameScratchLimitExceeded = "ScratchLimitExceeded"
	// ErrNameCPUTimeLimitExceeded: the job used more CPU time than its timeout allows.
	ErrNameCPUTimeLimitExceeded = "CPUTimeLimitExceeded"
	// ErrNameKilled: the job was killed by a signal.
	ErrNameKilled = "Killed"
	// ErrNameProcessExited: the code ended its interpreter (os._exit) before the job
	// finished, whatever its exit status: the job has no result, and is not a success.
	ErrNameProcessExited = "ProcessExited"
	// ErrNameInputFiles: the job's input files could not be written into the sandbox.
	ErrNameInputFiles = "InputFilesFailed"
)
