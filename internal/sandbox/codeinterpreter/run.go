package codeinterpreter

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// EnvFigureFormats is the environment variable the prelude sets to the figure formats
// a request asked for ("png,svg"); the sandbox-agent captures matplotlib figures in
// those. E2B's server ignores it and is asked through matplotlib_inline instead.
const EnvFigureFormats = "VIZOPS_FIGURE_FORMATS"

const (
	// setupTimeout bounds creating the context and writing the input files.
	setupTimeout = 60 * time.Second
	// cleanupTimeout bounds deleting the context after the job.
	cleanupTimeout = 5 * time.Second
	// collectTimeout bounds collecting the files the code wrote (after a timeout the
	// server first has to stop the code).
	collectTimeout = 20 * time.Second
)

// ServerTimeoutMargin is how long past a request's timeout Run waits for a server
// that enforces the timeout itself (HeaderTimeout) to stop the code and send what it
// produced: the sandbox-agent interrupts the code, waits up to its InterruptGrace (3s)
// for the kernel to capture the open figures, then kills the kernel. Past the margin
// the stream is cut and the request is a timeout all the same.
const ServerTimeoutMargin = 15 * time.Second

// Run executes one sandbox.Request in a fresh context and maps the stream onto a
// sandbox.Result, like every backend's Execute:
//
//   - Input files are written into the context's working directory by a prelude, a
//     separate execution before the code (E2B's /execute has no upload, so this
//     works against both servers). It also defines OUTPUT_DIR ("outputs/", created),
//     and DATA_PATH and df (pandas) when a data.csv is given.
//   - Stdout and Stderr are capped (MaxOutputBytes); Text is the main result's text.
//   - Figures (png/svg results, plotly figures with their JSON) become
//     sandbox.Artifact{Figure: true} named figure_N.png / plotly_N.html as the Local
//     backend names them; Charts come from the agent's chart-data extra (absent on
//     E2B).
//   - Files the code wrote in its working directory (outputs/ and anywhere below it,
//     hidden names and the input files excepted) become sandbox.Artifact{Figure: false}
//     named by their relative path, as the Local backend returns them; an epilogue
//     execution in the same context reads them back.
//   - req.Timeout: the request asks the server to enforce it (TimeoutMS). The
//     sandbox-agent does: it interrupts the code, the kernel captures the figures
//     still open, and the stream ends with an error named Timeout. A server that
//     does not (E2B's) has its stream cut at the timeout, which interrupts the code.
//     Either way the Result has TimedOut and an error named Timeout, and keeps what
//     came before.
//
// Errors: an unreachable sandbox, a 404 or 5xx, or a stream cut before
// end_of_execution wrap sandbox.ErrSandboxLost; 401/403 is ErrUnauthorized (wrapping
// sandbox.ErrUnavailable); ctx ending returns ctx's error.
func (c *Client) Run(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	r, _, err := c.RunChecked(ctx, req)
	return r, err
}

// RunChecked is Run, and also says whether the job's context is gone: deleteErr is
// the error of deleting it (nil once the server answered the DELETE, or when no
// context was created). A caller that gives the sandbox another job needs no
// ListContexts to know the job left nothing behind.
func (c *Client) RunChecked(ctx context.Context, req sandbox.Request) (r *sandbox.Result, deleteErr error, err error) {
	r, err = c.run(ctx, req, &deleteErr)
	return r, deleteErr, err
}

