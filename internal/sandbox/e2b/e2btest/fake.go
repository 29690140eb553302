// Package e2btest is an in-process fake of the E2B REST API, written from its
// published OpenAPI spec (e2b-dev/E2B spec/openapi.yml): POST /sandboxes,
// DELETE /sandboxes/{sandboxID}, POST /sandboxes/{sandboxID}/timeout and
// GET /v2/sandboxes (metadata filter, state, limit/nextToken pages, X-Next-Token),
// authenticated by X-API-Key, with answers in the spec's Error schema. Each created
// sandbox gets a code interpreter (an http.Handler the test supplies, e.g. a local
// sandbox-agent) behind a proxy that checks E2B's routing headers (E2b-Sandbox-Id,
// E2b-Sandbox-Port) and answers 502 once the sandbox is gone.
//
// The service's rules it models, each from its source:
//   - A wrong key is 401 (the auth middleware's security-requirements error,
//     e2b-dev/infra packages/api/internal/utils/error.go); a blocked or banned team
//     is 403 "team is blocked" / "team is banned" on every call (same file, db
//     TeamBlockedError/TeamForbiddenError): BlockTeam.
//   - A template of another team is 403 "you don't have access to template 'x'"
//     (packages/api/internal/cache/templates/errors.go): ForbidTemplate; other 403s
//     (a feature the team lacks): Fail with 403.
//   - The plan's maximum sandbox length (SetPlan): a create whose timeout exceeds it
//     is 400 "Timeout cannot be greater than N hours" (handlers/sandbox_create.go); a
//     set-timeout past it is silently capped at start+max (orchestrator KeepAliveFor,
//     getMaxAllowedTTL), and one after it is 400 "Sandbox has reached maximum allowed
//     uptime". The real end time shows as endAt in GET /v2/sandboxes.
//   - The concurrent-sandbox limit (LimitConcurrent) is 429 "you have reached the
//     maximum number of concurrent E2B sandboxes (N)" with no Retry-After (the
//     orchestrator's reservation); only injected faults (Fail) carry Retry-After.
//   - network.allowPublicTraffic false needs secure true (else 400, sandbox_create.go)
//     and gives the sandbox a trafficAccessToken; the proxy then requires it as
//     e2b-traffic-access-token on every request to the interpreter port, 403 when
//     missing or wrong (orchestrator pkg/proxy/proxy.go: every port but envd's
//     49983). Nothing checks X-Access-Token on port 49999: E2B's code-interpreter
//     server checks no token (e2b-dev/code-interpreter template/server); the fake
//     records which requests carried it (InterpHeaders). The SDK
//     (@e2b/code-interpreter 2.8.0, test/conformance/e2b-js) sends
//     E2B-Traffic-Access-Token with runCode and every context call, and
//     X-Access-Token with runCode (POST /execute) only.
//   - The API finishes a creation whose client hung up (Slow delays the answer,
//     not the work), so a create that timed out on the client still made a sandbox.
//
// Faults can be injected per operation: any status (401, 403, 404, 429 with
// Retry-After, 5xx) for the next n calls, and slow answers.
//
// Not covered: templates, pause/resume, snapshots, volumes, network egress rules, logs,
// metrics, GET /sandboxes/{id}, the envd API (files, processes), the API's own
// request timeout (70 s) and the sandbox.<domain> proxy host; the sandboxes' code
// interpreter is reached at a local URL (SandboxURL), not at
// https://49999-<id>.<domain>.
package e2btest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox/e2b"
)

// Op names the fake's operations, as e2b.Op* do.
const (
	OpCreate     = e2b.OpCreate
	OpKill       = e2b.OpKill
	OpSetTimeout = e2b.OpSetTimeout
	OpList       = e2b.OpList
)

// Domain is the domain the fake returns for its sandboxes.
const Domain = "fake.e2b.test"

// Sandbox is one sandbox the fake holds.
type Sandbox struct {
	ID          string
	TemplateID  string
	Metadata    map[string]string
	AccessToken string
	Secure      bool
	Internet    bool
	// TrafficToken is set for a sandbox created with network.allowPublicTraffic false.
	TrafficToken string
	StartedAt    time.Time
	EndAt        time.Time
	// Timeouts are the timeouts set on it (create's, then each set-timeout's), in seconds.
	Timeouts []int32
	handler  http.Handler
}

