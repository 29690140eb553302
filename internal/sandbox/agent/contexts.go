package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

// kcontext is one code-interpreter context: a kernel whose variables persist between
// executions, one execution at a time.
type kcontext struct {
	id, language, cwd string
	customCwd         bool
	created           time.Time
	sem               chan struct{}

	mu      sync.Mutex
	k       *kernel // nil: started on the next execution
	deleted bool
	count   int
	nextID  int64
}

var errContextDeleted = errors.New("the context was deleted")

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// takeKernel hands out a warm kernel, waiting for the one being warmed rather than
// starting a second at the same time, or starts one.
func (s *Server) takeKernel(ctx context.Context) (*kernel, error) {
	for {
		select {
		case k := <-s.spares:
			if k.alive() {
				return k, nil
			}
			k.kill()
			continue
		default:
		}
		if !s.warming.Load() {
			return s.newKernel(ctx, newID())
		}
		t := time.NewTimer(s.opts.StartTimeout)
		select {
		case k := <-s.spares:
			t.Stop()
			if k.alive() {
				return k, nil
			}
			k.kill()
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
			return s.newKernel(ctx, newID())
		}
	}
}

// newKernel starts a kernel: forked by the zygote when there is one, else a new
// interpreter.
func (s *Server) newKernel(ctx context.Context, id string) (*kernel, error) {
	if z := s.zygote.Load(); z != nil && z.alive() {
		return launchKernel(ctx, s.opts, id, z)
	}
	return startKernel(ctx, s.opts, id)
}

// startZygote starts the kernel zygote (Options.ForkKernels), once; where it cannot
// start, kernels start as new interpreters.
func (s *Server) startZygote() {
	if !zygoteWanted(s.opts) {
		return
	}
	var z *kernelZygote
	var err error
	if p := s.opts.prestarted; p != nil {
		select {
		case <-p.done:
			z, err = p.z, p.err
		case <-s.ctx.Done():
			go p.discard()
			return
		}
	} else {
		z, err = startKernelZygote(s.ctx, s.opts)
	}
	if err != nil {
		s.opts.Log.Error("the kernel zygote did not start; kernels start as new interpreters", "error", err)
		return
	}
	s.zygote.Store(z)
}