func (c *Client) run(ctx context.Context, req sandbox.Request, deleteErr *error) (*sandbox.Result, error) {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = c.DefaultTimeout
	}
	if timeout <= 0 {
		timeout = sandbox.DefaultLimits.Timeout
	}
	if err := CheckRequest(req); err != nil {
		return nil, err
	}
	formats, _ := figureFormats(req.Formats)
	prelude, err := preludeCode(req.Files, formats)
	if err != nil {
		return nil, err
	}

	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	defer cancelSetup()
	cx, err := c.CreateContext(setupCtx, CreateContextRequest{Language: "python"})
	if err != nil {
		return nil, c.abandoned(ctx, err)
	}
	defer func() {
		// Best effort: a sandbox that outlives its job is destroyed by its owner anyway.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		*deleteErr = c.DeleteContext(dctx, cx.ID)
	}()

	m := newResultMapper(c, formats)
	if cx.Cells && !c.NoCells {
		return c.runCells(ctx, cx, req, prelude, timeout, m)
	}
	var preludeErr *Message
	err = c.execute(setupCtx, ExecuteRequest{Code: prelude, ContextID: cx.ID}, m.budget, nil, func(msg Message) error {
		if msg.Type == TypeError && preludeErr == nil {
			msg.Name, msg.Value, msg.Traceback = capText(msg.Name, 256), capText(msg.Value, 4<<10), capText(msg.Traceback, 16<<10)
			preludeErr = &msg
		}
		return nil
	})
	var tooLarge *OutputTooLargeError
	if errors.As(err, &tooLarge) && ctx.Err() == nil {
		return m.tooLarge(tooLarge, 0), nil
	}
	if err != nil {
		return nil, c.abandoned(ctx, err)
	}
	if preludeErr != nil {
		return m.inputFilesFailed(preludeErr), nil
	}

	// The timeout: the server enforces it when it says so (HeaderTimeout), and the
	// stream then ends with the figures the interrupted code still had open; this
	// timer cuts the stream at the timeout otherwise, and ServerTimeoutMargin past it
	// when the server is wedged.
	execCtx, cancelExec := context.WithCancel(ctx)
	defer cancelExec()
	var cut atomic.Bool
	start := time.Now()
	hard := time.AfterFunc(timeout, func() { cut.Store(true); cancelExec() })
	defer hard.Stop()
	enforced := false
	onHeader := func(h http.Header) {
		if h.Get(HeaderTimeout) != "" && hard.Stop() {
			enforced = true
			hard.Reset(time.Until(start.Add(timeout + ServerTimeoutMargin)))
		}
	}
	err = c.execute(execCtx, ExecuteRequest{Code: req.Code, ContextID: cx.ID, TimeoutMS: max(timeout.Milliseconds(), 1)}, m.budget, onHeader, m.add)
	hard.Stop()
	elapsed := time.Since(start)
	switch {
	case err == nil:
		m.timedOut = enforced && m.serverTimedOut
	case ctx.Err() != nil:
		return nil, c.abandoned(ctx, err)
	case errors.As(err, &tooLarge):
		return m.tooLarge(tooLarge, elapsed), nil
	case cut.Load():
		m.timedOut = true
	default:
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, c.abandoned(ctx, nil)
	}
	if r, err := c.collectApart(ctx, cx, req.Files, m, elapsed); r != nil || err != nil {
		return r, err
	}
	return m.final(elapsed, timeout), nil
}

// collectApart collects the files the code wrote in an execution of its own. A
// result or an error ends the run there; neither means m holds what was collected
// (or why collecting failed).
func (c *Client) collectApart(ctx context.Context, cx Context, files []sandbox.File, m *resultMapper, elapsed time.Duration) (*sandbox.Result, error) {
	err := c.collectFiles(ctx, cx, files, m)
	var tooLarge *OutputTooLargeError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, c.abandoned(ctx, err)
	case errors.As(err, &tooLarge):
		return m.tooLarge(tooLarge, elapsed), nil
	default:
		m.collectFailed(err)
	}
	return nil, nil
}