type fault struct {
	status     int
	retryAfter string
	n          int
}

// Server is the fake. Create it with New; Close it when done.
type Server struct {
	// API is the REST API's server (its URL is the apiURL).
	API *httptest.Server
	// Interp serves every sandbox's code interpreter.
	Interp *httptest.Server

	mu         sync.Mutex
	key        string
	now        func() time.Time
	handler    func(id, accessToken string) http.Handler
	seq        int
	sandboxes  map[string]*Sandbox
	killed     map[string]bool
	faults     map[string][]*fault
	delay      map[string]time.Duration
	calls      map[string]int
	callTimes  map[string][]time.Time
	keysSeen   []string
	maxAlive   int
	concLimit  int
	creates    []time.Time
	blocked    string
	forbidden  map[string]bool
	maxLength  time.Duration
	interpHdr  []InterpRequest
	createdIDs []string
	ops        []string
}

// Ops are the operations called, in the order they reached the fake.
func (s *Server) Ops() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ops...)
}

// InterpRequest is one request that reached a sandbox's interpreter port.
type InterpRequest struct {
	Method, Path string
	// AccessToken and TrafficToken are the X-Access-Token and
	// e2b-traffic-access-token headers it carried.
	AccessToken, TrafficToken string
}

// BlockTeam makes every authenticated call answer 403 with msg ("team is blocked" or
// "team is banned"); "" unblocks.
func (s *Server) BlockTeam(msg string) { s.mu.Lock(); s.blocked = msg; s.mu.Unlock() }

// ForbidTemplate makes creations of templateID answer 403, as for another team's
// template.
func (s *Server) ForbidTemplate(templateID string) {
	s.mu.Lock()
	s.forbidden[templateID] = true
	s.mu.Unlock()
}

// SetPlan sets the plan's maximum sandbox length (whole hours in the messages; 0: no
// limit).
func (s *Server) SetPlan(maxLength time.Duration) {
	s.mu.Lock()
	s.maxLength = maxLength
	s.mu.Unlock()
}

// InterpHeaders are the requests that reached the interpreter port, in order.
func (s *Server) InterpHeaders() []InterpRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]InterpRequest(nil), s.interpHdr...)
}

// New starts a fake accepting apiKey. handler makes each created sandbox's code
// interpreter, given the sandbox's access token (nil: one that answers 404 to
// everything); a handler that is an io.Closer is closed when its sandbox goes.
// Agents makes one local sandbox-agent per sandbox.
func New(apiKey string, handler func(sandboxID, accessToken string) http.Handler) *Server {
	return newServer(apiKey, handler, false)
}

// NewTLS is New with the API served over https, as E2B's is: the backend then needs
// no AllowHTTP, and its HTTP client must trust the fake (API.Client()). The
// interpreters stay plain http.
func NewTLS(apiKey string, handler func(sandboxID, accessToken string) http.Handler) *Server {
	return newServer(apiKey, handler, true)
}

func newServer(apiKey string, handler func(sandboxID, accessToken string) http.Handler, tls bool) *Server {
	s := &Server{
		key: apiKey, now: time.Now, handler: handler,
		sandboxes: map[string]*Sandbox{}, killed: map[string]bool{},
		faults: map[string][]*fault{}, delay: map[string]time.Duration{}, calls: map[string]int{},
		callTimes: map[string][]time.Time{}, forbidden: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sandboxes", s.op(OpCreate, s.create))
	mux.HandleFunc("DELETE /sandboxes/{sandboxID}", s.op(OpKill, s.kill))
	mux.HandleFunc("POST /sandboxes/{sandboxID}/timeout", s.op(OpSetTimeout, s.setTimeout))
	mux.HandleFunc("GET /v2/sandboxes", s.op(OpList, s.list))
	if tls {
		s.API = httptest.NewTLSServer(mux)
	} else {
		s.API = httptest.NewServer(mux)
	}
	s.Interp = httptest.NewServer(http.HandlerFunc(s.proxy))
	return s
}

// Close stops both servers and every sandbox's interpreter.
func (s *Server) Close() {
	s.API.Close()
	s.Interp.Close()
	s.mu.Lock()
	for id := range s.sandboxes {
		s.removeLocked(id)
	}
	s.mu.Unlock()
}

// removeLocked drops a sandbox and closes its interpreter.
func (s *Server) removeLocked(id string) {
	sb, ok := s.sandboxes[id]
	if !ok {
		return
	}
	delete(s.sandboxes, id)
	if c, ok := sb.handler.(io.Closer); ok {
		go func() { _ = c.Close() }()
	}
}

// SetClock makes the fake read time from now (for sandbox expiry).
func (s *Server) SetClock(now func() time.Time) { s.mu.Lock(); s.now = now; s.mu.Unlock() }

// SetKey changes the key the fake accepts.
func (s *Server) SetKey(k string) { s.mu.Lock(); s.key = k; s.mu.Unlock() }

// SandboxURL is where the sandbox's interpreter answers (e2b.Options.SandboxURL). It
// insists on the domain the fake returned.
func (s *Server) SandboxURL(id, domain string) string {
	if domain != Domain {
		return "http://wrong-domain.invalid/" + domain
	}
	return s.Interp.URL + "/" + id
}

// Fail makes the next n calls of op answer status (with Retry-After if not empty).
func (s *Server) Fail(op string, n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], &fault{status: status, retryAfter: retryAfter, n: n})
}

