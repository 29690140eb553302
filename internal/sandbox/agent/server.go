package agent

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
	"github.com/vizops/viz-operator/internal/sandbox/pyrunner"
)

// maxExecuteBody bounds a request body (the code, and input files the client's
// prelude carries in base64).
const maxExecuteBody = 96 << 20

// Server serves E2B's code-interpreter protocol. It is an http.Handler.
type Server struct {
	opts    Options
	mux     *http.ServeMux
	ctx     context.Context
	cancel  context.CancelFunc
	closing chan struct{}
	spares  chan *kernel

	warmDone chan struct{}
	zygote   atomic.Pointer[kernelZygote] // ForkKernels: what forks kernels, once started
	warming  atomic.Bool                  // a kernel is being started for s.spares
	ready    atomic.Bool                  // the first warm kernel has started: /health answers OK
	startErr atomic.Pointer[string]       // why the last warm kernel failed to start, until one starts
	readyCh  chan struct{}                // closed when ready becomes true
	readyOne sync.Once

	changed chan struct{}  // wakes waitToWarm (a context ended, an execution ended)
	bg      sync.WaitGroup // contexts being torn down

	mu            sync.Mutex
	executing     int       // executions running
	lastExecution time.Time // when the last one ended
	contexts      map[string]*kcontext
	creating      int
	// tearingDown counts deleted contexts whose kernels are still being killed and
	// reaped; torndown is closed (and replaced) each time it falls to zero.
	tearingDown int
	torndown    chan struct{}
	defaultID   string
	closed      bool
	defaultMu   sync.Mutex
}

// NewServer checks the environment (interpreter, bubblewrap) and starts warming
// kernels. Close it to stop every kernel.
func NewServer(opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.prestarted == nil { // PrestartZygote prepared it
		if err := prepareWorkDir(o); err != nil {
			return nil, err
		}
	}
	if o.KillOrphans {
		if err := becomeSubreaper(); err != nil {
			return nil, fmt.Errorf("%w: become a child subreaper: %w", sandbox.ErrUnavailable, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts: o, ctx: ctx, cancel: cancel, closing: make(chan struct{}),
		spares: make(chan *kernel, o.WarmKernels), warmDone: make(chan struct{}),
		contexts: map[string]*kcontext{}, readyCh: make(chan struct{}), changed: make(chan struct{}, 1),
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.Handle("POST /execute", s.auth(s.execute))
	s.mux.Handle("POST /contexts", s.auth(s.postContexts))
	s.mux.Handle("GET /contexts", s.auth(s.getContexts))
	s.mux.Handle("POST /contexts/{id}/restart", s.auth(s.restart))
	s.mux.Handle("DELETE /contexts/{id}", s.auth(s.deleteCtx))
	if o.WarmKernels > 0 {
		go s.keepWarm()
	} else {
		s.markReady()
		close(s.warmDone)
	}
	return s, nil
}

func (s *Server) markReady() {
	s.readyOne.Do(func() {
		s.ready.Store(true)
		close(s.readyCh)
	})
}

// WaitReady returns once the agent is ready to serve (its first warm kernel has
// started; /health then answers OK), or with ctx's error.
func (s *Server) WaitReady(ctx context.Context) error {
	select {
	case <-s.readyCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the sandbox-agent is not ready: %w", ctx.Err())
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops every kernel. Executions in progress end with an error.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ctxs := make([]*kcontext, 0, len(s.contexts))
	for _, c := range s.contexts {
		ctxs = append(ctxs, c)
	}
	s.mu.Unlock()
	close(s.closing)
	s.cancel()
	<-s.warmDone
	for {
		select {
		case k := <-s.spares:
			k.kill()
			continue
		default:
		}
		break
	}
	if z := s.zygote.Load(); z != nil {
		defer z.close() // after the contexts' kernels
	}
	for _, c := range ctxs {
		s.deleteContext(c)
	}
	s.bg.Wait()
	if s.opts.Isolation == IsolationNone {
		for _, d := range []string{"contexts", "figures", "home"} {
			_ = os.RemoveAll(filepath.Join(s.opts.WorkDir, d))
		}
	}
	return nil
}

// auth requires the token in X-Access-Token (compared in constant time).
func (s *Server) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Token != "" {
			got := r.Header.Get(codeinterpreter.HeaderAccessToken)
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) != 1 {
				http.Error(w, "Unauthorized: missing or wrong "+codeinterpreter.HeaderAccessToken, http.StatusUnauthorized)
				return
			}
		}
		next(w, r)
	})
}

// HeaderSpareKernels, on /health answers, is how many started kernels wait for new
// contexts right now: a caller that wants a warm start (a benchmark) can wait for one.
const HeaderSpareKernels = "X-Vizops-Spare-Kernels"