// runCells is Run against a server that runs a Prelude and an Epilogue in the same
// execution (Context.Cells): the input files, the code and the collection of the
// files it wrote take one round trip. The Result is Run's on any server: the same
// errors, the same timeout (the code's alone), the same caps.
func (c *Client) runCells(ctx context.Context, cx Context, req sandbox.Request, prelude string, timeout time.Duration, m *resultMapper) (*sandbox.Result, error) {
	epilogue, col, err := newCollector(cx, req.Files, m)
	if err != nil {
		return nil, err
	}
	execCtx, cancelExec := context.WithCancel(ctx)
	defer cancelExec()
	// One timer bounds each cell in turn: the prelude by setupTimeout, the code by its
	// timeout (plus ServerTimeoutMargin when the server enforces it, as the agent
	// does), the epilogue by collectTimeout. cut says it fired.
	var cut atomic.Bool
	timer := time.AfterFunc(setupTimeout, func() { cut.Store(true); cancelExec() })
	defer timer.Stop()
	const (
		inPrelude = iota
		inCode
		inEpilogue
	)
	phase, enforced := inPrelude, false
	var start time.Time
	var elapsed time.Duration
	var preludeErr *Message
	next := func(to int, limit time.Duration) error {
		if !timer.Stop() {
			return errCellCut // the timer fired: the stream is being cut
		}
		phase = to
		timer.Reset(limit)
		return nil
	}
	onHeader := func(h http.Header) { enforced = h.Get(HeaderTimeout) != "" }
	err = c.execute(execCtx, ExecuteRequest{Code: req.Code, ContextID: cx.ID, TimeoutMS: max(timeout.Milliseconds(), 1), Prelude: prelude, Epilogue: epilogue},
		m.budget, onHeader, func(msg Message) error {
			switch {
			case msg.Type == TypeCell && msg.Name == CellCode && phase == inPrelude:
				limit := timeout
				if enforced {
					limit += ServerTimeoutMargin
				}
				start = time.Now()
				return next(inCode, limit)
			case msg.Type == TypeCell && msg.Name == CellEpilogue && phase == inCode:
				elapsed = time.Since(start)
				return next(inEpilogue, collectTimeout)
			case phase == inPrelude:
				if msg.Type == TypeError && preludeErr == nil {
					msg.Name, msg.Value, msg.Traceback = capText(msg.Name, 256), capText(msg.Value, 4<<10), capText(msg.Traceback, 16<<10)
					preludeErr = &msg
				}
				return nil
			case phase == inCode:
				return m.add(msg)
			default:
				return col.add(msg)
			}
		})
	timer.Stop()
	if phase == inCode {
		elapsed = time.Since(start)
	}
	var tooLarge *OutputTooLargeError
	switch {
	case ctx.Err() != nil:
		return nil, c.abandoned(ctx, err)
	case errors.As(err, &tooLarge):
		return m.tooLarge(tooLarge, elapsed), nil
	case phase == inPrelude && err == nil && preludeErr != nil:
		return m.inputFilesFailed(preludeErr), nil
	case phase == inPrelude && err == nil:
		return nil, fmt.Errorf("%w: the sandbox ended the job before running its code", sandbox.ErrSandboxLost)
	case phase == inPrelude:
		return nil, err
	case phase == inCode && err != nil && !cut.Load():
		return nil, err
	}
	if phase >= inCode {
		m.timedOut = (enforced && m.serverTimedOut) || (phase == inCode && cut.Load())
	}
	switch {
	case phase == inCode:
		// The stream ended in the code (cut at the timeout) or the server ran no
		// epilogue: collect in an execution of its own, as on any server.
		if r, err := c.collectApart(ctx, cx, req.Files, m, elapsed); r != nil || err != nil {
			return r, err
		}
	case err != nil:
		m.collectFailed(err)
	default:
		if err := col.finish(); err != nil {
			m.collectFailed(err)
		}
	}
	return m.final(elapsed, timeout), nil
}

// errCellCut stops reading a stream whose cell's time ran out.
var errCellCut = errors.New("the cell ran past its time")