// ClearFaults drops the faults Fail injected that have not fired yet.
func (s *Server) ClearFaults() { s.mu.Lock(); s.faults = map[string][]*fault{}; s.mu.Unlock() }

// End ends a sandbox without an API call, as E2B does when a sandbox dies or
// reaches its timeout: later calls about it answer 404, its interpreter 502.
func (s *Server) End(id string) { s.mu.Lock(); s.removeLocked(id); s.mu.Unlock() }

// Slow delays every answer of op by d. The operation itself is done at once, as the
// real API finishes what it started when the client hangs up.
func (s *Server) Slow(op string, d time.Duration) { s.mu.Lock(); s.delay[op] = d; s.mu.Unlock() }

// LimitConcurrent answers creation with 429 while n sandboxes run (0: no limit).
func (s *Server) LimitConcurrent(n int) { s.mu.Lock(); s.concLimit = n; s.mu.Unlock() }

// Calls is how many calls of op reached the fake (failed ones included).
func (s *Server) Calls(op string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls[op] }

// CallTimes are the fake's times of each call of op (failed ones included).
func (s *Server) CallTimes(op string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.callTimes[op]...)
}

// CreateTimes are the fake's times of each successful creation.
func (s *Server) CreateTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.creates...)
}

// Created maps every sandbox ever created through the API to whether it still runs.
func (s *Server) Created() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	out := map[string]bool{}
	for _, id := range s.createdIDs {
		_, alive := s.sandboxes[id]
		out[id] = alive
	}
	return out
}

// MaxAlive is the most sandboxes that ran at once.
func (s *Server) MaxAlive() int { s.mu.Lock(); defer s.mu.Unlock(); return s.maxAlive }

// KeysSeen are the X-API-Key values the fake received, in order.
func (s *Server) KeysSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keysSeen...)
}

