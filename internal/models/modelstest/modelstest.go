// Package modelstest provides scripted, protocol-faithful stand-ins for model APIs, for
// tests of the models, detect and codegen packages and of kubectl-viz.
//
// NewOpenAI serves POST /v1/chat/completions as OpenAI documents it (and as Ollama's
// /v1, vLLM and llama.cpp's server implement it): the chat.completion object with
// choices[0].message.content, finish_reason and usage; errors as
// {"error":{"message","type","param","code"}} with Retry-After / retry-after-ms on 429.
// NewAnthropic serves POST /v1/messages as Anthropic documents it: a message object with
// text content blocks, stop_reason and usage; errors as
// {"type":"error","error":{"type","message"},"request_id"}; it requires the
// anthropic-version header and checks x-api-key when a key is set.
//
// Not covered: streaming (SSE), tool/function calls, images and other content parts,
// n>1 choices, logprobs, structured-output json_schema enforcement (the JSON flag is
// recorded, not enforced), token counting, batches, and the models endpoints.
package modelstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Reply is one scripted answer, consumed in order, one per request.
type Reply struct {
	// Content is the assistant's text (HTTP 200).
	Content string
	// Status, when not 0 or 200, sends an error in the API's error shape.
	Status int
	// ErrType and ErrMessage fill the error object (defaults per status).
	ErrType, ErrMessage string
	// RetryAfter is sent as the Retry-After header (seconds), e.g. "1".
	RetryAfter string
	// Delay holds the answer back (a slow model; the wait ends if the client leaves).
	Delay time.Duration
	// RawBody, when set, is sent verbatim with Status (default 200) instead of JSON.
	RawBody string
	// FinishReason overrides "stop" / "end_turn".
	FinishReason string
}

// Call is what a request asked for.
type Call struct {
	Path      string
	Model     string
	System    string
	User      string
	MaxTokens int
	JSON      bool
	Header    http.Header
}

// Server is a scripted model API.
// TB is what the server needs of a test: testing.TB, or Ginkgo's GinkgoT().
type TB interface {
	Cleanup(func())
	Errorf(format string, args ...any)
}

type Server struct {
	*httptest.Server
	t         TB
	anthropic bool

	mu      sync.Mutex
	replies []Reply
	calls   []Call
	// Key, when set, must be presented (Authorization: Bearer / x-api-key), else 401.
	key string
}

// NewOpenAI starts an OpenAI-compatible server. Its BaseURL ends in /v1.
func NewOpenAI(t TB, replies ...Reply) *Server { return start(t, false, replies) }

// NewAnthropic starts an Anthropic Messages API server.
func NewAnthropic(t TB, replies ...Reply) *Server { return start(t, true, replies) }