// keepWarm keeps WarmKernels started kernels waiting for contexts.
func (s *Server) keepWarm() {
	defer close(s.warmDone)
	s.startZygote()
	backoff := time.Second
	for {
		select {
		case <-s.closing:
			return
		default:
		}
		if !s.waitToWarm() {
			return
		}
		s.warming.Store(true)
		k, err := s.newKernel(s.ctx, newID())
		if err != nil {
			s.warming.Store(false)
			if s.ctx.Err() != nil {
				return
			}
			s.opts.Log.Error("starting a warm kernel failed", "error", err, "retryIn", backoff)
			if !s.ready.Load() {
				msg := "no kernel could be started: " + err.Error()
				s.startErr.Store(&msg)
			}
			select {
			case <-time.After(backoff):
			case <-s.closing:
				return
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
		s.startErr.Store(nil)
		select {
		case s.spares <- k:
			s.warming.Store(false)
			s.markReady()
			if k.partial {
				go s.replacePartial(k)
			}
		case <-s.closing:
			k.kill()
			return
		}
	}
}

// replacePartial swaps the spare kernel k, forked before the zygote had the whole
// plotting stack, for one that has it, once the zygote does: only a new agent's first
// job may pay the rest's imports, never a job that comes after the sandbox sat idle.
// A context that took k meanwhile keeps it.
func (s *Server) replacePartial(k *kernel) {
	z := s.zygote.Load()
	if z == nil {
		return
	}
	select {
	case <-z.warm:
	case <-z.dead:
		return
	case <-s.closing:
		return
	}
	select {
	case k2 := <-s.spares:
		if k2 != k {
			select {
			case s.spares <- k2:
			default:
				k2.kill()
			}
			return
		}
		k.kill()
		s.notify() // keepWarm starts its replacement once the agent is idle
	default:
	}
}

// warmWhenIdleFor is how long no execution must have run, while contexts live, before
// a spare kernel is started: a spare's start (imports, or a fork and a warm-up render)
// must not take CPU from a running job.
const warmWhenIdleFor = 500 * time.Millisecond

// waitToWarm waits until a spare kernel is missing and the agent is idle: no context
// (the job of a one-job sandbox has ended), or none executing for warmWhenIdleFor. It
// returns false when the agent closes.
func (s *Server) waitToWarm() bool {
	for {
		s.mu.Lock()
		idle := len(s.contexts)+s.creating == 0 ||
			(s.executing == 0 && time.Since(s.lastExecution) >= warmWhenIdleFor)
		s.mu.Unlock()
		if idle && len(s.spares) < cap(s.spares) {
			return true
		}
		select {
		case <-s.changed:
		case <-time.After(warmWhenIdleFor):
		case <-s.closing:
			return false
		}
	}
}

// notify wakes waitToWarm.
func (s *Server) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// createContext makes a context with a kernel of its own.
func (s *Server) createContext(ctx context.Context, language, cwd string) (*kcontext, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("the agent is shutting down")
	}
	if len(s.contexts)+s.creating >= s.opts.MaxContexts {
		s.mu.Unlock()
		return nil, fmt.Errorf("this sandbox already has %d contexts, its limit; delete one first", s.opts.MaxContexts)
	}
	s.creating++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.creating--
		s.mu.Unlock()
	}()
	if err := s.waitTornDown(ctx); err != nil {
		return nil, err
	}
	k, err := s.takeKernel(ctx)
	if err != nil {
		return nil, err
	}
	c := &kcontext{id: k.id, language: language, cwd: k.cwd, created: time.Now(), sem: make(chan struct{}, 1), k: k}
	if cwd != "" && cwd != k.cwd {
		if err := chdir(ctx, k, cwd); err != nil {
			k.kill()
			return nil, fmt.Errorf("set the working directory to %s: %w", cwd, err)
		}
		c.cwd, c.customCwd = cwd, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		k.kill()
		return nil, errors.New("the agent is shutting down")
	}
	s.contexts[c.id] = c
	s.opts.Log.Info("context created", "context", c.id)
	return c, nil
}

// tearingDownOne counts a context being torn down; tornDown ends it.
func (s *Server) tearingDownOne() {
	s.mu.Lock()
	s.tearingDown++
	s.mu.Unlock()
}

func (s *Server) tornDown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tearingDown--
	if s.tearingDown == 0 && s.torndown != nil {
		close(s.torndown)
		s.torndown = nil
	}
}

// waitTornDown waits until every deleted context's kernel has been killed and reaped.
// Deletion returns at once and reaps in the background, but the next context must not
// start beside what is left of the last one: its processes still count against the
// sandbox's pids and memory (a fork bomb's tree takes a while to die), and a new
// kernel could not fork, or its job would fail, for what the previous job did.
func (s *Server) waitTornDown(ctx context.Context) error {
	s.mu.Lock()
	if s.tearingDown == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.torndown == nil {
		s.torndown = make(chan struct{})
	}
	ch := s.torndown
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the previous context's kernel is still being torn down: %w", ctx.Err())
	}
}