// health answers "OK" once the first kernel is warm (E2B's server answers once its
// default context exists), so a Pod's readiness probe waits for it; 503 before, or 500
// with the error while no kernel could be started.
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set(HeaderSpareKernels, strconv.Itoa(len(s.spares)))
	if !s.ready.Load() {
		if msg := s.startErr.Load(); msg != nil {
			// No kernel could start yet: say why (the Local backend fails the sandbox's
			// start on it instead of waiting out its start timeout).
			writeJSON(w, http.StatusInternalServerError, *msg)
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, "starting")
		return
	}
	writeJSON(w, http.StatusOK, "OK")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// normalizeLanguage follows E2B's server: empty is python, names are lower-cased.
func normalizeLanguage(l string) string {
	l = strings.ToLower(strings.TrimSpace(l))
	if l == "" {
		return "python"
	}
	return l
}

func unsupportedLanguage(w http.ResponseWriter, l string) {
	http.Error(w, fmt.Sprintf("language %q is not supported by this sandbox; it runs python only", l), http.StatusBadRequest)
}

func (s *Server) execute(w http.ResponseWriter, r *http.Request) {
	var req codeinterpreter.ExecuteRequest
	body := http.MaxBytesReader(w, r.Body, maxExecuteBody)
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(body).Decode(&raw); err != nil {
		http.Error(w, "the body must be a JSON object {code, context_id, language, env_vars}: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	if _, ok := raw["code"]; !ok {
		http.Error(w, "code is required", http.StatusUnprocessableEntity)
		return
	}
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &req); err != nil {
		http.Error(w, "invalid request: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	if req.ContextID != "" && req.Language != "" {
		http.Error(w, "Only one of context_id or language can be provided", http.StatusBadRequest)
		return
	}
	var c *kcontext
	switch {
	case req.ContextID != "":
		if c = s.lookup(req.ContextID); c == nil {
			http.Error(w, fmt.Sprintf("Context %s not found", req.ContextID), http.StatusNotFound)
			return
		}
	default:
		if l := normalizeLanguage(req.Language); l != "python" {
			unsupportedLanguage(w, l)
			return
		}
		var err error
		if c, err = s.defaultContext(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	k, err := s.acquire(r.Context(), c)
	if errors.Is(err, errContextDeleted) {
		http.Error(w, fmt.Sprintf("Context %s not found", c.id), http.StatusNotFound)
		return
	}
	if err != nil {
		if r.Context().Err() == nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	defer c.release()

	if req.TimeoutMS < 0 {
		req.TimeoutMS = 0
	}
	if req.TimeoutMS > 0 {
		// This agent enforces the timeout (run): the client waits for the partial results.
		w.Header().Set(codeinterpreter.HeaderTimeout, strconv.FormatInt(req.TimeoutMS, 10))
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	flusher, _ := w.(http.Flusher)
	emit := func(m codeinterpreter.Message) error {
		line, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if _, err := bw.Write(append(line, '\n')); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	if err := s.runCells(r.Context(), c, k, req, emit); err != nil {
		return // the client is gone; the execution was interrupted
	}
	_ = emit(codeinterpreter.Message{Type: codeinterpreter.TypeEndOfExecution})
}

// runCells runs an execution's Prelude, Code and Epilogue (the vizops extension that
// makes a job one round trip, advertised by HeaderCells) one after the other in c, each
// as an execution of its own, with a TypeCell marker before the code's and the
// epilogue's messages. A prelude that raised ends the stream before the code. The
// epilogue runs even after the code timed out or ended its interpreter (on a fresh
// one, in the same directory), as a separate execution would. The caller holds c
// (acquire); k is its kernel.
func (s *Server) runCells(ctx context.Context, c *kcontext, k *kernel, req codeinterpreter.ExecuteRequest, emit func(codeinterpreter.Message) error) error {
	if req.Prelude == "" && req.Epilogue == "" {
		return s.run(ctx, c, k, req, emit)
	}
	cell := func(code string, emit func(codeinterpreter.Message) error) error {
		k, err := s.liveKernel(ctx, c)
		if err != nil {
			return emit(codeinterpreter.Message{Type: codeinterpreter.TypeError, Name: "KernelError",
				Value: "the context's interpreter could not be started: " + err.Error()})
		}
		return s.run(ctx, c, k, codeinterpreter.ExecuteRequest{Code: code, EnvVars: req.EnvVars}, emit)
	}
	if req.Prelude != "" {
		failed := false
		if err := cell(req.Prelude, func(m codeinterpreter.Message) error {
			failed = failed || m.Type == codeinterpreter.TypeError
			return emit(m)
		}); err != nil || failed {
			return err
		}
		if err := emit(codeinterpreter.Message{Type: codeinterpreter.TypeCell, Name: codeinterpreter.CellCode}); err != nil {
			return err
		}
		var err error
		if k, err = s.liveKernel(ctx, c); err != nil {
			return emit(codeinterpreter.Message{Type: codeinterpreter.TypeError, Name: "KernelError",
				Value: "the context's interpreter could not be started: " + err.Error()})
		}
	}
	code := req
	code.Prelude, code.Epilogue = "", ""
	if err := s.run(ctx, c, k, code, emit); err != nil {
		return err
	}
	if req.Epilogue == "" {
		return nil
	}
	if err := emit(codeinterpreter.Message{Type: codeinterpreter.TypeCell, Name: codeinterpreter.CellEpilogue}); err != nil {
		return err
	}
	return cell(req.Epilogue, emit)
}

func (s *Server) postContexts(w http.ResponseWriter, r *http.Request) {
	var req codeinterpreter.CreateContextRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "the body must be a JSON object {language, cwd}: "+err.Error(), http.StatusUnprocessableEntity)
			return
		}
	}
	if l := normalizeLanguage(req.Language); l != "python" {
		unsupportedLanguage(w, l)
		return
	}
	c, err := s.createContext(r.Context(), "python", req.Cwd)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set(codeinterpreter.HeaderCells, "1") // runCells
	writeJSON(w, http.StatusOK, codeinterpreter.Context{ID: c.id, Language: c.language, Cwd: c.cwd})
}

func (s *Server) getContexts(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	list := make([]*kcontext, 0, len(s.contexts))
	for _, c := range s.contexts {
		list = append(list, c)
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].created.Before(list[j].created) })
	out := make([]codeinterpreter.Context, 0, len(list))
	for _, c := range list {
		out = append(out, codeinterpreter.Context{ID: c.id, Language: c.language, Cwd: c.cwd})
	}
	w.Header().Set(codeinterpreter.HeaderCells, "1")
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c := s.lookup(id)
	if c == nil {
		http.Error(w, fmt.Sprintf("Context %s not found", id), http.StatusNotFound)
		return
	}
	// A running execution ends (its kernel is killed) before the new kernel starts.
	c.mu.Lock()
	old := c.k
	c.k = nil
	c.mu.Unlock()
	if old != nil {
		old.kill()
	}
	if _, err := s.acquire(r.Context(), c); err != nil {
		if errors.Is(err, errContextDeleted) {
			http.Error(w, fmt.Sprintf("Context %s not found", id), http.StatusNotFound)
			return
		}
		http.Error(w, fmt.Sprintf("Failed to restart context %s: %v", id, err), http.StatusInternalServerError)
		return
	}
	c.release()
	writeJSON(w, http.StatusOK, nil)
}

func (s *Server) deleteCtx(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c := s.lookup(id)
	if c == nil {
		http.Error(w, fmt.Sprintf("Context %s not found", id), http.StatusNotFound)
		return
	}
	s.deleteContext(c)
	writeJSON(w, http.StatusOK, nil)
}

// fontCacheScript builds matplotlib's font cache in MPLCONFIGDIR.
const fontCacheScript = `import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot; print("ok")`

// buildFontCache prepares the matplotlib font cache bwrap kernels copy at start (the
// runner's seed_mpl_cache), so a kernel does not spend seconds rebuilding it.
func buildFontCache(o Options) error {
	cache := filepath.Join(o.WorkDir, "mpl")
	if _, err := os.Stat(filepath.Join(cache, ".ok")); err == nil {
		return nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return fmt.Errorf("%w: create %s: %w", sandbox.ErrUnavailable, cache, err)
	}
	if os.Geteuid() == 0 {
		_ = os.Chown(cache, o.UID, o.GID)
	}
	args := append(pyrunner.BaseBwrapArgs(sandbox.PoolConfig{}, sandbox.Resources{ScratchBytes: 64 << 20}),
		"--bind", cache, pyrunner.MPLCacheMount, "--remount-ro", "/",
		"--", o.Python, "-I", "-B", "-c", fontCacheScript)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Bwrap, args...)
	env := pyrunner.Env()
	for i, kv := range env {
		if strings.HasPrefix(kv, "MPLCONFIGDIR=") {
			env[i] = "MPLCONFIGDIR=" + pyrunner.MPLCacheMount
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(o.UID), Gid: uint32(o.GID), Groups: []uint32{}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok") {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		return fmt.Errorf("%w: sandboxed %s cannot import matplotlib (%v): %s; install bubblewrap and python3-matplotlib python3-numpy python3-pandas python3-seaborn python3-plotly, or run in a sandbox Pod with isolation %q",
			sandbox.ErrUnavailable, o.Python, err, msg, IsolationNone)
	}
	return os.WriteFile(filepath.Join(cache, ".ok"), nil, 0o644)
}

// prepareWorkDir makes the work directory and what kernels need below it (again
// harmlessly when PrestartZygote made it first).
func prepareWorkDir(o Options) error {
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return fmt.Errorf("%w: create the work directory: %w", sandbox.ErrUnavailable, err)
	}
	if o.Isolation == IsolationBwrap {
		return buildFontCache(o)
	}
	// Kernels run as UID when the agent is root: they must reach their directories.
	for _, d := range []string{"contexts", "figures", "home"} {
		if err := os.MkdirAll(filepath.Join(o.WorkDir, d), 0o711); err != nil {
			return fmt.Errorf("%w: create the work directory: %w", sandbox.ErrUnavailable, err)
		}
	}
	if os.Geteuid() == 0 {
		_ = os.Chmod(o.WorkDir, 0o711)
	}
	return nil
}
