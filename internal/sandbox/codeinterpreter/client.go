package codeinterpreter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// HeaderAccessToken carries the sandbox's access token on every route but /health.
const HeaderAccessToken = "X-Access-Token"

// ErrUnauthorized means the sandbox refused the access token (401 or 403). It wraps
// sandbox.ErrUnavailable: retrying with the same token cannot help.
var ErrUnauthorized = fmt.Errorf("the sandbox refused the access token: %w", sandbox.ErrUnavailable)

// DefaultMaxMessageBytes bounds one line of the /execute stream (a figure's PNG in
// base64 is one line).
const DefaultMaxMessageBytes = 64 << 20

// StatusError is a non-2xx answer of the server. Errors wrap it, so callers can read
// the code with errors.As.
type StatusError struct {
	Method, Path string
	Code         int
	// Body is the start of the server's answer (never contains the token: the server
	// does not echo headers).
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Code)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Client speaks E2B's code-interpreter protocol: the server on port 49999 of an E2B
// sandbox, and vizops's sandbox-agent. Its zero value needs only BaseURL.
type Client struct {
	// BaseURL is the server's root, e.g. http://10.0.0.7:49999 or
	// https://49999-<id>.e2b.app.
	BaseURL string
	// AccessToken is sent as X-Access-Token when non-empty. It is never logged or put
	// in errors.
	AccessToken string
	// Header is sent with every request. Optional. (The E2B backend adds its own
	// headers in its transport instead: e2b-traffic-access-token, which E2B's proxy
	// checks for sandboxes without public traffic, on every request, and
	// X-Access-Token on POST /execute only, as E2B's SDKs send it; E2B's code
	// interpreter checks no token itself.)
	Header http.Header
	// HTTP is the client used; nil means one with connect and header timeouts but no
	// overall timeout (executions stream for as long as their context allows).
	HTTP *http.Client
	// SandboxID is copied into Result.SandboxID by Run. Optional.
	SandboxID string
	// MaxOutputBytes caps Run's Stdout, Stderr and Text each (default 1 MiB, from
	// sandbox.DefaultLimits like the caps below); a truncated stream ends with a
	// visible marker.
	MaxOutputBytes int
	// MaxArtifacts and MaxArtifactBytes cap the number and total size of the figures
	// Run keeps (defaults 32 and 32 MiB); the rest are dropped and named in Stderr.
	MaxArtifacts     int
	MaxArtifactBytes int64
	// MaxMessageBytes bounds one message of the stream (default 64 MiB).
	MaxMessageBytes int
	// MaxStreamBytes bounds what Run reads from the sandbox for one request, every
	// execution's stream together (default: twice MaxArtifactBytes plus eight times
	// MaxOutputBytes plus 16 MiB, 88 MiB with the defaults). Past it Run stops reading
	// and the Result fails with OutputLimitExceeded.
	MaxStreamBytes int64
	// DefaultTimeout applies when a Request has none (default 30s).
	DefaultTimeout time.Duration
	// NoCells makes Run use three executions (prelude, code, epilogue) even on a
	// server that runs them in one (HeaderCells): for tests and benchmarks that
	// compare the two.
	NoCells bool
}

var defaultHTTP = &http.Client{Transport: &http.Transport{
	Proxy:                 nil, // sandboxes are reached directly; never through a proxy from the environment
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   10 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second, // a context may wait for its interpreter to start
	MaxIdleConnsPerHost:   4,
	IdleConnTimeout:       60 * time.Second,
	ForceAttemptHTTP2:     true,
}}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// do sends one request and returns the response when it is 2xx; any other answer,
// and transport failures, become the package's errors.
func (c *Client) do(ctx context.Context, method, path string, body any, auth bool) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return nil, fmt.Errorf("code interpreter at %s: %w", c.BaseURL, err)
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth && c.AccessToken != "" {
		req.Header.Set(HeaderAccessToken, c.AccessToken)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, c.transportError(ctx, method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	se := &StatusError{Method: method, Path: path, Code: resp.StatusCode, Body: strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?"))}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w (%w). Check the token the sandbox was given", ErrUnauthorized, se)
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode >= 500:
		// E2B's proxy answers 404 for a sandbox that is gone and 502 for one that timed
		// out; our agent answers 404 for a context it no longer has.
		return nil, fmt.Errorf("%w: %w", sandbox.ErrSandboxLost, se)
	}
	return nil, se
}

// transportError maps a failed request: the caller's own context first, then the
// sandbox being unreachable (lost).
func (c *Client) transportError(ctx context.Context, method, path string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // url.Error repeats the URL; keep the cause
	}
	return fmt.Errorf("%w: %s %s at %s: %w", sandbox.ErrSandboxLost, method, path, c.BaseURL, err)
}

// ErrStarting is Health's answer while the server is up but not ready yet (503; the
// sandbox-agent answers so until its first interpreter is warm).
var ErrStarting = errors.New("the code interpreter is still starting")

// Health checks GET /health: nil when the server is ready, ErrStarting while it
// starts, and otherwise the errors of every route (sandbox.ErrSandboxLost when it
// cannot be reached).
func (c *Client) Health(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodGet, "/health", nil, false)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusServiceUnavailable {
		return fmt.Errorf("%w (%w)", ErrStarting, se)
	}
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	return resp.Body.Close()
}

