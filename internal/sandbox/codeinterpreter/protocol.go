// Package codeinterpreter speaks E2B's code-interpreter protocol: the HTTP server on
// port 49999 of an E2B sandbox (e2b-dev/code-interpreter, template/server) and vizops's
// own sandbox-agent, which serves the same protocol in sandbox Pods.
//
// The protocol, as the E2B server and its JS/Python SDKs implement it:
//
//	GET    /health                   200 "OK" (no token)
//	POST   /execute                  {code, context_id, language, env_vars} -> NDJSON stream
//	POST   /contexts                 {language, cwd} -> {id, language, cwd}
//	GET    /contexts                 -> [{id, language, cwd}]
//	POST   /contexts/{id}/restart
//	DELETE /contexts/{id}
//
// vizops's sandbox-agent takes the sandbox's access token in X-Access-Token on every
// route but /health. E2B's server checks no token: E2B's proxy checks the traffic
// token (e2b-traffic-access-token) of sandboxes without public traffic, and the SDKs
// send X-Access-Token with POST /execute only (the E2B backend does the same). The
// /execute stream is one JSON object a line: stdout/stderr {text, timestamp}, result
// {text, html, png, svg, json, ..., extra, is_main_result}, error {name, value,
// traceback}, number_of_executions {execution_count}, keepalive, and finally
// end_of_execution (written by the server after the last message).
package codeinterpreter

import "encoding/json"

// Message types of the /execute stream.
const (
	TypeStdout             = "stdout"
	TypeStderr             = "stderr"
	TypeResult             = "result"
	TypeError              = "error"
	TypeNumberOfExecutions = "number_of_executions"
	TypeEndOfExecution     = "end_of_execution"
	// TypeKeepalive is written every few seconds while an execution is silent, so a
	// client that went away is noticed; clients ignore it.
	TypeKeepalive = "keepalive"
	// TypeUnexpectedEndOfExecution is internal to the E2B server (it becomes an error
	// named UnexpectedEndOfExecution); clients treat it like a cut stream.
	TypeUnexpectedEndOfExecution = "unexpected_end_of_execution"
)

// Keys of a result's extra this package and the agent use.
const (
	// MIMEPlotly is the MIME type of a plotly figure's JSON: Jupyter's plotly renderer
	// puts it in the display data, which the E2B server leaves in a result's extra.
	MIMEPlotly = "application/vnd.plotly.v1+json"
	// ExtraChartData carries vizops's chart-data read-back of a figure
	// (internal/chartdata.Chart as JSON) in a result's extra. Only the sandbox-agent
	// sends it; E2B's server does not.
	ExtraChartData = "vizops/chart"
)

// ExecuteRequest is the body of POST /execute. At most one of ContextID and Language
// is set; with neither, the server's default Python context runs the code.
type ExecuteRequest struct {
	Code      string            `json:"code"`
	ContextID string            `json:"context_id,omitempty"`
	Language  string            `json:"language,omitempty"`
	EnvVars   map[string]string `json:"env_vars,omitempty"`
	// TimeoutMS, a vizops extension (E2B's server ignores it), asks the server to
	// enforce the execution's wall-clock timeout itself: at the timeout the
	// sandbox-agent interrupts the code, lets the kernel capture the figures still
	// open, and ends the stream with an error named sandbox.ErrNameTimeout. It also
	// bounds the kernel's CPU time (sandbox.CPUTimeLimit). A server that does so
	// answers with HeaderTimeout.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Prelude and Epilogue, a vizops extension, are cells the server runs in the same
	// context and the same request, before and after Code, so one job costs one round
	// trip instead of three. Send them only to a server that advertised it
	// (Context.Cells, from HeaderCells): E2B's server would ignore them. The stream
	// then carries the prelude's messages, a TypeCell message named CellCode, the
	// code's, a TypeCell message named CellEpilogue, the epilogue's, and
	// end_of_execution. A prelude that raised ends the stream before the code's marker
	// (the code does not run). TimeoutMS applies to Code only.
	Prelude  string `json:"vizops_prelude,omitempty"`
	Epilogue string `json:"vizops_epilogue,omitempty"`
}

// HeaderCells, on a POST /contexts (and GET /contexts) answer, says the server runs an ExecuteRequest's
// Prelude and Epilogue (the vizops extension above); its value is "1".
const HeaderCells = "X-Vizops-Cells"

// TypeCell marks, in a stream with a Prelude or an Epilogue, where the next cell's
// messages start: its Name is CellCode or CellEpilogue.
const TypeCell = "vizops_cell"

// Names of a TypeCell message.
const (
	CellCode     = "code"
	CellEpilogue = "epilogue"
)

// HeaderTimeout, on an /execute answer, says the server enforces the request's
// TimeoutMS itself (its value is the timeout in milliseconds): the client then waits
// past the timeout, by ServerTimeoutMargin, for the partial results, instead of
// cutting the stream at the timeout.
const HeaderTimeout = "X-Vizops-Timeout-Ms"

// Message is one line of the /execute stream. Which fields are set depends on Type.
type Message struct {
	Type string `json:"type"`

	// stdout, stderr, and a result's plain-text form.
	Text string `json:"text,omitempty"`
	// Timestamp of stdout/stderr (ISO 8601, as the server sends it).
	Timestamp string `json:"timestamp,omitempty"`

	// result: one display (plt.show(), display(), fig.show()) or the cell's value
	// (IsMainResult). Binary formats (PNG, JPEG, PDF) are base64.
	HTML       string                     `json:"html,omitempty"`
	Markdown   string                     `json:"markdown,omitempty"`
	SVG        string                     `json:"svg,omitempty"`
	PNG        string                     `json:"png,omitempty"`
	JPEG       string                     `json:"jpeg,omitempty"`
	PDF        string                     `json:"pdf,omitempty"`
	LaTeX      string                     `json:"latex,omitempty"`
	JSON       json.RawMessage            `json:"json,omitempty"`
	JavaScript string                     `json:"javascript,omitempty"`
	Data       json.RawMessage            `json:"data,omitempty"`
	Chart      json.RawMessage            `json:"chart,omitempty"`
	Extra      map[string]json.RawMessage `json:"extra,omitempty"`
	// IsMainResult is set on a result message (true for the cell's value).
	IsMainResult *bool `json:"is_main_result,omitempty"`

	// error
	Name      string `json:"name,omitempty"`
	Value     string `json:"value,omitempty"`
	Traceback string `json:"traceback,omitempty"`

	// number_of_executions
	ExecutionCount int `json:"execution_count,omitempty"`
}

// Main reports whether a result message is the cell's value.
func (m Message) Main() bool { return m.IsMainResult != nil && *m.IsMainResult }

// Context is an execution context: one interpreter whose variables persist between
// executions, like a notebook's kernel.
type Context struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
	// Cells is set by Client.CreateContext when the server answered with HeaderCells:
	// its executions take a Prelude and an Epilogue.
	Cells bool `json:"-"`
}

// CreateContextRequest is the body of POST /contexts. Empty fields take the server's
// defaults (python; /home/user on E2B, the agent's work directory on ours).
type CreateContextRequest struct {
	Language string `json:"language,omitempty"`
	Cwd      string `json:"cwd,omitempty"`
}
