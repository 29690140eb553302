// Package e2b runs sandboxes in the E2B cloud (or a self-hosted, E2B-compatible
// service): a client of E2B's REST API, written from its published OpenAPI spec
// (e2b-dev/E2B spec/openapi.yml), and a warm pool of E2B sandboxes behind the
// sandbox.Pool contract. Code runs in each sandbox through its code interpreter (port
// 49999), the same /execute protocol the Kubernetes backend's sandbox-agent speaks.
package e2b

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// APIKey is an E2B API key. It never prints: every fmt verb shows "[redacted]", and
// JSON holds only a short digest (so a rotated key still changes a pool's settings
// fingerprint).
type APIKey string

const redacted = "[redacted]"

// String implements fmt.Stringer.
func (APIKey) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (APIKey) GoString() string { return redacted }

// Format implements fmt.Formatter, so %s, %v, %q and %x all redact.
func (APIKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON writes a digest of the key, never the key.
func (k APIKey) MarshalJSON() ([]byte, error) {
	sum := sha256.Sum256([]byte(k))
	return json.Marshal("sha256:" + hex.EncodeToString(sum[:8]))
}

// Operation names, the op label of vizops_e2b_api_requests_total.
const (
	OpCreate     = "create"
	OpKill       = "kill"
	OpSetTimeout = "set_timeout"
	OpList       = "list"
)

// RequestTimeout bounds one API call when the caller's client sets no timeout: the
// official SDKs wait 60 s (e2b-dev/E2B js-sdk connectionConfig.ts REQUEST_TIMEOUT_MS,
// python-sdk connection_config.py REQUEST_TIMEOUT); a creation can take tens of seconds.
const RequestTimeout = 60 * time.Second

// maxMessage bounds the server's message kept in an APIError (and so in status).
const maxMessage = 256

// Client calls E2B's REST API. The key is sent as X-API-Key on every call and never
// appears in an error, even when the server echoes it. Redirects are never followed
// (a redirect would carry the key elsewhere), and the URL must be https unless
// AllowHTTP is set.
type Client struct {
	// APIURL is the API's base URL, e.g. https://api.e2b.app.
	APIURL string
	APIKey APIKey
	// AllowHTTP lets APIURL be plain http (a self-hosted service on a trusted
	// network, or a test); otherwise the key is only ever sent over https.
	AllowHTTP bool
	// HTTP is the client used; its Timeout bounds each call (nil or 0: RequestTimeout).
	// Its CheckRedirect is replaced: no redirect is followed.
	HTTP *http.Client
	// Observe, if set, is told each call's operation and status code ("error" when
	// no answer came), for metrics.
	Observe func(op, code string)
}

// NewSandbox is the body of POST /sandboxes (schema NewSandbox).
type NewSandbox struct {
	TemplateID string `json:"templateID"`
	// Timeout is the sandbox's time to live, in seconds.
	Timeout int32 `json:"timeout"`
	// Secure makes the API return an envdAccessToken for envd (port 49983). The code
	// interpreter (port 49999) does not check it; the API refuses a sandbox without
	// public traffic unless it is secure.
	Secure              bool              `json:"secure"`
	AllowInternetAccess *bool             `json:"allow_internet_access,omitempty"`
	Network             *NetworkConfig    `json:"network,omitempty"`
	Metadata            map[string]string `json:"metadata,omitempty"`
}

// NetworkConfig is schema SandboxNetworkConfig (the field used here).
type NetworkConfig struct {
	// AllowPublicTraffic false makes E2B's proxy require the sandbox's
	// trafficAccessToken as e2b-traffic-access-token on every request to any port
	// but envd's (e2b-dev/infra orchestrator pkg/proxy/proxy.go); the spec's default
	// is true: anyone with the URL reaches the port.
	AllowPublicTraffic *bool `json:"allowPublicTraffic,omitempty"`
}

// Sandbox is the answer to POST /sandboxes (schema Sandbox).
type Sandbox struct {
	TemplateID         string  `json:"templateID"`
	SandboxID          string  `json:"sandboxID"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken,omitempty"`
	TrafficAccessToken *string `json:"trafficAccessToken,omitempty"`
	Domain             *string `json:"domain,omitempty"`
}

// ListedSandbox is one item of GET /v2/sandboxes (schema ListedSandbox, the fields
// used here).
type ListedSandbox struct {
	TemplateID string            `json:"templateID"`
	SandboxID  string            `json:"sandboxID"`
	ClientID   string            `json:"clientID"`
	StartedAt  time.Time         `json:"startedAt"`
	EndAt      time.Time         `json:"endAt"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	State      string            `json:"state"`
}

// APIError is a non-2xx answer of the API (schema Error), or a call that got no
// answer (Code 0).
type APIError struct {
	Op   string
	Code int
	// Message is the server's message, with the key removed should it appear.
	Message string
	// RetryAfter is the server's Retry-After, on a 429 or 503.
	RetryAfter time.Duration
	// Err is the transport error when no answer came.
	Err error
}

func (e *APIError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("E2B API %s: no answer: %v", e.Op, e.Err)
	}
	msg := fmt.Sprintf("E2B API %s: %d %s", e.Op, e.Code, http.StatusText(e.Code))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

func (e *APIError) Unwrap() error { return e.Err }

// IsUnauthorized reports a 401 or 403: the key is wrong or revoked, or the call is
// not allowed. Forbidden tells the 403s apart.
func IsUnauthorized(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden)
}

// Forbiddance is what a 401 or 403 of the API refuses.
type Forbiddance int

const (
	// NotForbidden: not a 401 or 403.
	NotForbidden Forbiddance = iota
	// ForbiddenKey: 401, the key is wrong or revoked (the API answers 401 for a key
	// it does not know: the auth middleware's security-requirements error).
	ForbiddenKey
	// ForbiddenTeam: 403 "team is blocked" or "team is banned" (e2b-dev/infra
	// packages/api/internal/utils/error.go, db TeamBlockedError/TeamForbiddenError):
	// every call with the key fails until E2B unblocks the team.
	ForbiddenTeam
	// ForbiddenTemplate: 403 "you don't have access to template ..." (e2b-dev/infra
	// packages/api/internal/cache/templates/errors.go): this template only.
	ForbiddenTemplate
	// ForbiddenRequest: any other 403 (a feature the team does not have, a
	// sandbox past its plan's uptime): this request's settings only.
	ForbiddenRequest
)

// Forbidden classifies a 401 or 403 by its status and message.
func Forbidden(err error) Forbiddance {
	var e *APIError
	if !errors.As(err, &e) {
		return NotForbidden
	}
	switch e.Code {
	case http.StatusUnauthorized:
		return ForbiddenKey
	case http.StatusForbidden:
	default:
		return NotForbidden
	}
	m := strings.ToLower(e.Message)
	switch {
	case strings.Contains(m, "team is blocked"), strings.Contains(m, "team is banned"):
		return ForbiddenTeam
	case strings.Contains(m, "access to template"):
		return ForbiddenTemplate
	}
	return ForbiddenRequest
}

// PlanMaxTimeout reads the API's 400 "Timeout cannot be greater than N hours" (the
// team's plan, e2b-dev/infra packages/api/internal/handlers/sandbox_create.go) and
// returns N hours.
func PlanMaxTimeout(err error) (time.Duration, bool) {
	var e *APIError
	if !errors.As(err, &e) || e.Code != http.StatusBadRequest {
		return 0, false
	}
	const prefix = "timeout cannot be greater than "
	m := strings.ToLower(e.Message)
	i := strings.Index(m, prefix)
	if i < 0 {
		return 0, false
	}
	var n int
	if _, err := fmt.Sscanf(m[i+len(prefix):], "%d hour", &n); err != nil || n <= 0 {
		return 0, false
	}
	return time.Duration(n) * time.Hour, true
}

// IsNotFound reports a 404 (the sandbox does not exist, or no longer).
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == http.StatusNotFound
}

// IsRateLimited reports a 429 and the wait the server asked for (0 if none).
func IsRateLimited(err error) (time.Duration, bool) {
	var e *APIError
	if errors.As(err, &e) && e.Code == http.StatusTooManyRequests {
		return e.RetryAfter, true
	}
	return 0, false
}

// IsTransient reports an error worth retrying after a backoff: no answer (timeouts,
// refused connections), 5xx, 408 and 429.
func IsTransient(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return false
	}
	return e.Code == 0 || e.Code >= 500 || e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout
}

// Create makes a sandbox (POST /sandboxes, 201).
func (c *Client) Create(ctx context.Context, body NewSandbox) (*Sandbox, error) {
	out := &Sandbox{}
	if err := c.do(ctx, OpCreate, http.MethodPost, "/sandboxes", nil, body, out); err != nil {
		return nil, err
	}
	if out.SandboxID == "" {
		return nil, &APIError{Op: OpCreate, Code: http.StatusCreated, Message: "the answer names no sandboxID"}
	}
	return out, nil
}

// Kill kills a sandbox (DELETE /sandboxes/{sandboxID}, 204). A 404 is returned as an
// error (IsNotFound) for the caller to ignore or not.
func (c *Client) Kill(ctx context.Context, sandboxID string) error {
	return c.do(ctx, OpKill, http.MethodDelete, "/sandboxes/"+url.PathEscape(sandboxID), nil, nil, nil)
}

// SetTimeout makes the sandbox expire d from now (POST /sandboxes/{sandboxID}/timeout,
// 204); each call replaces the last. d is rounded up to whole seconds.
func (c *Client) SetTimeout(ctx context.Context, sandboxID string, d time.Duration) error {
	body := struct {
		Timeout int32 `json:"timeout"`
	}{seconds(d)}
	return c.do(ctx, OpSetTimeout, http.MethodPost, "/sandboxes/"+url.PathEscape(sandboxID)+"/timeout", nil, body, nil)
}

// List returns the running sandboxes whose metadata holds every pair of metadata
// (GET /v2/sandboxes?metadata=...&state=running), following X-Next-Token pages.
func (c *Client) List(ctx context.Context, metadata map[string]string) ([]ListedSandbox, error) {
	var all []ListedSandbox
	next := ""
	for page := 0; page < 100; page++ { // at most 10,000 sandboxes: a bound, not a limit met in practice
		q := url.Values{}
		if len(metadata) > 0 {
			q.Set("metadata", MetadataQuery(metadata))
		}
		q.Set("state", "running")
		q.Set("limit", "100")
		if next != "" {
			q.Set("nextToken", next)
		}
		var items []ListedSandbox
		var hdr http.Header
		if err := c.doHeader(ctx, OpList, http.MethodGet, "/v2/sandboxes", q, nil, &items, &hdr); err != nil {
			return nil, err
		}
		all = append(all, items...)
		next = hdr.Get("X-Next-Token")
		if next == "" || len(items) == 0 {
			break
		}
	}
	return all, nil
}

// MetadataQuery encodes a metadata filter as the API expects it: "k=v&k2=v2" with each
// key and value URL-encoded (then encoded once more as the query parameter's value),
// as the official SDKs do.
func MetadataQuery(md map[string]string) string {
	v := url.Values{}
	for k, val := range md {
		v.Set(escapeComponent(k), escapeComponent(val))
	}
	return v.Encode()
}

// ParseMetadataQuery is MetadataQuery's inverse (used by the fake API).
func ParseMetadataQuery(s string) (map[string]string, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, vals := range v {
		key, err := url.PathUnescape(k)
		if err != nil {
			return nil, err
		}
		val, err := url.PathUnescape(vals[0])
		if err != nil {
			return nil, err
		}
		out[key] = val
	}
	return out, nil
}

// escapeComponent is JavaScript's encodeURIComponent (spaces as %20, not +).
func escapeComponent(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func seconds(d time.Duration) int32 {
	s := (d + time.Second - 1) / time.Second
	if s > 86400 {
		s = 86400
	}
	if s < 1 {
		s = 1
	}
	return int32(s)
}

func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, body any, out any) error {
	return c.doHeader(ctx, op, method, path, q, body, out, nil)
}

// ErrInsecureURL is the answer to an API URL that is not https while AllowHTTP is off.
var ErrInsecureURL = errors.New("the E2B API URL must be https, or the API key would travel in clear text (a platform team may allow plain http for a trusted self-hosted endpoint)")

func (c *Client) doHeader(ctx context.Context, op, method, path string, q url.Values, body any, out any, hdr *http.Header) error {
	base, err := url.Parse(c.APIURL)
	if err != nil || base.Host == "" || (base.Scheme != "https" && !(c.AllowHTTP && base.Scheme == "http")) {
		return &APIError{Op: op, Err: fmt.Errorf("%w (got scheme %q)", ErrInsecureURL, schemeOf(base))}
	}
	u := strings.TrimRight(c.APIURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("E2B API %s: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return c.scrub(&APIError{Op: op, Err: err})
	}
	req.Header.Set("X-API-Key", string(c.APIKey))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "vizops-e2b")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		c.observe(op, "error")
		return c.scrub(&APIError{Op: op, Err: err})
	}
	defer func() { _ = resp.Body.Close() }()
	c.observe(op, strconv.Itoa(resp.StatusCode))
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return c.scrub(&APIError{Op: op, Err: err})
	}
	if resp.StatusCode/100 != 2 { // the spec documents 201 or 204; any 2xx is success
		e := &APIError{Op: op, Code: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
		var eb struct {
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Message != "" {
			msg = eb.Message
		} else if resp.StatusCode/100 == 3 {
			msg = "the API answered with a redirect, which is not followed"
		}
		// The key goes first, then the text is cut: a key cut in half would survive.
		e.Message = c.sanitize(msg)
		return c.scrub(e)
	}
	if hdr != nil {
		*hdr = resp.Header
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			return c.scrub(&APIError{Op: op, Code: resp.StatusCode, Message: fmt.Sprintf("the answer is not the documented JSON: %v", err)})
		}
	}
	return nil
}

func schemeOf(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.Scheme
}

// httpClient is c.HTTP (or a default) with RequestTimeout when it has none, and
// without redirects.
func (c *Client) httpClient() *http.Client {
	var cp http.Client
	if c.HTTP != nil {
		cp = *c.HTTP
	}
	if cp.Timeout == 0 {
		cp.Timeout = RequestTimeout
	}
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// sanitize makes a server's text fit for a status condition: the key removed
// (before anything is cut), control characters and runs of spaces folded, valid
// UTF-8, at most maxMessage bytes.
func (c *Client) sanitize(s string) string {
	if c.APIKey != "" {
		s = strings.ReplaceAll(s, string(c.APIKey), redacted)
	}
	s = strings.ToValidUTF8(s, "?")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }), " ")
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

func (c *Client) observe(op, code string) {
	if c.Observe != nil {
		c.Observe(op, code)
	}
}

// scrub removes the key from an error's text, should a server or a transport error
// (a URL with credentials, an echoed header) carry it.
func (c *Client) scrub(e *APIError) error {
	if c.APIKey == "" {
		return e
	}
	e.Message = strings.ReplaceAll(e.Message, string(c.APIKey), redacted)
	if e.Err != nil && strings.Contains(e.Err.Error(), string(c.APIKey)) {
		e.Err = errors.New(strings.ReplaceAll(e.Err.Error(), string(c.APIKey), redacted))
	}
	return e
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