// inputFilesFailed is the Result of a job whose prelude raised.
func (m *resultMapper) inputFilesFailed(preludeErr *Message) *sandbox.Result {
	r := m.result()
	r.Success = false
	r.Error = &sandbox.ExecError{Name: sandbox.ErrNameInputFiles,
		Value: fmt.Sprintf("writing the input files into the sandbox failed: %s: %s. Send smaller or fewer files.",
			preludeErr.Name, capText(preludeErr.Value, 4<<10)), Traceback: capText(preludeErr.Traceback, 16<<10)}
	return r
}

// collectFailed notes, in Stderr, that the files the code wrote could not be collected.
func (m *resultMapper) collectFailed(err error) {
	m.stderr.write("\n[vizops] the files the code wrote could not be collected: " + err.Error())
}

// final is the job's Result once its stream is read.
func (m *resultMapper) final(elapsed, timeout time.Duration) *sandbox.Result {
	r := m.result()
	r.ExecutionTime = elapsed
	if m.timedOut {
		tb := ""
		if r.Error != nil {
			tb = r.Error.Traceback
		}
		r.Error = &sandbox.ExecError{Name: sandbox.ErrNameTimeout, Traceback: tb,
			Value: fmt.Sprintf("the code ran longer than its %s wall-clock timeout and was stopped; results produced before that are kept. Make it faster or raise the timeout.", timeout)}
		r.TimedOut, r.Success = true, false
	}
	return r
}

// abandoned prefers the caller's own context error over what it caused.
func (c *Client) abandoned(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("execution abandoned: %w", ctx.Err())
	}
	return err
}

// CheckRequest is the error Run returns for req before it reaches the sandbox: an
// input file name that is not a plain name, or a format it does not know. A caller that
// discards a sandbox on Run's errors checks first, so a bad request costs no sandbox.
func CheckRequest(req sandbox.Request) error {
	if _, err := figureFormats(req.Formats); err != nil {
		return err
	}
	for _, f := range req.Files {
		if err := validFileName(f.Name); err != nil {
			return err
		}
	}
	return nil
}

func figureFormats(in []sandbox.Format) ([]string, error) {
	var out []string
	for _, f := range in {
		switch f {
		case sandbox.FormatPNG, sandbox.FormatSVG, sandbox.FormatHTML:
			out = append(out, string(f))
		default:
			return nil, fmt.Errorf("unsupported format %q (want png, svg or html)", f)
		}
	}
	if len(out) == 0 {
		out = []string{string(sandbox.FormatPNG)}
	}
	return out, nil
}

func validFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("input file name %q must be a plain file name (no slashes, not hidden)", name)
	}
	return nil
}

