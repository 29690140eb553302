// Package gateway serves the part of E2B's API that E2B's SDKs use for code
// interpreting, over vizops's own sandboxes: the control API (create, list, get, kill,
// set the timeout of a sandbox; written from e2b-dev/E2B's spec/openapi.yml, with E2B's
// error shape {code, message}) and E2B's sandbox routing (a request for
// <port>-<sandboxID>.<domain>, or one carrying the E2b-Sandbox-Id and E2b-Sandbox-Port
// headers, goes to the sandbox's agent, streamed, once its access token is checked).
//
// It knows nothing of Kubernetes: a Backend keeps the sandboxes (internal/gateway/kube
// keeps them as Pods) and authenticates API keys. docs/gateway.md says what is
// supported and what is not.
package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Tenant is who an API key belongs to: the namespace its sandboxes run in.
type Tenant struct {
	// Namespace of the key's Secret, and of every sandbox the key creates.
	Namespace string
	// KeyName names the key (its Secret); sandboxes carry it for the per-key cap.
	KeyName string
	// MaxSandboxes caps the key's sandboxes at once; 0 means the gateway's default.
	MaxSandboxes int
}

// Spec is a sandbox to create.
type Spec struct {
	ID         string
	TemplateID string
	Metadata   map[string]string
	StartedAt  time.Time
	EndAt      time.Time
}

// Sandbox is one sandbox as the Backend keeps it.
type Sandbox struct {
	ID         string
	Namespace  string
	KeyName    string
	TemplateID string
	Metadata   map[string]string
	StartedAt  time.Time
	EndAt      time.Time
	CPUCount   int
	MemoryMB   int
	DiskSizeMB int
	// Ready is true when the agent answers; AgentURL is where (http://<podIP>:49999).
	Ready bool
	// Ended is true when the sandbox can never serve again (its Pod failed or
	// finished: a crashed agent is not restarted); the reaper deletes it at once.
	Ended    bool
	AgentURL string
	// AgentToken is what the agent itself requires in X-Access-Token. Clients never
	// see it: the gateway checks their token (EnvdToken or TrafficToken) and sends
	// this one on.
	AgentToken string
	// EnvdToken and TrafficToken are the client's tokens: E2B's envdAccessToken (sent
	// as X-Access-Token) and trafficAccessToken (sent as E2B-Traffic-Access-Token).
	EnvdToken    string
	TrafficToken string
}

// Backend keeps sandboxes and knows API keys.
type Backend interface {
	// Authenticate returns the tenant of an API key, or ErrUnauthorized.
	Authenticate(ctx context.Context, apiKey string) (Tenant, error)
	// Create makes a sandbox and returns once its agent is ready. An *Error says what
	// the caller did wrong (an unknown template, a class that refuses the namespace).
	Create(ctx context.Context, t Tenant, spec Spec) (Sandbox, error)
	// Get finds a sandbox by ID in any namespace, or ErrNotFound.
	Get(ctx context.Context, id string) (Sandbox, error)
	// List is the sandboxes of a namespace.
	List(ctx context.Context, namespace string) ([]Sandbox, error)
	// Delete ends a sandbox (ErrNotFound when it is already gone).
	Delete(ctx context.Context, sb Sandbox) error
	// SetEnd moves a sandbox's end time.
	SetEnd(ctx context.Context, sb Sandbox, end time.Time) error
}

var (
	// ErrUnauthorized: the API key is unknown.
	ErrUnauthorized = errors.New("invalid API key")
	// ErrNotFound: no such sandbox.
	ErrNotFound = errors.New("sandbox not found")
)

// Error is an answer in E2B's error shape: {code, message}, with code the HTTP status.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// Errorf is an *Error of code.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// asError maps an error onto E2B's shape: *Error as it is, the sentinels to 401 and
// 404, anything else to a 500 that says what failed.
func asError(err error, id string) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrUnauthorized):
		return Errorf(http.StatusUnauthorized, "Invalid API key: no API key Secret of the gateway holds it")
	case errors.Is(err, ErrNotFound):
		return Errorf(http.StatusNotFound, "sandbox %q not found", id)
	case errors.Is(err, context.DeadlineExceeded):
		return Errorf(http.StatusGatewayTimeout, "the sandbox did not become ready in time: %v", err)
	default:
		return Errorf(http.StatusInternalServerError, "%v", err)
	}
}

// Tokens derives a sandbox's client tokens (E2B's envdAccessToken and
// trafficAccessToken) from the gateway's key and the sandbox's identity (its
// namespace, ID and a random nonce drawn when it was made). Nothing stores them: a
// restarted gateway derives them again.
func Tokens(key []byte, namespace, id, nonce string) (envd, traffic string) {
	derive := func(purpose string) string {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte("vizops-gateway-" + purpose + "\x00" + namespace + "/" + id + "\x00" + nonce))
		return hex.EncodeToString(mac.Sum(nil))
	}
	return derive("envd"), derive("traffic")
}

// Expired is the sandboxes whose end time has passed at now, and those that ended:
// the reaper deletes them.
func Expired(sbs []Sandbox, now time.Time) []Sandbox {
	var out []Sandbox
	for _, sb := range sbs {
		if sb.Ended || (!sb.EndAt.IsZero() && !now.Before(sb.EndAt)) {
			out = append(out, sb)
		}
	}
	return out
}
