// Package sandbox defines the one execution contract that every sandbox backend
// (Local bubblewrap, Kubernetes Pods, E2B) implements, and that every caller (the
// controller, the kubectl plugin, benchmarks) uses. Callers never know which backend
// they hold.
//
// The life of a sandbox: a Pool keeps warm sandboxes ready; Acquire claims one (O(1)
// when one is warm); Execute runs one job in it; Release hands it back (the backend
// wipes or replaces it, so nothing leaks between jobs). A job's failure in the user's
// code is a Result with Success=false, never an error: errors from Execute mean the
// sandbox itself failed, which callers treat as transient and retry.
package sandbox

import (
	"context"
	"errors"
	"time"

	"github.com/vizops/viz-operator/internal/chartdata"
)

// Format is an artifact format a caller can ask for.
type Format string

const (
	FormatPNG  Format = "png"
	FormatSVG  Format = "svg"
	FormatHTML Format = "html"
)

// File is an input file placed in the job's working directory before the code runs
// (for example the request's data as data.csv).
type File struct {
	Name string
	Data []byte
}

// Request is one job: code, its inputs, and what to bring back.
type Request struct {
	// Code is the Python source to run. It is untrusted.
	Code string
	// Files are written into the job's working directory before Code runs.
	Files []File
	// Timeout bounds the job's wall-clock time. Zero means the backend's default.
	Timeout time.Duration
	// Formats are the figure formats to capture (default png).
	Formats []Format
}

// Artifact is a file the job produced: a captured figure or a file the code wrote to
// its output folder.
type Artifact struct {
	Name     string
	MIMEType string
	Data     []byte
	// Figure marks a chart the sandbox captured itself (plt.show, open figures, a
	// plotly figure shown or returned), as opposed to a file the code wrote. Name is
	// then a plain file name; otherwise it is the path relative to the job's working
	// directory (its output folder is "outputs/").
	Figure bool
}

// ExecError describes an exception raised by the user's code (as E2B reports it).
type ExecError struct {
	Name      string // exception class, e.g. "ZeroDivisionError", or "Timeout"
	Value     string // str(exception)
	Traceback string
}

// Result mirrors the seed's ExecutionResult.
type Result struct {
	// Success is true when the code ran to the end without an exception.
	Success bool
	// Stdout and Stderr are capped by the backend; a truncated stream ends with a
	// visible marker.
	Stdout string
	Stderr string
	// Text is the value of the last expression, like a notebook cell (may be empty).
	Text string
	// Error is set when the code raised, timed out or was killed for a limit.
	Error *ExecError
	// TimedOut is set when the job hit its wall-clock timeout.
	TimedOut bool
	// Files are the artifacts produced, kept even when the code failed midway.
	Files []Artifact
	// Charts are what the captured figures plot, read back from them (bounded by
	// chartdata.Bound); Chart.Figure names the figure's artifacts ("figure_1").
	Charts []chartdata.Chart
	// ExecutionTime is the job's wall-clock time inside the sandbox.
	ExecutionTime time.Duration
	// SandboxID names the sandbox that ran the job.
	SandboxID string
}

// Sandbox is one claimed, isolated environment.
type Sandbox interface {
	// ID is unique among the pool's sandboxes at one time and stable for the
	// sandbox's life; a replacement may reuse a gone sandbox's ID.
	ID() string
	// Execute runs one job. A non-nil error means the sandbox failed (transient);
	// the code's own failures are reported in the Result.
	Execute(ctx context.Context, req Request) (*Result, error)
}

// Pool is a warm pool of sandboxes of one backend. Every backend's pool passes the
// same contract suite (internal/sandbox/pooltest), which checks what is documented
// here.
type Pool interface {
	// Acquire claims a ready sandbox for owner (a label shown in the pool's status,
	// e.g. "namespace/name" of a request): the one that has been Ready longest
	// (first ready, first claimed), and a replacement is started behind it while
	// fewer than minReady are ready. It blocks until one is ready, ctx ends (ctx's
	// error), or the pool is closed (ErrPoolClosed). It never lets more than
	// MaxSandboxes exist. When the backend cannot start sandboxes (every recent start
	// failed) it may return at once with an error wrapping ErrUnavailable; starts
	// are retried with a backoff, never in a loop.
	Acquire(ctx context.Context, owner string) (Sandbox, error)
	// Release returns a sandbox after its job. The pool destroys or recycles it;
	// either way the next owner starts clean. A second Release, or one after Close,
	// is ignored.
	Release(sb Sandbox)
	// Resize changes the warm target and the cap without dropping busy sandboxes
	// (idle ones over the new cap go). An invalid size (ValidSize) is rejected with
	// ErrInvalidSize and the pool keeps its old one; nothing is clamped.
	Resize(minReady, maxSandboxes int) error
	// Status reports live counts and per-sandbox state, from the pool's memory: it
	// makes no call to the backend's provider (API server, E2B API).
	Status() PoolStatus
	// Close destroys every sandbox the pool holds, ready and busy (running jobs end
	// with ErrSandboxLost), and stops replenishment. Later claims fail with
	// ErrPoolClosed; a second Close does nothing.
	Close() error
}