// preludeCode is the Python run before the code in the same context. Its data travels
// as base64 of JSON, so no input can break out of the string literal.
func preludeCode(files []sandbox.File, formats []string) (string, error) {
	type spec struct {
		Files   [][2]string `json:"files"`
		Formats []string    `json:"formats"`
	}
	s := spec{Formats: formats, Files: [][2]string{}}
	for _, f := range files {
		s.Files = append(s.Files, [2]string{f.Name, base64.StdEncoding.EncodeToString(f.Data)})
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	return preludeDef + fmt.Sprintf(preludeCall, base64.StdEncoding.EncodeToString(b)), nil
}

// CellDefinitions are the functions the prelude and the epilogue define before they
// call them, each the exact start of its cell's code: a server may compile them once,
// ahead of any job, and run a cell that starts with one by executing the compiled
// definition and compiling only the rest (the sandbox-agent's kernels do, before they
// fork: pyrunner.Config.Precompiled). Running them so is running the cell's code.
var CellDefinitions = []string{preludeDef, collectDef}

// preludeDef writes the input files, defines OUTPUT_DIR (and DATA_PATH and df for a
// data.csv), and asks for the figure formats: EnvFigureFormats for the sandbox-agent,
// and matplotlib_inline's setting in an IPython kernel (E2B's; elsewhere the import
// is not tried: it fails, at a few ms a job). preludeCall calls it.
const preludeDef = `def __vizops_prelude(spec):
    import base64, json, os, sys
    spec = json.loads(base64.b64decode(spec))
    for name, data in spec["files"]:
        with open(name, "wb") as f:
            f.write(base64.b64decode(data))
    g = globals()
    os.makedirs("outputs", exist_ok=True)
    g["OUTPUT_DIR"] = os.path.abspath("outputs")
    figs = [f for f in spec["formats"] if f in ("png", "svg")] or ["png"]
    os.environ["` + EnvFigureFormats + `"] = ",".join(figs)
    if "IPython" in sys.modules:  # a Jupyter kernel's; a failed import costs ms elsewhere
        try:
            from matplotlib_inline.backend_inline import set_matplotlib_formats
            set_matplotlib_formats(*figs)
        except Exception:
            pass
    if any(name == "data.csv" for name, _ in spec["files"]):
        import pandas
        g["DATA_PATH"] = os.path.abspath("data.csv")
        g["df"] = pandas.read_csv(g["DATA_PATH"])
`

const preludeCall = `__vizops_prelude("%s")
del __vizops_prelude
`

// resultMapper folds the stream's messages into a Result.
type resultMapper struct {
	c        *Client
	formats  map[string]bool
	maxOut   int
	maxN     int
	maxBytes int64

	// budget counts every byte read from the sandbox for this request; what is kept
	// is bounded below it by the caps of each part.
	budget *streamBudget

	stdout, stderr capped
	text           string
	err            *sandbox.ExecError
	files          []sandbox.Artifact
	charts         []chartdata.Chart
	total          int64
	omitted        []string
	moreOmitted    int
	notes          []string // why collecting the files the code wrote stopped early
	figures, plots int
	displays       int
	timedOut       bool
	// serverTimedOut: the stream carried an error named sandbox.ErrNameTimeout (the
	// server enforced the timeout, when it answered with HeaderTimeout).
	serverTimedOut bool
}

func newResultMapper(c *Client, formats []string) *resultMapper {
	m := &resultMapper{c: c, formats: map[string]bool{}, maxOut: c.MaxOutputBytes, maxN: c.MaxArtifacts, maxBytes: c.MaxArtifactBytes}
	for _, f := range formats {
		m.formats[f] = true
	}
	if m.maxOut <= 0 {
		m.maxOut = sandbox.DefaultLimits.MaxOutputBytes
	}
	if m.maxN <= 0 {
		m.maxN = sandbox.DefaultLimits.MaxArtifacts
	}
	if m.maxBytes <= 0 {
		m.maxBytes = sandbox.DefaultLimits.MaxArtifactBytes
	}
	m.stdout.limit, m.stderr.limit = m.maxOut, m.maxOut
	limit := c.MaxStreamBytes
	if limit <= 0 {
		limit = 2*m.maxBytes + 8*int64(m.maxOut) + 16<<20
	}
	m.budget = &streamBudget{limit: limit}
	return m
}

// tooLarge is the Result of a request whose sandbox sent more than its budget after
// elapsed: what was kept so far, failed with OutputLimitExceeded.
func (m *resultMapper) tooLarge(e *OutputTooLargeError, elapsed time.Duration) *sandbox.Result {
	r := m.result()
	r.ExecutionTime = elapsed
	r.Success = false
	r.Error = &sandbox.ExecError{Name: sandbox.ErrNameOutputLimitExceeded,
		Value: fmt.Sprintf("the sandbox sent more than %s of output (%s); the request's output is limited to that, so the rest was not read. Print less, and produce fewer or smaller figures and files.", humanBytes(e.Limit), e.What)}
	return r
}

func (m *resultMapper) add(msg Message) error {
	switch msg.Type {
	case TypeStdout:
		m.stdout.write(msg.Text)
	case TypeStderr:
		m.stderr.write(msg.Text)
	case TypeError:
		if msg.Name == sandbox.ErrNameTimeout {
			m.serverTimedOut = true
		}
		if m.err == nil {
			m.err = &sandbox.ExecError{Name: capText(msg.Name, 256), Value: capText(msg.Value, 16<<10), Traceback: capText(msg.Traceback, 64<<10)}
		}
	case TypeResult:
		m.addResult(msg)
	}
	return nil
}

func (m *resultMapper) addResult(msg Message) {
	var charts []chartdata.Chart
	if raw, ok := msg.Extra[ExtraChartData]; ok {
		if json.Unmarshal(raw, &charts) != nil {
			charts = nil
		}
	}
	if plot, ok := msg.Extra[MIMEPlotly]; ok && msg.HTML != "" {
		m.plots++
		base := fmt.Sprintf("plotly_%d", m.plots)
		m.keep(base+".html", "text/html", []byte(msg.HTML))
		m.keep(base+".json", MIMEPlotly, plot)
		m.addCharts(charts, base)
		return
	}
	if msg.PNG != "" || msg.SVG != "" {
		m.figures++
		base := fmt.Sprintf("figure_%d", m.figures)
		wantPNG, wantSVG := m.formats["png"], m.formats["svg"]
		if !(wantPNG && msg.PNG != "") && !(wantSVG && msg.SVG != "") {
			wantPNG, wantSVG = true, true // none of the asked formats came: keep what did
		}
		if wantPNG && msg.PNG != "" {
			if data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(msg.PNG)); err == nil {
				m.keep(base+".png", "image/png", data)
			}
		}
		if wantSVG && msg.SVG != "" {
			m.keep(base+".svg", "image/svg+xml", []byte(msg.SVG))
		}
		m.addCharts(charts, base)
		return
	}
	if msg.Main() {
		if msg.Text != "" && m.text == "" {
			m.text = capText(msg.Text, m.maxOut)
		}
		return
	}
	if msg.HTML != "" {
		m.displays++
		m.keep(fmt.Sprintf("display_%d.html", m.displays), "text/html", []byte(msg.HTML))
	}
}

