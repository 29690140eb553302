package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// maxCodeBytes bounds Request.Code (the runner reads the code in one frame of 1 MiB).
const maxCodeBytes = 512 << 10

// localSandbox is one sandbox of a pool. Its pool-side state is guarded by the pool's lock.
type localSandbox struct {
	id   string
	pool *Pool
	z    *zygote

	run sync.Mutex // one job at a time

	// Guarded by pool.mu. claimed: between Acquire and Release (the engine holds
	// which sandboxes are ready or busy; this is Execute's check).
	claimed bool
	lost    bool
	// degradedSlot: this sandbox holds one of its Quota's MaxDegraded slots.
	degradedSlot bool
}

func (s *localSandbox) ID() string { return s.id }

type jobFile struct {
	Name string `json:"name"`
	Data []byte `json:"data"` // base64 in JSON
}

type jobRequest struct {
	Op        string    `json:"op"`
	Code      string    `json:"code"`
	Files     []jobFile `json:"files"`
	TimeoutMS int64     `json:"timeout_ms"`
	Formats   []string  `json:"formats"`
}

type jobResult struct {
	Type          string             `json:"type"`
	Message       string             `json:"message"`
	Success       bool               `json:"success"`
	Stdout        string             `json:"stdout"`
	Stderr        string             `json:"stderr"`
	Text          string             `json:"text"`
	Error         *sandbox.ExecError `json:"error"` // json matches its field names case-insensitively
	TimedOut      bool               `json:"timed_out"`
	ScratchFull   bool               `json:"scratch_full"`
	MemoryError   bool               `json:"memory_error"`
	PidsExhausted bool               `json:"pids_exhausted"`
	Signal        int                `json:"signal"`
	ExitCode      int                `json:"exit_code"`
	ExecUS        int64              `json:"exec_us"`
	Charts        []chartdata.Chart  `json:"charts"`
	Files         []struct {
		Name   string `json:"name"`
		Mime   string `json:"mime"`
		Data   []byte `json:"data"`
		Figure bool   `json:"figure"`
	} `json:"files"`
	Omitted      []string `json:"omitted"`
	CollectNotes []string `json:"collect_notes"`
}

// Execute runs one job. Failures of the code (exceptions, limits, timeouts) are in the
// Result; an error means the sandbox itself failed (wraps sandbox.ErrSandboxLost) or
// ctx ended, and the sandbox is then discarded.
func (s *localSandbox) Execute(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	s.run.Lock()
	defer s.run.Unlock()
	if err := s.pool.checkClaimed(s); err != nil {
		return nil, err
	}
	opts := s.pool.opts
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = opts.DefaultTimeout
	}
	if len(req.Code) > maxCodeBytes {
		return nil, fmt.Errorf("the code is %s; the sandbox accepts at most %s", humanBytes(int64(len(req.Code))), humanBytes(maxCodeBytes))
	}
	job := jobRequest{Op: "run", Code: req.Code, TimeoutMS: timeout.Milliseconds()}
	for _, f := range req.Files {
		if err := validFileName(f.Name); err != nil {
			return nil, err
		}
		job.Files = append(job.Files, jobFile{Name: f.Name, Data: f.Data})
	}
	for _, f := range req.Formats {
		switch f {
		case sandbox.FormatPNG, sandbox.FormatSVG, sandbox.FormatHTML:
			job.Formats = append(job.Formats, string(f))
		default:
			return nil, fmt.Errorf("unsupported format %q (want png, svg or html)", f)
		}
	}
	if len(job.Formats) == 0 {
		job.Formats = []string{string(sandbox.FormatPNG)}
	}
	if s.z.client != nil {
		return s.executeAgent(ctx, req)
	}

	before := s.z.cg.counters()
	if err := s.z.send(job); err != nil {
		return nil, s.pool.lose(s, fmt.Errorf("send job: %w", err))
	}
	// The runner enforces the timeout itself; this backstop catches a runner that hangs.
	backstop := time.NewTimer(timeout + opts.GraceTime + 15*time.Second)
	defer backstop.Stop()
	var frame []byte
	select {
	case frame = <-s.z.frames:
	case <-s.z.exited:
		return nil, s.pool.lose(s, errors.New("sandbox exited mid-job"))
	case <-backstop.C:
		return nil, s.pool.lose(s, fmt.Errorf("no result %s after the job's %s timeout", opts.GraceTime+15*time.Second, timeout))
	case <-ctx.Done():
		// The job is abandoned midway; the sandbox cannot be trusted to be clean.
		_ = s.pool.lose(s, ctx.Err())
		return nil, fmt.Errorf("execution abandoned: %w", ctx.Err())
	}
	var jr jobResult
	if err := json.Unmarshal(frame, &jr); err != nil {
		return nil, s.pool.lose(s, fmt.Errorf("malformed result: %w", err))
	}
	if jr.Type != "result" {
		return nil, s.pool.lose(s, fmt.Errorf("%s: %s", jr.Type, jr.Message))
	}
	return s.toResult(jr, before, s.z.cg.counters(), timeout), nil
}