// State of one sandbox in a pool.
type State string

const (
	StateStarting State = "Starting"
	StateReady    State = "Ready"
	StateBusy     State = "Busy"
	StateFailed   State = "Failed"
)

// SandboxStatus is one sandbox's live state.
type SandboxStatus struct {
	ID    string
	State State
	Since time.Time
	Owner string
}

// PoolStatus is a pool's live state.
type PoolStatus struct {
	Ready, Busy, Starting, Total int
	// Running is how many jobs this pool object runs now: what draining it waits
	// for. It equals Busy except where a backend's sandboxes are shared by several
	// pool objects or managers (Kubernetes), whose Busy counts every claimed one.
	Running   int
	Sandboxes []SandboxStatus
	// Degraded says which per-sandbox limits the backend cannot enforce here, and what
	// applies instead; empty when every limit holds per sandbox.
	Degraded string
	// Throttled says how and until when the backend's provider slows sandbox
	// creation (it answered "too many requests"); empty when it does not.
	Throttled string
}

// Resources are the limits applied to each job.
type Resources struct {
	// CPUMillis limits CPU (1000 = one core). Zero means the backend default.
	CPUMillis int64
	// MemoryBytes limits the job's memory.
	MemoryBytes int64
	// Pids limits the number of processes and threads.
	Pids int64
	// ScratchBytes limits the job's writable space.
	ScratchBytes int64
}

// Network is the network a sandbox gets.
type Network string

const (
	NetworkNone   Network = "None"
	NetworkEgress Network = "Egress"
)

// PoolConfig is what every backend's pool needs. Backend-specific settings travel in
// the backend's own options.
type PoolConfig struct {
	MinReady     int
	MaxSandboxes int
	Resources    Resources
	Network      Network
	// PlotlyJSURL is where HTML artifacts load plotly.js from. Empty means the backend
	// default (the public CDN); "inline" embeds it.
	PlotlyJSURL string
	// OnSandboxStarted, if set, is told how long each sandbox took to become ready
	// (for the sandbox creation-time metric).
	OnSandboxStarted func(time.Duration) `json:"-"`
}

var (
	// ErrPoolClosed is returned by Acquire on a closed pool.
	ErrPoolClosed = errors.New("sandbox pool is closed")
	// ErrSandboxLost means the sandbox died or vanished mid-job; retry on another.
	ErrSandboxLost = errors.New("sandbox lost")
	// ErrUnavailable means the backend cannot start sandboxes at all right now
	// (missing binary, API down); the message says why.
	ErrUnavailable = errors.New("sandbox backend unavailable")
	// ErrQuotaExceeded means the pool would take more than the operator allows all
	// pools together (warm sandboxes, total sandbox memory); the message says which.
	ErrQuotaExceeded = errors.New("sandbox quota exceeded")
)

// Run claims a sandbox from pool, runs req in it and releases it: the one-shot path
// used by the CLI and benchmarks.
func Run(ctx context.Context, pool Pool, owner string, req Request) (*Result, error) {
	sb, err := pool.Acquire(ctx, owner)
	if err != nil {
		return nil, err
	}
	defer pool.Release(sb)
	return sb.Execute(ctx, req)
}

// Claimant is who claims a sandbox: a request and its attempt. Backends whose claims
// outlive the process (Kubernetes Pods carry theirs in an annotation) record it, so a
// restarted manager can tell a claim still running from one whose execution was lost.
type Claimant struct {
	// Key is the request's "namespace/name".
	Key string `json:"key"`
	// UID is the request's UID.
	UID string `json:"uid"`
	// Attempt is the request's attempt (status.attempts) the claim is for.
	Attempt int32 `json:"attempt"`
}

type claimantKey struct{}

// WithClaimant returns ctx carrying c, for Pool.Acquire.
func WithClaimant(ctx context.Context, c Claimant) context.Context {
	return context.WithValue(ctx, claimantKey{}, c)
}

// ClaimantFrom returns the claimant ctx carries, if any.
func ClaimantFrom(ctx context.Context) (Claimant, bool) {
	c, ok := ctx.Value(claimantKey{}).(Claimant)
	return c, ok
}