// addCharts keeps at most chartdata.MaxCharts charts, each cut to chartdata's bounds
// as it comes, so a stream of chart descriptions keeps no more than that.
func (m *resultMapper) addCharts(charts []chartdata.Chart, figure string) {
	for _, ch := range charts {
		if len(m.charts) >= chartdata.MaxCharts {
			return
		}
		ch.Figure = figure
		m.charts = append(m.charts, chartdata.Bound([]chartdata.Chart{ch})...)
	}
}

// omit names a dropped artifact; past maxOmitted names only a count is kept.
func (m *resultMapper) omit(name string) {
	if len(m.omitted) >= maxOmitted {
		m.moreOmitted++
		return
	}
	m.omitted = append(m.omitted, capText(name, 512))
}

const maxOmitted = 20

func (m *resultMapper) keep(name, mime string, data []byte) { m.add1(name, mime, data, true) }

func (m *resultMapper) keepFile(name, mime string, data []byte) { m.add1(name, mime, data, false) }

func (m *resultMapper) add1(name, mime string, data []byte, figure bool) {
	if len(m.files) >= m.maxN || m.total+int64(len(data)) > m.maxBytes {
		m.omit(fmt.Sprintf("%s (%d bytes)", name, len(data)))
		return
	}
	m.total += int64(len(data))
	m.files = append(m.files, sandbox.Artifact{Name: name, MIMEType: mime, Data: data, Figure: figure})
}