// Execute POSTs /execute and calls onMessage for each message as it streams
// (keepalives excluded). It returns nil once end_of_execution arrived; a stream that
// ends before it is sandbox.ErrSandboxLost, and a ctx that ends returns ctx's error
// (the server then interrupts the execution).
func (c *Client) Execute(ctx context.Context, req ExecuteRequest, onMessage func(Message)) error {
	return c.execute(ctx, req, nil, nil, func(m Message) error {
		if onMessage != nil {
			onMessage(m)
		}
		return nil
	})
}

// streamBudget counts the bytes one Run reads from the sandbox, over all its
// executions (prelude, code, file listing). Nil means no budget but MaxMessageBytes.
type streamBudget struct {
	limit, read int64
}

// OutputTooLargeError is what the stream reading returns once a request's sandbox
// sent more than its budget (Limit bytes); Run turns it into an
// OutputLimitExceeded result.
type OutputTooLargeError struct {
	Limit int64
	// What names what went past it ("the output", "one message", "the file listing").
	What string
}

func (e *OutputTooLargeError) Error() string {
	return fmt.Sprintf("%s: the sandbox sent more than %s (%s); the manager stopped reading it", sandbox.ErrNameOutputLimitExceeded, humanBytes(e.Limit), e.What)
}

func humanBytes(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// execute is Execute with a budget: every line read counts against b, and reading
// stops (the connection is closed, so the server stops too) once it is spent, or
// when onMessage returns an error (returned as is). onHeader, when set, sees the
// answer's header before the first message.
func (c *Client) execute(ctx context.Context, req ExecuteRequest, b *streamBudget, onHeader func(http.Header), onMessage func(Message) error) error {
	resp, err := c.do(ctx, http.MethodPost, "/execute", req, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if onHeader != nil {
		onHeader(resp.Header)
	}
	limit := c.MaxMessageBytes
	if limit <= 0 {
		limit = DefaultMaxMessageBytes
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		lineLimit := limit
		if b != nil {
			lineLimit = int(min(int64(limit), max(b.limit-b.read, 0)))
		}
		line, err := readLine(br, lineLimit)
		if b != nil {
			b.read += int64(len(line))
			if errors.Is(err, errLineTooLong) && lineLimit < limit {
				return &OutputTooLargeError{Limit: b.limit, What: "stdout, stderr, results, charts and files together"}
			}
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var m Message
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				return fmt.Errorf("%w: malformed message from %s: %w", sandbox.ErrSandboxLost, c.BaseURL, jerr)
			}
			switch m.Type {
			case TypeEndOfExecution:
				return nil
			case TypeKeepalive:
			case TypeUnexpectedEndOfExecution:
				return fmt.Errorf("%w: the server lost the execution before it finished", sandbox.ErrSandboxLost)
			default:
				if onMessage != nil {
					if err := onMessage(m); err != nil {
						return err
					}
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("execution abandoned: %w", ctx.Err())
			}
			if errors.Is(err, errLineTooLong) {
				if b != nil {
					return &OutputTooLargeError{Limit: int64(limit), What: "one message"}
				}
				return fmt.Errorf("%w: a message from %s is larger than %d bytes", sandbox.ErrSandboxLost, c.BaseURL, limit)
			}
			return fmt.Errorf("%w: the stream from %s ended before end_of_execution: %w", sandbox.ErrSandboxLost, c.BaseURL, streamCause(err))
		}
	}
}

var errLineTooLong = errors.New("line too long")

func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > limit {
			return nil, errLineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return buf, err
	}
}

func streamCause(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	if errors.Is(err, syscall.ECONNRESET) {
		return syscall.ECONNRESET
	}
	return err
}

// CreateContext creates a context (POST /contexts).
func (c *Client) CreateContext(ctx context.Context, req CreateContextRequest) (Context, error) {
	var out Context
	resp, err := c.do(ctx, http.MethodPost, "/contexts", req, true)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return out, fmt.Errorf("%w: malformed context from %s: %w", sandbox.ErrSandboxLost, c.BaseURL, err)
	}
	if out.ID == "" {
		return out, fmt.Errorf("%w: %s created a context without an id", sandbox.ErrSandboxLost, c.BaseURL)
	}
	out.Cells = resp.Header.Get(HeaderCells) == "1"
	return out, nil
}

// ListContexts lists the contexts (GET /contexts).
func (c *Client) ListContexts(ctx context.Context) ([]Context, error) {
	resp, err := c.do(ctx, http.MethodGet, "/contexts", nil, true)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []Context
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("%w: malformed context list from %s: %w", sandbox.ErrSandboxLost, c.BaseURL, err)
	}
	for i := range out {
		out[i].Cells = resp.Header.Get(HeaderCells) == "1"
	}
	return out, nil
}

// RestartContext restarts a context's interpreter, dropping its variables
// (POST /contexts/{id}/restart).
func (c *Client) RestartContext(ctx context.Context, id string) error {
	return c.discard(c.do(ctx, http.MethodPost, "/contexts/"+url.PathEscape(id)+"/restart", nil, true))
}

// DeleteContext removes a context (DELETE /contexts/{id}).
func (c *Client) DeleteContext(ctx context.Context, id string) error {
	return c.discard(c.do(ctx, http.MethodDelete, "/contexts/"+url.PathEscape(id), nil, true))
}

func (c *Client) discard(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.Body.Close()
}