// Alive lists the running sandboxes, by ID.
func (s *Server) Alive() []Sandbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	out := make([]Sandbox, 0, len(s.sandboxes))
	for _, sb := range s.sandboxes {
		c := *sb
		c.Timeouts = append([]int32(nil), sb.Timeouts...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Killed reports whether the sandbox was killed through the API.
func (s *Server) Killed(id string) bool { s.mu.Lock(); defer s.mu.Unlock(); return s.killed[id] }

// Seed adds a running sandbox as if created earlier (e.g. by an operator that
// stopped), without a code interpreter.
func (s *Server) Seed(metadata map[string]string, ttl time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := fmt.Sprintf("seeded%04d", s.seq)
	now := s.now()
	s.sandboxes[id] = &Sandbox{ID: id, TemplateID: "code-interpreter-v1", Metadata: metadata, StartedAt: now, EndAt: now.Add(ttl)}
	return id
}

func (s *Server) expireLocked() {
	now := s.now()
	for id, sb := range s.sandboxes {
		if !now.Before(sb.EndAt) {
			s.removeLocked(id)
		}
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// op wraps a handler with counting, auth, injected faults and delays.
func (s *Server) op(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[name]++
		s.ops = append(s.ops, name)
		s.callTimes[name] = append(s.callTimes[name], s.now())
		s.keysSeen = append(s.keysSeen, r.Header.Get("X-API-Key"))
		d := s.delay[name]
		var f *fault
		if q := s.faults[name]; len(q) > 0 {
			f = q[0]
			f.n--
			if f.n <= 0 {
				s.faults[name] = q[1:]
			}
		}
		key, blocked := s.key, s.blocked
		s.mu.Unlock()
		rec := httptest.NewRecorder()
		switch {
		case r.Header.Get("X-API-Key") != key:
			writeError(rec, http.StatusUnauthorized, "Invalid API key, please visit https://e2b.dev/docs/api-key")
		case blocked != "":
			writeError(rec, http.StatusForbidden, blocked)
		case f != nil:
			if f.retryAfter != "" {
				rec.Header().Set("Retry-After", f.retryAfter)
			}
			writeError(rec, f.status, fmt.Sprintf("injected %d", f.status))
		default:
			h(rec, r)
		}
		if d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return // the work is done; only the answer is lost
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TemplateID          string `json:"templateID"`
		Timeout             *int32 `json:"timeout"`
		Secure              bool   `json:"secure"`
		AllowInternetAccess *bool  `json:"allow_internet_access"`
		Network             *struct {
			AllowPublicTraffic *bool `json:"allowPublicTraffic"`
		} `json:"network"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid body: "+err.Error())
		return
	}
	if body.TemplateID == "" {
		writeError(w, http.StatusBadRequest, "templateID is required")
		return
	}
	timeout := int32(15) // the spec's default
	if body.Timeout != nil {
		timeout = *body.Timeout
	}
	private := body.Network != nil && body.Network.AllowPublicTraffic != nil && !*body.Network.AllowPublicTraffic
	if private && !body.Secure {
		writeError(w, http.StatusBadRequest, "You cannot create a sandbox without public access unless you enable secure envd access via 'secure' flag.")
		return
	}
	s.mu.Lock()
	s.expireLocked()
	if s.forbidden[body.TemplateID] {
		s.mu.Unlock()
		writeError(w, http.StatusForbidden, fmt.Sprintf("you don't have access to template '%s'", body.TemplateID))
		return
	}
	if s.maxLength > 0 && time.Duration(timeout)*time.Second > s.maxLength {
		h := int(s.maxLength / time.Hour)
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Timeout cannot be greater than %d hours", h))
		return
	}
	if s.concLimit > 0 && len(s.sandboxes) >= s.concLimit {
		s.mu.Unlock()
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("you have reached the maximum number of concurrent E2B sandboxes (%d). If you need more, please contact us at 'https://e2b.dev/docs/getting-help'", s.concLimit))
		return
	}
	s.seq++
	id := fmt.Sprintf("i%07dfake", s.seq)
	now := s.now()
	sb := &Sandbox{
		ID: id, TemplateID: body.TemplateID, Metadata: body.Metadata, Secure: body.Secure,
		Internet:  body.AllowInternetAccess == nil || *body.AllowInternetAccess,
		StartedAt: now, EndAt: now.Add(time.Duration(timeout) * time.Second), Timeouts: []int32{timeout},
	}
	if body.Secure {
		sb.AccessToken = fmt.Sprintf("envd-token-%d", s.seq)
	}
	if private {
		sb.TrafficToken = fmt.Sprintf("traffic-token-%d", s.seq)
	}
	if s.handler != nil {
		sb.handler = s.handler(id, sb.AccessToken)
	}
	s.sandboxes[id] = sb
	s.creates = append(s.creates, now)
	s.createdIDs = append(s.createdIDs, id)
	s.maxAlive = max(s.maxAlive, len(s.sandboxes))
	s.mu.Unlock()
	out := map[string]any{
		"templateID": body.TemplateID, "sandboxID": id, "clientID": "fakeclient",
		"envdVersion": "0.2.0", "domain": Domain,
	}
	if body.Secure {
		out["envdAccessToken"] = sb.AccessToken
	}
	if private {
		out["trafficAccessToken"] = sb.TrafficToken
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) kill(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("sandboxID")
	s.mu.Lock()
	s.expireLocked()
	_, ok := s.sandboxes[id]
	s.removeLocked(id)
	if ok {
		s.killed[id] = true
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("sandbox %q not found", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setTimeout(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("sandboxID")
	var body struct {
		Timeout *int32 `json:"timeout"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Timeout == nil || *body.Timeout < 0 {
		writeError(w, http.StatusBadRequest, "timeout (seconds, >= 0) is required")
		return
	}
	s.mu.Lock()
	s.expireLocked()
	sb, ok := s.sandboxes[id]
	if ok && s.maxLength > 0 && s.now().Sub(sb.StartedAt) > s.maxLength {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "Sandbox has reached maximum allowed uptime")
		return
	}
	if ok {
		now := s.now()
		end := now.Add(time.Duration(*body.Timeout) * time.Second)
		if s.maxLength > 0 && end.After(sb.StartedAt.Add(s.maxLength)) {
			end = sb.StartedAt.Add(s.maxLength) // capped without a word, as the service does
		}
		sb.EndAt = end
		sb.Timeouts = append(sb.Timeouts, *body.Timeout)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("sandbox %q not found", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var filter map[string]string
	if m := q.Get("metadata"); m != "" {
		var err error
		if filter, err = e2b.ParseMetadataQuery(m); err != nil {
			writeError(w, http.StatusBadRequest, "invalid metadata query")
			return
		}
	}
	if st := q.Get("state"); st != "" {
		for _, v := range strings.Split(st, ",") {
			if v != "running" && v != "paused" {
				writeError(w, http.StatusBadRequest, "invalid state "+v)
				return
			}
		}
	}
	limit := 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "limit must be 1 to 100")
			return
		}
		limit = n
	}
	start := 0
	if t := q.Get("nextToken"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid nextToken")
			return
		}
		start = n
	}
	s.mu.Lock()
	s.expireLocked()
	var match []*Sandbox
	for _, sb := range s.sandboxes {
		ok := true
		for k, v := range filter {
			if sb.Metadata[k] != v {
				ok = false
			}
		}
		if ok {
			match = append(match, sb)
		}
	}
	sort.Slice(match, func(i, j int) bool { return match[i].ID < match[j].ID })
	items := []map[string]any{}
	for i := start; i < len(match) && i < start+limit; i++ {
		sb := match[i]
		items = append(items, map[string]any{
			"templateID": sb.TemplateID, "sandboxID": sb.ID, "clientID": "fakeclient",
			"startedAt": sb.StartedAt.UTC().Format(time.RFC3339), "endAt": sb.EndAt.UTC().Format(time.RFC3339),
			"cpuCount": 2, "memoryMB": 512, "diskSizeMB": 1024, "metadata": sb.Metadata,
			"state": "running", "envdVersion": "0.2.0",
		})
	}
	if start+limit < len(match) {
		w.Header().Set("X-Next-Token", strconv.Itoa(start+limit))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, items)
}

// TrafficTokenHeader is the header E2B's proxy reads the traffic access token from
// (e2b-dev/infra shared grpc/proxy MetadataTrafficAccessToken).
const TrafficTokenHeader = "e2b-traffic-access-token"

// proxy routes /<sandboxID>/... to the sandbox's interpreter, as E2B's edge does by
// host: it checks E2b-Sandbox-Id and, for a sandbox without public traffic, the
// traffic access token, and answers 502 for a sandbox that is gone.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/")
	id, path, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	s.expireLocked()
	sb, ok := s.sandboxes[id]
	s.interpHdr = append(s.interpHdr, InterpRequest{Method: r.Method, Path: "/" + path,
		AccessToken: r.Header.Get("X-Access-Token"), TrafficToken: r.Header.Get(TrafficTokenHeader)})
	s.mu.Unlock()
	switch {
	case !ok:
		writeError(w, http.StatusBadGateway, fmt.Sprintf("The sandbox %s was not found", id))
		return
	case r.Header.Get("E2b-Sandbox-Id") != id:
		writeError(w, http.StatusBadRequest, "E2b-Sandbox-Id does not name this sandbox")
		return
	case r.Header.Get("E2b-Sandbox-Port") != strconv.Itoa(e2b.InterpreterPort):
		writeError(w, http.StatusBadRequest, "E2b-Sandbox-Port is not the interpreter's")
		return
	case sb.TrafficToken != "" && r.Header.Get(TrafficTokenHeader) == "":
		writeError(w, http.StatusForbidden, "missing traffic access token")
		return
	case sb.TrafficToken != "" && r.Header.Get(TrafficTokenHeader) != sb.TrafficToken:
		writeError(w, http.StatusForbidden, "invalid traffic access token")
		return
	case sb.handler == nil:
		http.NotFound(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + path
	r2.RequestURI = ""
	sb.handler.ServeHTTP(w, r2)
}