func (m *resultMapper) result() *sandbox.Result {
	r := &sandbox.Result{
		Success:   m.err == nil,
		Stdout:    m.stdout.String(),
		Stderr:    m.stderr.String(),
		Text:      m.text,
		Error:     m.err,
		Files:     m.files,
		Charts:    chartdata.Bound(m.charts),
		SandboxID: m.c.SandboxID,
	}
	if len(m.omitted) > 0 || len(m.notes) > 0 {
		var parts []string
		if len(m.omitted) > 0 {
			dropped := strings.Join(m.omitted, ", ")
			if m.moreOmitted > 0 {
				dropped += fmt.Sprintf(" and %d more", m.moreOmitted)
			}
			parts = append(parts, fmt.Sprintf("the code produced more than %d artifacts or %d bytes in total; dropped: %s", m.maxN, m.maxBytes, dropped))
		}
		if len(m.notes) > 0 {
			parts = append(parts, "collecting the files the code wrote stopped early: "+strings.Join(m.notes, "; "))
		}
		msg := strings.Join(parts, "; ") + ". Produce fewer or smaller figures and files, in a shallow folder."
		if r.Error == nil {
			r.Success = false
			r.Error = &sandbox.ExecError{Name: sandbox.ErrNameOutputLimitExceeded, Value: msg}
		} else {
			r.Stderr += "\n[vizops] " + msg
		}
	}
	return r
}

// capped keeps the first limit bytes of a stream and counts the rest.
type capped struct {
	limit   int
	b       strings.Builder
	dropped int
}

func (c *capped) write(s string) {
	room := c.limit - c.b.Len()
	if room >= len(s) {
		c.b.WriteString(s)
		return
	}
	if room > 0 {
		c.b.WriteString(strings.ToValidUTF8(s[:room], ""))
	}
	c.dropped += len(s) - max(room, 0)
}

func (c *capped) String() string {
	if c.dropped > 0 {
		return c.b.String() + fmt.Sprintf("\u2026 [truncated: %d bytes omitted]", c.dropped)
	}
	return c.b.String()
}

func capText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + fmt.Sprintf("\u2026 [truncated: %d bytes omitted]", len(s)-limit)
}

// collectFiles reads back the files the code wrote, through an epilogue in the same
// context that prints them as one JSON line (base64), within the Result's caps.
func (c *Client) collectFiles(ctx context.Context, cx Context, inputs []sandbox.File, m *resultMapper) error {
	code, col, err := newCollector(cx, inputs, m)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, collectTimeout)
	defer cancel()
	if err := c.execute(cctx, ExecuteRequest{Code: code, ContextID: cx.ID}, m.budget, nil, col.add); err != nil {
		return err
	}
	return col.finish()
}

// collector reads the epilogue's stream: its listing of the files the code wrote.
type collector struct {
	m         *resultMapper
	listLimit int
	out       strings.Builder
	failure   *Message
}

// newCollector returns the epilogue that lists the files the code wrote in cx's
// working directory (the input files excepted), within the caps m has left, and the
// collector of its stream.
func newCollector(cx Context, inputs []sandbox.File, m *resultMapper) (string, *collector, error) {
	names := make([]string, 0, len(inputs))
	for _, f := range inputs {
		names = append(names, f.Name)
	}
	// The context's working directory as it was created: the code may have changed
	// directory since.
	root := cx.Cwd
	if root == "" {
		root = "."
	}
	spec, err := json.Marshal(map[string]any{"inputs": names, "max_files": m.maxN - len(m.files), "max_bytes": m.maxBytes - m.total, "root": root})
	if err != nil {
		return "", nil, err
	}
	// The listing holds at most the bytes left in base64, and names: anything longer
	// is not the epilogue's honest answer.
	col := &collector{m: m, listLimit: base64.StdEncoding.EncodedLen(int(max(m.maxBytes-m.total, 0))) + 1<<20}
	return collectDef + fmt.Sprintf(collectCall, base64.StdEncoding.EncodeToString(spec)), col, nil
}

// add takes one message of the epilogue's stream.
func (col *collector) add(msg Message) error {
	switch msg.Type {
	case TypeStdout:
		if col.out.Len()+len(msg.Text) > col.listLimit {
			return &OutputTooLargeError{Limit: int64(col.listLimit), What: "the listing of the files the code wrote"}
		}
		col.out.WriteString(msg.Text)
	case TypeError:
		if col.failure == nil {
			msg.Name, msg.Value, msg.Traceback = capText(msg.Name, 256), capText(msg.Value, 1<<10), ""
			col.failure = &msg
		}
	}
	return nil
}