// chdir changes a fresh kernel's working directory.
func chdir(ctx context.Context, k *kernel, path string) error {
	if err := k.send(map[string]any{"op": "chdir", "id": -1, "path": path}); err != nil {
		return err
	}
	var failure error
	for {
		select {
		case f := <-k.frames:
			var m struct {
				Type  string
				ID    int64
				Name  string
				Value string
			}
			_ = json.Unmarshal(f, &m)
			switch {
			case m.Type == "error":
				failure = fmt.Errorf("%s: %s", m.Name, m.Value)
			case m.Type == "done" && m.ID == -1:
				return failure
			}
		case <-k.exited:
			return errors.New("the kernel exited")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// defaultContext is the context of requests that name none (E2B's default Python
// context), created on first use.
func (s *Server) defaultContext(ctx context.Context) (*kcontext, error) {
	s.defaultMu.Lock()
	defer s.defaultMu.Unlock()
	s.mu.Lock()
	c := s.contexts[s.defaultID]
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := s.createContext(ctx, "python", "")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.defaultID = c.id
	s.mu.Unlock()
	return c, nil
}

func (s *Server) lookup(id string) *kcontext {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.contexts[id]
}

// acquire waits for the context's previous execution to end and makes sure it has a
// live kernel (restarting one that died: its variables are gone, as after a crash in
// Jupyter).
func (s *Server) acquire(ctx context.Context, c *kcontext) (*kernel, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	k, err := s.liveKernel(ctx, c)
	if err != nil {
		<-c.sem
		return nil, err
	}
	return k, nil
}

// liveKernel is c's kernel, restarted when it died (or was dropped at a timeout); the
// caller holds c.sem.
func (s *Server) liveKernel(ctx context.Context, c *kcontext) (*kernel, error) {
	c.mu.Lock()
	k, deleted := c.k, c.deleted
	c.mu.Unlock()
	if deleted {
		return nil, errContextDeleted
	}
	if k != nil && k.alive() {
		return k, nil
	}
	return s.restartKernel(ctx, c)
}

func (c *kcontext) release() { <-c.sem }

// restartKernel replaces a context's kernel; the caller holds c.sem or has just
// killed the old kernel.
func (s *Server) restartKernel(ctx context.Context, c *kcontext) (*kernel, error) {
	c.mu.Lock()
	old := c.k
	c.k = nil
	c.mu.Unlock()
	if old != nil {
		old.kill()
	}
	// The same id keeps the context's directories (IsolationNone).
	k, err := s.newKernel(ctx, c.id)
	if err != nil {
		return nil, err
	}
	if c.customCwd {
		if err := chdir(ctx, k, c.cwd); err != nil {
			k.kill()
			return nil, fmt.Errorf("set the working directory to %s: %w", c.cwd, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		k.kill()
		return nil, errContextDeleted
	}
	c.k = k
	return k, nil
}

// deleteContext kills a context's kernel and forgets it.
func (s *Server) deleteContext(c *kcontext) {
	s.mu.Lock()
	delete(s.contexts, c.id)
	if s.defaultID == c.id {
		s.defaultID = ""
	}
	s.mu.Unlock()
	c.mu.Lock()
	c.deleted = true
	k := c.k
	c.k = nil
	c.mu.Unlock()
	// The kernel is killed now and reaped (its directories removed) in the background:
	// the caller does not wait for its namespace's teardown.
	if k != nil {
		k.signal()
	}
	s.bg.Add(1)
	s.tearingDownOne()
	go func() {
		defer s.bg.Done()
		if k != nil {
			k.kill()
		}
		if s.opts.Isolation == IsolationNone {
			work, figs, home := kernelDirs(s.opts, c.id)
			for _, d := range []string{work, figs, home} {
				_ = os.RemoveAll(d)
			}
		}
		s.tornDown()
		s.notify()
	}()
	s.opts.Log.Info("context deleted", "context", c.id)
}

// kernelMessage is a message of kernel.py: E2B's shape plus the done marker's id.
type kernelMessage struct {
	codeinterpreter.Message
	ID     int64  `json:"id"`
	Notice string `json:"message"`
	// Limit names the limit an error of the code reports (a sandbox.ErrName*):
	// kernel.py's kernel_limit_hit.
	Limit string `json:"limit"`
}

// run executes code in c on k (held through acquire) and emits the stream's messages
// but end_of_execution. It returns ctx's error when the client went away (the
// execution is then interrupted), or an emit error.
func (s *Server) run(ctx context.Context, c *kcontext, k *kernel, req codeinterpreter.ExecuteRequest, emit func(codeinterpreter.Message) error) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.count++
	count := c.count
	c.mu.Unlock()
	s.mu.Lock()
	s.executing++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.executing--
		s.lastExecution = time.Now()
		s.mu.Unlock()
		s.notify()
	}()

	raw := make(chan codeinterpreter.Message, 64)
	finished := make(chan struct{})
	defer close(finished)
	k.setSink(func(kind, text string) {
		select {
		case raw <- codeinterpreter.Message{Type: kind, Text: text, Timestamp: timestamp()}:
		case <-finished:
		}
	})
	defer k.setSink(nil)

	start := time.Now()
	op := map[string]any{"op": "execute", "id": id, "code": req.Code, "env_vars": req.EnvVars}
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout > 0 {
		// The kernel's RLIMIT_CPU for this execution, as the Local zygote's job gets.
		op["cpu_seconds"] = int64(sandbox.CPUTimeLimit(timeout) / time.Second)
	}
	if err := k.send(op); err != nil {
		return s.kernelLost(c, k, emit)
	}
	if err := emit(codeinterpreter.Message{Type: codeinterpreter.TypeNumberOfExecutions, ExecutionCount: count}); err != nil {
		return s.interrupt(c, k, id, err)
	}
	keepalive := time.NewTicker(s.opts.KeepaliveInterval)
	defer keepalive.Stop()
	// The timeout (ExecuteRequest.TimeoutMS): the code gets the runner's JobTimeout,
	// the kernel captures what it had open and reports, and the stream ends with an
	// error named sandbox.ErrNameTimeout. Code that does not stop within
	// InterruptGrace loses its kernel.
	var deadline, grace <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	timedOut, reported := false, false
	reportTimeout := func(traceback string) error {
		reported = true
		return emit(codeinterpreter.Message{Type: codeinterpreter.TypeError, Name: sandbox.ErrNameTimeout, Traceback: traceback,
			Value: fmt.Sprintf("the code ran longer than its %s wall-clock timeout and was stopped; results produced before that are kept. Make it faster or raise the timeout.", timeout)})
	}
	for {
		var err error
		select {
		case f := <-k.frames:
			var m kernelMessage
			if json.Unmarshal(f, &m) != nil {
				continue
			}
			switch m.Type {
			case "done":
				if m.ID == id {
					if timedOut && !reported {
						// The code swallowed the interrupt and finished: still a timeout.
						if err := reportTimeout(""); err != nil {
							return err
						}
					}
					s.opts.Log.Info("execution finished", "context", c.id, "execution", count, "duration", time.Since(start), "timedOut", timedOut)
					return nil
				}
			case codeinterpreter.TypeStdout, codeinterpreter.TypeStderr:
				m.Message.Timestamp = timestamp()
				err = emit(m.Message)
			case codeinterpreter.TypeError:
				switch {
				case m.Limit != sandbox.ErrNameTimeout:
					err = emit(s.limitError(m.Message, m.Limit))
				case timedOut && !reported:
					err = reportTimeout(m.Traceback)
				case !timedOut:
					// Only this agent says when the time is up.
					err = emit(m.Message)
				}
			case codeinterpreter.TypeResult:
				err = emit(m.Message)
			}
		case m := <-raw:
			err = emit(m)
		case <-k.exited:
			if timedOut {
				s.dropKernel(c, k)
				if !reported {
					return reportTimeout("")
				}
				return nil
			}
			return s.kernelLost(c, k, emit)
		case <-deadline:
			deadline, timedOut = nil, true
			_ = k.send(map[string]any{"op": "interrupt", "id": id, "timeout": true})
			t := time.NewTimer(s.opts.InterruptGrace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			s.opts.Log.Info("execution did not stop at its timeout; restarting the kernel", "context", c.id)
			s.dropKernel(c, k)
			if !reported {
				return reportTimeout("")
			}
			return nil
		case <-keepalive.C:
			err = emit(codeinterpreter.Message{Type: codeinterpreter.TypeKeepalive})
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			return s.interrupt(c, k, id, err)
		}
	}
}

// dropKernel kills a context's kernel; the next execution starts a fresh one.
func (s *Server) dropKernel(c *kcontext, k *kernel) {
	k.kill()
	c.mu.Lock()
	if c.k == k {
		c.k = nil
	}
	c.mu.Unlock()
}

// kernelLost reports a kernel that died mid-execution as the execution's error, in
// sandbox's vocabulary: ErrNameProcessExited when the code exited the interpreter
// (os._exit, any status), the limit's name when one ended it, ErrNameKilled for
// another signal (E2B's server says UnexpectedEndOfExecution for all); the next
// execution gets a fresh kernel.
func (s *Server) kernelLost(c *kcontext, k *kernel, emit func(codeinterpreter.Message) error) error {
	status, name := k.exitStatus()
	s.dropKernel(c, k)
	s.opts.Log.Info("kernel ended mid-execution", "context", c.id, "status", status)
	// Named as the Local zygote names a job that ends so: an exit is never a success.
	msg := codeinterpreter.Message{Type: codeinterpreter.TypeError, Name: name,
		Value: "the context's interpreter ended before the execution finished: " + status +
			". Its variables are lost; the next execution starts a fresh interpreter. Let the code end normally (sys.exit() is fine; os._exit() is not)."}
	if name != sandbox.ErrNameProcessExited && name != sandbox.ErrNameKilled {
		msg = s.limitError(msg, name)
	}
	return emit(msg)
}

// limitError names an error of the code after the limit it hit (one of
// sandbox.ErrName*, as every backend reports it), saying which limit and what to do;
// the exception's own name and text follow. Any other limit name (the kernel is the
// code's to forge) leaves the error as it is.
func (s *Server) limitError(m codeinterpreter.Message, limit string) codeinterpreter.Message {
	r := s.opts.Resources
	var what string
	switch limit {
	case sandbox.ErrNameMemoryLimitExceeded:
		what = "the code used more than its memory limit" + ofBytes(r.MemoryBytes) + " and was stopped. Use less data or raise the memory limit."
	case sandbox.ErrNameProcessLimitExceeded:
		what = "the code tried to run more processes or threads than allowed"
		if r.Pids > 0 {
			what += fmt.Sprintf(" (%d)", r.Pids)
		}
		what += ". Start fewer."
	case sandbox.ErrNameScratchLimitExceeded:
		what = "the code filled its scratch space" + ofBytes(r.ScratchBytes) + ". Write less data."
	case sandbox.ErrNameCPUTimeLimitExceeded:
		what = "the code used more CPU time than its timeout allows (twice the timeout plus 2s) and was stopped. Do less work, with fewer threads, or raise the timeout."
	default:
		return m
	}
	switch {
	case m.Name != "" && m.Name != limit:
		what += fmt.Sprintf(" (%s: %s)", m.Name, m.Value)
	case m.Value != "":
		what += fmt.Sprintf(" (%s)", m.Value)
	}
	m.Name, m.Value = limit, what
	return m
}

func ofBytes(n int64) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" of %d MiB", n>>20)
}

// interrupt stops an execution whose client went away: the kernel gets a
// KeyboardInterrupt, and is killed (then restarted on next use) when the code does
// not stop within InterruptGrace.
func (s *Server) interrupt(c *kcontext, k *kernel, id int64, cause error) error {
	_ = k.send(map[string]any{"op": "interrupt", "id": id})
	timer := time.NewTimer(s.opts.InterruptGrace)
	defer timer.Stop()
	for {
		select {
		case f := <-k.frames:
			var m kernelMessage
			if json.Unmarshal(f, &m) == nil && m.Type == "done" && m.ID == id {
				s.opts.Log.Info("execution interrupted", "context", c.id, "cause", cause.Error())
				return cause
			}
		case <-k.exited:
			return cause
		case <-timer.C:
			s.opts.Log.Info("execution did not stop when interrupted; restarting the kernel", "context", c.id)
			k.kill()
			c.mu.Lock()
			if c.k == k {
				c.k = nil
			}
			c.mu.Unlock()
			return cause
		}
	}
}

// timestamp is how E2B's server writes a message's time (pydantic's isoformat).
func timestamp() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000000-07:00") }
