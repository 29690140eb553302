package models

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// client is the one Client implementation; call is the provider-specific HTTP request
// (the SDK's own retries are off: retries live here, bounded by the provider timeout).
type client struct {
	provider ProviderConfig
	model    string
	key      string
	http     *http.Client
	sleep    func(context.Context, time.Duration) error
	call     func(ctx context.Context, req Request) (string, error)
}

func (c *client) Name() string { return c.provider.Name + "/" + c.model }

// attemptError is one failed HTTP attempt, classified.
type attemptError struct {
	status     int           // HTTP status, 0 when no response
	retryAfter time.Duration // server-directed delay (429/503), 0 when none
	kind       errKind
	msg        string // our words plus the provider's error.message; no key
}

type errKind int

const (
	kindTransient errKind = iota // 429, 5xx, connection, timeout
	kindTerminal                 // 401, 403, 404: a person must fix config/key/model
	kindResponse                 // 400, 413, 422, unusable answer
)

func (e *attemptError) Error() string { return e.msg }

// Backoff between transient failures: base * 2^n with jitter, capped.
const (
	backoffBase = 500 * time.Millisecond
	backoffCap  = 8 * time.Second
)

// Complete runs the call with bounded retries; the whole call, waits included, ends by
// the provider's timeout.
func (c *client) Complete(ctx context.Context, req Request) (string, error) {
	if req.MaxTokens <= 0 {
		req.MaxTokens = DefaultMaxTokens
	}
	timeout := c.provider.Timeout.Duration
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	maxRetries := DefaultMaxRetries
	if c.provider.MaxRetries != nil {
		maxRetries = *c.provider.MaxRetries
	}
	for attempt := 1; ; attempt++ {
		text, err := c.call(callCtx, req)
		if err == nil {
			return text, nil
		}
		if ctx.Err() != nil { // the caller gave up: not the provider's fault
			return "", ctx.Err()
		}
		var ae *attemptError
		if !errors.As(err, &ae) {
			ae = c.classify(callCtx, err)
		}
		msg := redact(ae.msg, c.key)
		switch ae.kind {
		case kindTerminal:
			return "", &ConfigError{Provider: c.provider.Name, Message: msg}
		case kindResponse:
			return "", &ResponseError{Provider: c.provider.Name, StatusCode: ae.status, Message: msg}
		}
		unavailable := func(extra string) error {
			return &UnavailableError{Provider: c.provider.Name, StatusCode: ae.status, Attempts: attempt, Message: msg + extra}
		}
		if callCtx.Err() != nil {
			return "", &UnavailableError{Provider: c.provider.Name, StatusCode: ae.status, Attempts: attempt,
				Message: fmt.Sprintf("no answer from model %q within the provider timeout of %s; raise timeout in the providers file or use a faster model", c.model, timeout)}
		}
		if attempt > maxRetries {
			return "", unavailable("")
		}
		wait := ae.retryAfter
		if wait <= 0 {
			wait = backoffBase << (attempt - 1)
			if wait > backoffCap {
				wait = backoffCap
			}
			wait += time.Duration(rand.Int64N(int64(wait)/4 + 1))
		}
		if dl, ok := callCtx.Deadline(); ok && time.Until(dl) < wait {
			return "", unavailable(fmt.Sprintf("; the next retry (in %s) would pass the provider timeout of %s", wait.Round(time.Millisecond), timeout))
		}
		if err := c.sleep(callCtx, wait); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", unavailable("")
		}
	}
}

// classify turns a transport-level error into an attemptError.
func (c *client) classify(callCtx context.Context, err error) *attemptError {
	where := c.baseURLForMessages()
	var dnsErr *net.DNSError
	switch {
	case callCtx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return &attemptError{kind: kindTransient, msg: "timed out"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &attemptError{kind: kindTransient, msg: fmt.Sprintf("connection refused at %s; is the model server running and is baseURL right?", where)}
	case errors.As(err, &dnsErr):
		return &attemptError{kind: kindTransient, msg: fmt.Sprintf("cannot resolve the host of %s; check baseURL", where)}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return &attemptError{kind: kindTransient, msg: fmt.Sprintf("connection to %s was reset", where)}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return &attemptError{kind: kindTransient, msg: "timed out"}
		}
		return &attemptError{kind: kindTransient, msg: fmt.Sprintf("cannot reach %s: %v", where, innermost(err))}
	}
	if strings.Contains(err.Error(), "EOF") {
		return &attemptError{kind: kindTransient, msg: fmt.Sprintf("the connection to %s closed early", where)}
	}
	// Anything else (a body that is not the API's JSON) is a response problem.
	return &attemptError{kind: kindResponse, msg: fmt.Sprintf("the answer from %s could not be read: %v", where, innermost(err))}
}

// httpError classifies an HTTP error status. detail is the provider's error.message.
func (c *client) httpError(status int, header http.Header, detail string) *attemptError {
	ae := &attemptError{status: status}
	st := fmt.Sprintf("HTTP %d", status)
	if t := http.StatusText(status); t != "" {
		st += " " + t
	}
	if detail != "" {
		if len(detail) > 300 {
			detail = detail[:300] + "..."
		}
		st += ": " + detail
	}
	switch {
	case status == http.StatusTooManyRequests:
		ae.kind = kindTransient
		ae.retryAfter = retryAfter(header)
		ae.msg = "rate limited (" + st + ")"
	case status == http.StatusRequestTimeout || status == http.StatusConflict || status >= 500:
		ae.kind = kindTransient
		ae.retryAfter = retryAfter(header)
		ae.msg = "server error (" + st + ")"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		ae.kind = kindTerminal
		ref := "the configured API key"
		if r := c.provider.APIKeySecretRef; r != nil {
			ref = fmt.Sprintf("the key in Secret %q (key %q)", r.Name, r.Key)
		} else if c.provider.APIKeyEnv != "" {
			ref = "the key in $" + c.provider.APIKeyEnv
		} else if c.key == "" {
			ref = "no API key (none is configured)"
		}
		ae.msg = fmt.Sprintf("provider %q rejected %s (%s); put a valid key in place", c.provider.Name, ref, st)
	case status == http.StatusNotFound:
		ae.kind = kindTerminal
		ae.msg = fmt.Sprintf("provider %q does not know model %q or the endpoint %s (%s); check spec.model and baseURL (for Ollama, `ollama pull` the model)",
			c.provider.Name, c.model, c.baseURLForMessages(), st)
	default:
		ae.kind = kindResponse
		ae.msg = "the request was rejected (" + st + ")"
	}
	return ae
}

func (c *client) baseURLForMessages() string {
	if c.provider.BaseURL != "" {
		return c.provider.BaseURL
	}
	if c.provider.Type == TypeAnthropic {
		return "https://api.anthropic.com"
	}
	return "https://api.openai.com/v1"
}

// retryAfter reads retry-after-ms (OpenAI), Retry-After in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func innermost(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