// finish keeps the files the epilogue listed, once its stream ended.
func (col *collector) finish() error {
	m := col.m
	if col.failure != nil {
		return fmt.Errorf("%s: %s", col.failure.Name, capText(col.failure.Value, 1<<10))
	}
	var got struct {
		Files []struct {
			Name string `json:"name"`
			Data []byte `json:"data"`
		} `json:"files"`
		Omitted []string `json:"omitted"`
		Notes   []string `json:"notes"`
	}
	line := col.out.String()
	if i := strings.LastIndex(line, collectMarker); i >= 0 {
		line = line[i+len(collectMarker):]
	} else {
		return errors.New("the sandbox did not list its files")
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(line)), &got); err != nil {
		return fmt.Errorf("malformed file list: %w", err)
	}
	for _, f := range got.Files {
		m.keepFile(f.Name, mimeOf(f.Name), f.Data)
	}
	for _, name := range got.Omitted {
		m.omit(name)
	}
	for _, n := range got.Notes {
		if len(m.notes) < 4 {
			m.notes = append(m.notes, capText(n, 200))
		}
	}
	return nil
}

// collectMarker starts the epilogue's JSON line, so stray output before it is skipped.
const collectMarker = "__vizops_files__"

// collectDef walks the working directory (sorted, a
// directory's files before its folders, hidden
// names and inputs skipped, regular files only, at most 16 levels and 20000 entries,
// within the caps left) and prints the files; collectCall calls it.
const collectDef = `def __vizops_collect(spec):
    import base64, json, os, stat
    spec = json.loads(base64.b64decode(spec))
    inputs, left_n, left_bytes = set(spec["inputs"]), spec["max_files"], spec["max_bytes"]
    files, omitted, budget, notes = [], [], [20000], []
    def note(msg):
        if msg not in notes:
            notes.append(msg)
    def walk(path, rel, depth):
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            return
        subdirs = []
        for e in entries:
            budget[0] -= 1
            if budget[0] < 0:
                note("more than 20000 files and directories")
                continue
            if e.name.startswith("."):
                continue
            name = rel + "/" + e.name if rel else e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    if depth < 16:
                        subdirs.append((e.path, name))
                    else:
                        note("directories nested deeper than 16")
                    continue
                st = os.lstat(e.path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or name in inputs:
                continue
            if len(files) >= left_n or st.st_size > left_bytes[0]:
                omitted.append("%s (%d bytes)" % (name, st.st_size))
                continue
            try:
                with open(e.path, "rb") as f:
                    data = f.read(left_bytes[0] + 1)
            except OSError:
                continue
            if len(data) > left_bytes[0]:
                omitted.append("%s (%d bytes)" % (name, len(data)))
                continue
            left_bytes[0] -= len(data)
            files.append({"name": name, "data": base64.b64encode(data).decode()})
        for path, name in subdirs:  # a directory's files first, then its folders
            walk(path, name, depth + 1)
    left_bytes = [left_bytes]
    walk(spec.get("root") or ".", "", 0)
    print("` + collectMarker + `" + json.dumps({"files": files, "omitted": omitted[:20], "notes": notes}))
`

// collectCall calls collectDef.
const collectCall = `__vizops_collect("%s")
del __vizops_collect
`

func mimeOf(name string) string {
	ext := strings.ToLower(name[strings.LastIndex(name, ".")+1:])
	if !strings.Contains(name, ".") {
		ext = ""
	}
	if t, ok := map[string]string{
		"png": "image/png", "svg": "image/svg+xml", "html": "text/html", "json": "application/json",
		"csv": "text/csv", "txt": "text/plain", "pdf": "application/pdf", "jpg": "image/jpeg",
		"jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp", "md": "text/markdown",
	}[ext]; ok {
		return t
	}
	return "application/octet-stream"
}