// toResult turns the runner's report into a Result, naming the limit a job hit.
func (s *localSandbox) toResult(jr jobResult, before, after cgroupCounters, timeout time.Duration) *sandbox.Result {
	res := s.pool.res
	r := &sandbox.Result{
		Success:       jr.Success,
		Stdout:        jr.Stdout,
		Stderr:        jr.Stderr,
		Text:          jr.Text,
		Error:         jr.Error,
		TimedOut:      jr.TimedOut,
		ExecutionTime: time.Duration(jr.ExecUS) * time.Microsecond,
		Charts:        chartdata.Bound(jr.Charts),
		SandboxID:     s.id,
	}
	for _, f := range jr.Files {
		r.Files = append(r.Files, sandbox.Artifact{Name: f.Name, MIMEType: f.Mime, Data: f.Data, Figure: f.Figure})
	}
	limitErr := func(name, value string) {
		tb := ""
		if r.Error != nil {
			tb = r.Error.Traceback
		}
		r.Success = false
		r.Error = &sandbox.ExecError{Name: name, Value: value, Traceback: tb}
	}
	killed := jr.Signal != 0
	// Counters are per sandbox and the previous job's teardown may still be bumping
	// them when this job is sent: only a job that failed is blamed on a limit.
	failed := !jr.Success
	switch {
	case !failed:
	case jr.TimedOut:
		limitErr(sandbox.ErrNameTimeout, fmt.Sprintf("the code ran longer than its %s wall-clock timeout and was stopped; results produced before that are kept. Make it faster or raise the timeout.", timeout))
	case after.oomKills > before.oomKills || jr.MemoryError || (killed && jr.Signal == int(syscall.SIGKILL) && after.memFail > before.memFail):
		limitErr(sandbox.ErrNameMemoryLimitExceeded, fmt.Sprintf("the code used more than its memory limit of %s and was stopped. Use less data or raise the memory limit.", humanBytes(res.MemoryBytes)))
	case after.pidsLimit > before.pidsLimit || (jr.PidsExhausted && s.z.cg == nil):
		limitErr(sandbox.ErrNameProcessLimitExceeded, fmt.Sprintf("the code tried to run more than %d processes or threads. Start fewer.", res.Pids))
	case jr.ScratchFull:
		limitErr(sandbox.ErrNameScratchLimitExceeded, fmt.Sprintf("the code filled its %s scratch space. Write less data.", humanBytes(res.ScratchBytes)))
	case killed && jr.Signal == int(syscall.SIGXCPU):
		limitErr(sandbox.ErrNameCPUTimeLimitExceeded, fmt.Sprintf("the code used more CPU time than allowed for a %s timeout and was stopped.", timeout))
	case killed:
		limitErr(sandbox.ErrNameKilled, fmt.Sprintf("the code was killed by signal %d (%s).", jr.Signal, syscall.Signal(jr.Signal)))
	case r.Error == nil && !r.Success && jr.ExitCode != 0:
		limitErr("ProcessExited", fmt.Sprintf("the code ended the interpreter with exit status %d before finishing.", jr.ExitCode))
	case r.Error == nil && !r.Success:
		// The interpreter exited cleanly without reporting (os._exit(0)): nothing failed.
		r.Success = true
	}
	if len(jr.Omitted) > 0 || len(jr.CollectNotes) > 0 {
		var parts []string
		if len(jr.Omitted) > 0 {
			parts = append(parts, fmt.Sprintf("the code produced more than %d artifacts or %s in total; dropped: %s",
				s.pool.opts.MaxArtifacts, humanBytes(s.pool.opts.MaxArtifactBytes), strings.Join(jr.Omitted, ", ")))
		}
		if len(jr.CollectNotes) > 0 {
			parts = append(parts, "collecting the outputs stopped early: "+strings.Join(jr.CollectNotes, "; "))
		}
		msg := strings.Join(parts, "; ") + ". Produce fewer or smaller files, in a shallow folder."
		if r.Error == nil {
			limitErr(sandbox.ErrNameOutputLimitExceeded, msg)
		} else {
			r.Stderr += "\n[vizops] " + msg
		}
	}
	return r
}

func validFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("input file name %q must be a plain file name (no slashes, not hidden)", name)
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