func start(t TB, anthropic bool, replies []Reply) *Server {
	s := &Server{t: t, anthropic: anthropic, replies: replies}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// BaseURL is what goes in a provider's baseURL.
func (s *Server) BaseURL() string {
	if s.anthropic {
		return s.URL
	}
	return s.URL + "/v1"
}

// RequireKey makes the server answer 401 unless key is presented.
func (s *Server) RequireKey(key string) { s.mu.Lock(); s.key = key; s.mu.Unlock() }

// Add appends replies to the script.
func (s *Server) Add(r ...Reply) { s.mu.Lock(); s.replies = append(s.replies, r...); s.mu.Unlock() }

// Calls returns the requests received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Remaining is the number of unused replies.
func (s *Server) Remaining() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.replies) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	wantPath := "/v1/chat/completions"
	if s.anthropic {
		wantPath = "/v1/messages"
	}
	if r.Method != http.MethodPost || r.URL.Path != wantPath {
		s.writeError(w, http.StatusNotFound, "not_found_error", fmt.Sprintf("unknown route %s %s", r.Method, r.URL.Path), "")
		return
	}
	body, _ := io.ReadAll(r.Body)
	call, err := s.parse(r, body)
	if err != nil {
		s.writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error(), "")
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	key := s.key
	var reply Reply
	ok := len(s.replies) > 0
	if ok {
		reply, s.replies = s.replies[0], s.replies[1:]
	}
	n := len(s.calls)
	s.mu.Unlock()

	if s.anthropic && r.Header.Get("anthropic-version") == "" {
		s.writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required", "")
		return
	}
	if key != "" {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.anthropic && r.Header.Get("x-api-key") != "" {
			got = r.Header.Get("x-api-key") // documented; a bearer token is also accepted
		}
		if got != key {
			// Like the real APIs, echo what was presented (tests check redaction).
			s.writeError(w, http.StatusUnauthorized, "authentication_error", "Incorrect API key provided: "+got, "")
			return
		}
	}
	if !ok {
		s.t.Errorf("model server: unexpected request #%d (script exhausted): %s", n, truncate(call.User, 200))
		s.writeError(w, http.StatusInternalServerError, "api_error", "script exhausted", "")
		return
	}
	if reply.Delay > 0 {
		select {
		case <-time.After(reply.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if reply.RawBody != "" {
		st := reply.Status
		if st == 0 {
			st = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		_, _ = io.WriteString(w, reply.RawBody)
		return
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		s.writeError(w, reply.Status, reply.ErrType, reply.ErrMessage, reply.RetryAfter)
		return
	}
	s.writeOK(w, call, reply)
}

func (s *Server) parse(r *http.Request, body []byte) (Call, error) {
	c := Call{Path: r.URL.Path, Header: r.Header.Clone()}
	if s.anthropic {
		var req struct {
			Model     string `json:"model"`
			MaxTokens int    `json:"max_tokens"`
			System    json.RawMessage
			Messages  []struct {
				Role    string          `json:"role"`
				Content json.RawMessage `json:"content"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return c, fmt.Errorf("body is not JSON: %w", err)
		}
		if req.Model == "" || req.MaxTokens == 0 || len(req.Messages) == 0 {
			return c, fmt.Errorf("model, max_tokens and messages are required")
		}
		c.Model, c.MaxTokens = req.Model, req.MaxTokens
		c.System = text(req.System)
		for _, m := range req.Messages {
			if m.Role == "user" {
				c.User = text(m.Content)
			}
		}
		return c, nil
	}
	var req struct {
		Model               string `json:"model"`
		MaxTokens           int    `json:"max_tokens"`
		MaxCompletionTokens int    `json:"max_completion_tokens"`
		Messages            []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		ResponseFormat *struct {
			Type string `json:"type"`
		} `json:"response_format"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return c, fmt.Errorf("body is not JSON: %w", err)
	}
	if req.Model == "" || len(req.Messages) == 0 {
		return c, fmt.Errorf("'model' and 'messages' are required")
	}
	c.Model = req.Model
	c.MaxTokens = max(req.MaxTokens, req.MaxCompletionTokens)
	c.JSON = req.ResponseFormat != nil && req.ResponseFormat.Type == "json_object"
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			c.System = text(m.Content)
		case "user":
			c.User = text(m.Content)
		}
	}
	return c, nil
}

// text reads a content that is a string or a list of {type:text,text} parts.
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

func (s *Server) writeOK(w http.ResponseWriter, c Call, r Reply) {
	in, out := len(strings.Fields(c.System+" "+c.User)), len(strings.Fields(r.Content))
	var v any
	if s.anthropic {
		stop := r.FinishReason
		if stop == "" {
			stop = "end_turn"
		}
		v = map[string]any{
			"id":            "msg_01scripted",
			"type":          "message",
			"role":          "assistant",
			"model":         c.Model,
			"content":       []any{map[string]any{"type": "text", "text": r.Content, "citations": nil}},
			"stop_reason":   stop,
			"stop_sequence": nil,
			"usage":         map[string]any{"input_tokens": in, "output_tokens": out, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
		}
		w.Header().Set("request-id", "req_01scripted")
	} else {
		finish := r.FinishReason
		if finish == "" {
			finish = "stop"
		}
		v = map[string]any{
			"id":      "chatcmpl-scripted",
			"object":  "chat.completion",
			"created": time.Now().Unix(),
			"model":   c.Model,
			"choices": []any{map[string]any{
				"index":         0,
				"message":       map[string]any{"role": "assistant", "content": r.Content, "refusal": nil},
				"logprobs":      nil,
				"finish_reason": finish,
			}},
			"usage":              map[string]any{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out},
			"system_fingerprint": "fp_scripted",
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, status int, typ, msg, retryAfter string) {
	if typ == "" {
		typ = map[int]string{
			400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
			404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
		}[status]
		if typ == "" {
			typ = "api_error"
		}
	}
	if msg == "" {
		msg = map[int]string{
			429: "Rate limit reached for requests", 500: "The server had an error while processing your request.",
			503: "The engine is currently overloaded, please try again later", 529: "Overloaded",
		}[status]
		if msg == "" {
			msg = http.StatusText(status)
		}
	}
	var v any
	if s.anthropic {
		v = map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}, "request_id": "req_01scripted"}
	} else {
		code := any(nil)
		if status == 429 {
			code = "rate_limit_exceeded"
		}
		if status == 401 {
			code = "invalid_api_key"
		}
		v = map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}}
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
