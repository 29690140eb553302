package gateway

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// EnvdVersion is what the gateway reports as a sandbox's envd version. The SDKs
	// refuse sandboxes older than 0.1.0; vizops sandboxes run no envd at all (only the
	// code interpreter's port is served), so this only passes that check.
	EnvdVersion = "0.1.0"
	// DefaultTimeoutV1 and DefaultTimeoutV2 are E2B's defaults when a create request
	// has no timeout (POST /sandboxes, POST /v2/sandboxes).
	DefaultTimeoutV1 = 15 * time.Second
	DefaultTimeoutV2 = 300 * time.Second
	// maxBody caps a control request's body.
	maxBody = 1 << 20
	// KeepAliveTimeout is the idle time advertised to clients; the server's
	// IdleTimeout must be longer (cmd/gateway: IdleTimeout).
	KeepAliveTimeout = 120 * time.Second
	// IdleTimeout is how long the gateway's server keeps an idle connection.
	IdleTimeout = KeepAliveTimeout + 30*time.Second
	// maxPage is E2B's largest page of GET /v2/sandboxes, and its default.
	maxPage = 100
)

// Options configure a Server.
type Options struct {
	Backend Backend
	// Domain is the sandbox domain: requests for <port>-<sandboxID>.<Domain> (any
	// port after the host) are sandbox traffic.
	Domain string
	// AdvertiseDomain, when set, is the "domain" of created sandboxes; the SDKs then
	// use it instead of their E2B_DOMAIN.
	AdvertiseDomain string
	// DefaultMaxSandboxes caps each key's sandboxes when its Secret sets no cap.
	DefaultMaxSandboxes int
	// MaxTimeout is the longest timeout a sandbox may ask for (E2B: 1 h, or 24 h).
	MaxTimeout time.Duration
	// Now and NewID are the clock and the ID source (tests replace them).
	Now   func() time.Time
	NewID func() string
	// Logf logs proxy and backend failures (nil: discarded).
	Logf func(format string, args ...any)
}

// Server is the gateway: the control API and the sandbox proxy on one handler.
type Server struct {
	o     Options
	mux   *http.ServeMux
	proxy http.Handler
	// keys hold each key's creates in flight, so creates at once cannot pass its cap
	// together (the Backend lists a sandbox only once its create has returned).
	keys sync.Map // namespace/key → *keyState
}

// New returns the gateway's handler.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = NewID
	}
	if o.DefaultMaxSandboxes <= 0 {
		o.DefaultMaxSandboxes = 20
	}
	if o.MaxTimeout <= 0 {
		o.MaxTimeout = time.Hour
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	s.proxy = s.newProxy()
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	s.mux.HandleFunc("POST /sandboxes", s.auth(s.create(DefaultTimeoutV1)))
	s.mux.HandleFunc("POST /v2/sandboxes", s.auth(s.create(DefaultTimeoutV2)))
	s.mux.HandleFunc("GET /sandboxes", s.auth(s.list(false)))
	s.mux.HandleFunc("GET /v2/sandboxes", s.auth(s.list(true)))
	s.mux.HandleFunc("GET /sandboxes/{id}", s.auth(s.get))
	s.mux.HandleFunc("DELETE /sandboxes/{id}", s.auth(s.kill))
	s.mux.HandleFunc("POST /sandboxes/{id}/timeout", s.auth(s.setTimeout))
	s.mux.HandleFunc("POST /sandboxes/{id}/connect", s.auth(s.connect))
	s.mux.HandleFunc("POST /v2/sandboxes/{id}/connect", s.auth(s.connect))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Errorf(http.StatusNotFound, "%s %s is not part of E2B's API that the vizops gateway serves (docs/gateway.md lists what is)", r.Method, r.URL.Path))
	})
	return s
}

// ServeHTTP sends sandbox traffic to the proxy and the rest to the control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Tell HTTP/1.1 clients how long an idle connection stays open (the server's
	// IdleTimeout is longer). Without it Node's fetch (undici, which the JS SDKs use)
	// assumes 4 s and can destroy a pooled connection just as it reuses it for the
	// next request, which the SDK reports as a killed sandbox. Never over HTTP/2,
	// which the SDKs negotiate over TLS: there Keep-Alive is a connection-specific
	// header the protocol forbids (RFC 9113, 8.2.2), and Node refuses the whole
	// response (NGHTTP2_PROTOCOL_ERROR, "fetch failed").
	if r.ProtoMajor == 1 {
		w.Header().Set("Keep-Alive", fmt.Sprintf("timeout=%d", int(KeepAliveTimeout/time.Second)))
	}
	if port, id, ok := ParseSandboxHost(r.Host, s.o.Domain); ok {
		s.serveSandbox(w, r, id, port)
		return
	}
	if id := r.Header.Get(HeaderSandboxID); id != "" {
		port, err := strconv.Atoi(r.Header.Get(HeaderSandboxPort))
		if err != nil {
			writeError(w, Errorf(http.StatusBadRequest, "%s %q is not a port", HeaderSandboxPort, r.Header.Get(HeaderSandboxPort)))
			return
		}
		s.serveSandbox(w, r, id, port)
		return
	}
	s.mux.ServeHTTP(w, r)
}

type tenantHandler func(w http.ResponseWriter, r *http.Request, t Tenant)

// auth authenticates X-API-Key (401 in E2B's shape without a known one).
func (s *Server) auth(h tenantHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-API-Key")
		if key == "" {
			writeError(w, Errorf(http.StatusUnauthorized, "Missing API key: send it in the X-API-Key header (E2B_API_KEY for the SDKs)"))
			return
		}
		t, err := s.o.Backend.Authenticate(r.Context(), key)
		if err != nil {
			writeError(w, asError(err, ""))
			return
		}
		if t.MaxSandboxes <= 0 {
			t.MaxSandboxes = s.o.DefaultMaxSandboxes
		}
		h(w, r, t)
	}
}

// createBody is E2B's NewSandbox (and NewSandboxV2); the fields vizops cannot honour
// are read so that asking for them is an error rather than silently ignored.
type createBody struct {
	TemplateID          string            `json:"templateID"`
	Timeout             *int              `json:"timeout"`
	Metadata            map[string]string `json:"metadata"`
	EnvVars             map[string]string `json:"envVars"`
	Secure              *bool             `json:"secure"`
	AllowInternetAccess *bool             `json:"allow_internet_access"`
	AutoPause           *bool             `json:"autoPause"`
	MCP                 json.RawMessage   `json:"mcp"`
	VolumeMounts        json.RawMessage   `json:"volumeMounts"`
	Network             *struct {
		AllowPublicTraffic *bool `json:"allowPublicTraffic"`
	} `json:"network"`
}

// sandboxJSON is E2B's Sandbox (the answer to a create).
type sandboxJSON struct {
	TemplateID         string  `json:"templateID"`
	SandboxID          string  `json:"sandboxID"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken,omitempty"`
	TrafficAccessToken string  `json:"trafficAccessToken,omitempty"`
	Domain             *string `json:"domain"`
}

// listedJSON is E2B's ListedSandbox; detailJSON its SandboxDetail.
type listedJSON struct {
	TemplateID  string            `json:"templateID"`
	SandboxID   string            `json:"sandboxID"`
	ClientID    string            `json:"clientID"`
	StartedAt   time.Time         `json:"startedAt"`
	EndAt       time.Time         `json:"endAt"`
	CPUCount    int               `json:"cpuCount"`
	MemoryMB    int               `json:"memoryMB"`
	DiskSizeMB  int               `json:"diskSizeMB"`
	EnvdVersion string            `json:"envdVersion"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	State       string            `json:"state"`
}

type detailJSON struct {
	listedJSON
	EnvdAccessToken string  `json:"envdAccessToken,omitempty"`
	Domain          *string `json:"domain"`
}

func (s *Server) domain() *string {
	if s.o.AdvertiseDomain == "" {
		return nil
	}
	d := s.o.AdvertiseDomain
	return &d
}

func (s *Server) create(defaultTimeout time.Duration) tenantHandler {
	return func(w http.ResponseWriter, r *http.Request, t Tenant) {
		var body createBody
		if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&body); err != nil {
			writeError(w, Errorf(http.StatusBadRequest, "the body is not a sandbox request (E2B's NewSandbox JSON): %v", err))
			return
		}
		if e := checkCreate(body); e != nil {
			writeError(w, e)
			return
		}
		timeout := defaultTimeout
		if body.Timeout != nil {
			timeout = time.Duration(*body.Timeout) * time.Second
		}
		if e := s.checkTimeout(timeout); e != nil {
			writeError(w, e)
			return
		}

		release, e := s.reserve(r, t)
		if e != nil {
			writeError(w, e)
			return
		}
		defer release()
		now := s.o.Now()
		sb, err := s.o.Backend.Create(r.Context(), t, Spec{
			ID: s.o.NewID(), TemplateID: body.TemplateID, Metadata: body.Metadata,
			StartedAt: now, EndAt: now.Add(timeout),
		})
		if err != nil {
			s.o.Logf("create a sandbox in %s: %v", t.Namespace, err)
			writeError(w, asError(err, ""))
			return
		}
		writeJSON(w, http.StatusCreated, sandboxJSON{
			TemplateID: sb.TemplateID, SandboxID: sb.ID, ClientID: clientID,
			EnvdVersion: EnvdVersion, EnvdAccessToken: sb.EnvdToken,
			TrafficAccessToken: sb.TrafficToken, Domain: s.domain(),
		})
	}
}

type keyState struct {
	mu      sync.Mutex
	pending int
}

// reserve counts one more sandbox of the key against its cap (the Backend's sandboxes
// of the key and its creates in flight), or answers 429. release gives the place back
// once the create has returned, when the Backend lists the sandbox (or it failed).
func (s *Server) reserve(r *http.Request, t Tenant) (release func(), e *Error) {
	v, _ := s.keys.LoadOrStore(t.Namespace+"/"+t.KeyName, &keyState{})
	ks := v.(*keyState)
	ks.mu.Lock()
	defer ks.mu.Unlock()
	existing, err := s.o.Backend.List(r.Context(), t.Namespace)
	if err != nil {
		return nil, asError(err, "")
	}
	n := ks.pending
	for _, sb := range existing {
		if sb.KeyName == t.KeyName {
			n++
		}
	}
	if n >= t.MaxSandboxes {
		return nil, Errorf(http.StatusTooManyRequests,
			"You have reached the maximum number of concurrent sandboxes of this API key (%d, Secret %s/%s). Kill one (Sandbox.kill), or raise the Secret's %s annotation",
			t.MaxSandboxes, t.Namespace, t.KeyName, "viz.vizops.io/gateway-max-sandboxes")
	}
	ks.pending++
	return func() { ks.mu.Lock(); ks.pending--; ks.mu.Unlock() }, nil
}

// clientID is E2B's deprecated clientID: there is no client machine here.
const clientID = "vizops"

// checkCreate refuses what vizops sandboxes cannot do, rather than ignore it.
func checkCreate(b createBody) *Error {
	switch {
	case b.TemplateID == "":
		return Errorf(http.StatusBadRequest, "templateID is required")
	case len(b.EnvVars) > 0:
		return Errorf(http.StatusBadRequest, "envVars are not supported by the vizops gateway: pass envs to runCode instead")
	case b.AutoPause != nil && *b.AutoPause:
		return Errorf(http.StatusBadRequest, "autoPause is not supported by the vizops gateway: sandboxes end at their timeout")
	case len(b.MCP) > 0 && string(b.MCP) != "null":
		return Errorf(http.StatusBadRequest, "mcp is not supported by the vizops gateway")
	case len(b.VolumeMounts) > 0 && string(b.VolumeMounts) != "null" && string(b.VolumeMounts) != "[]":
		return Errorf(http.StatusBadRequest, "volumeMounts are not supported by the vizops gateway")
	case b.Network != nil && b.Network.AllowPublicTraffic != nil && *b.Network.AllowPublicTraffic:
		return Errorf(http.StatusBadRequest, "allowPublicTraffic true is not supported by the vizops gateway: every request to a sandbox needs its access token")
	}
	for k, v := range b.Metadata {
		if len(k)+len(v) > 1024 {
			return Errorf(http.StatusBadRequest, "metadata %q is longer than 1024 bytes", k)
		}
	}
	if len(b.Metadata) > 64 {
		return Errorf(http.StatusBadRequest, "metadata has %d keys; at most 64", len(b.Metadata))
	}
	return nil
}

func (s *Server) checkTimeout(d time.Duration) *Error {
	if d <= 0 {
		return Errorf(http.StatusBadRequest, "timeout must be a positive number of seconds")
	}
	if d > s.o.MaxTimeout {
		return Errorf(http.StatusBadRequest, "Timeout cannot be greater than %s (the gateway's --max-timeout)", s.o.MaxTimeout)
	}
	return nil
}

func listed(sb Sandbox) listedJSON {
	return listedJSON{
		TemplateID: sb.TemplateID, SandboxID: sb.ID, ClientID: clientID,
		StartedAt: sb.StartedAt.UTC(), EndAt: sb.EndAt.UTC(),
		CPUCount: sb.CPUCount, MemoryMB: sb.MemoryMB, DiskSizeMB: sb.DiskSizeMB,
		EnvdVersion: EnvdVersion, Metadata: sb.Metadata, State: "running",
	}
}

// list is GET /sandboxes (v1: every running sandbox) and GET /v2/sandboxes (a page,
// newest first by default, filtered by metadata and state, X-Next-Token to go on).
func (s *Server) list(paged bool) tenantHandler {
	return func(w http.ResponseWriter, r *http.Request, t Tenant) {
		q := r.URL.Query()
		filter, err := url.ParseQuery(q.Get("metadata"))
		if err != nil {
			writeError(w, Errorf(http.StatusBadRequest, "metadata %q is not a query string (k=v&k2=v2): %v", q.Get("metadata"), err))
			return
		}
		if states := stateFilter(q["state"]); states != nil && !slices.Contains(states, "running") {
			writeJSON(w, http.StatusOK, []listedJSON{}) // vizops sandboxes are never paused
			return
		}
		sbs, err := s.o.Backend.List(r.Context(), t.Namespace)
		if err != nil {
			writeError(w, asError(err, ""))
			return
		}
		sbs = slices.DeleteFunc(sbs, func(sb Sandbox) bool { return !matches(sb.Metadata, filter) })
		asc := q.Get("order") == "asc"
		slices.SortFunc(sbs, func(a, b Sandbox) int {
			c := a.StartedAt.Compare(b.StartedAt)
			if c == 0 {
				c = strings.Compare(a.ID, b.ID)
			}
			if !asc {
				c = -c
			}
			return c
		})
		if paged {
			limit := maxPage
			if l := q.Get("limit"); l != "" {
				n, err := strconv.Atoi(l)
				if err != nil || n < 1 || n > maxPage {
					writeError(w, Errorf(http.StatusBadRequest, "limit %q must be 1 to %d", l, maxPage))
					return
				}
				limit = n
			}
			if next := q.Get("nextToken"); next != "" {
				i := slices.IndexFunc(sbs, func(sb Sandbox) bool { return sb.ID == next })
				if i < 0 {
					writeError(w, Errorf(http.StatusBadRequest, "nextToken %q is not a sandbox of this key's list (it may have ended)", next))
					return
				}
				sbs = sbs[i:]
			}
			if len(sbs) > limit {
				w.Header().Set("X-Next-Token", sbs[limit].ID)
				sbs = sbs[:limit]
			}
		}
		out := make([]listedJSON, 0, len(sbs))
		for _, sb := range sbs {
			out = append(out, listed(sb))
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// stateFilter is the state query (repeated, or comma-separated as the SDK sends it);
// nil when absent.
func stateFilter(values []string) []string {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func matches(md map[string]string, filter url.Values) bool {
	for k, vs := range filter {
		for _, v := range vs {
			if md[k] != v {
				return false
			}
		}
	}
	return true
}

// sandboxOf is the tenant's sandbox of the path's ID: another namespace's is a 404.
func (s *Server) sandboxOf(w http.ResponseWriter, r *http.Request, t Tenant) (Sandbox, bool) {
	id := r.PathValue("id")
	sb, err := s.o.Backend.Get(r.Context(), id)
	if err == nil && sb.Namespace != t.Namespace {
		err = ErrNotFound
	}
	if err != nil {
		writeError(w, asError(err, id))
		return Sandbox{}, false
	}
	return sb, true
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, t Tenant) {
	sb, ok := s.sandboxOf(w, r, t)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, detailJSON{listedJSON: listed(sb), EnvdAccessToken: sb.EnvdToken, Domain: s.domain()})
}

func (s *Server) kill(w http.ResponseWriter, r *http.Request, t Tenant) {
	sb, ok := s.sandboxOf(w, r, t)
	if !ok {
		return
	}
	if err := s.o.Backend.Delete(r.Context(), sb); err != nil {
		writeError(w, asError(err, sb.ID))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setTimeout(w http.ResponseWriter, r *http.Request, t Tenant) {
	var body struct {
		Timeout *int `json:"timeout"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&body); err != nil || body.Timeout == nil {
		writeError(w, Errorf(http.StatusBadRequest, "the body must be {\"timeout\": <seconds>}"))
		return
	}
	d := time.Duration(*body.Timeout) * time.Second
	if e := s.checkTimeout(d); e != nil {
		writeError(w, e)
		return
	}
	sb, ok := s.sandboxOf(w, r, t)
	if !ok {
		return
	}
	if err := s.o.Backend.SetEnd(r.Context(), sb, s.o.Now().Add(d)); err != nil {
		writeError(w, asError(err, sb.ID))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// connect is E2B's connect to a running sandbox: its tokens again, and its end time
// moved to now + timeout when that is later (vizops sandboxes are never paused).
func (s *Server) connect(w http.ResponseWriter, r *http.Request, t Tenant) {
	var body struct {
		Timeout *int `json:"timeout"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, Errorf(http.StatusBadRequest, "the body must be {\"timeout\": <seconds>}: %v", err))
		return
	}
	sb, ok := s.sandboxOf(w, r, t)
	if !ok {
		return
	}
	if body.Timeout != nil {
		d := time.Duration(*body.Timeout) * time.Second
		if e := s.checkTimeout(d); e != nil {
			writeError(w, e)
			return
		}
		if end := s.o.Now().Add(d); end.After(sb.EndAt) {
			if err := s.o.Backend.SetEnd(r.Context(), sb, end); err != nil {
				writeError(w, asError(err, sb.ID))
				return
			}
		}
	}
	writeJSON(w, http.StatusOK, sandboxJSON{
		TemplateID: sb.TemplateID, SandboxID: sb.ID, ClientID: clientID,
		EnvdVersion: EnvdVersion, EnvdAccessToken: sb.EnvdToken,
		TrafficAccessToken: sb.TrafficToken, Domain: s.domain(),
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) { writeJSON(w, e.Code, e) }

// NewID is a sandbox ID as E2B's look: 20 lowercase letters and digits, a letter first
// (so it is also a Pod name, and has no '-', which separates it from the port in a
// sandbox's host name).
func NewID() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	const alnum = letters + "0123456789"
	var b [20]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	out := make([]byte, len(b))
	out[0] = letters[int(b[0])%len(letters)]
	for i := 1; i < len(b); i++ {
		out[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(out)
}

// ValidID reports whether id can be a sandbox ID of the gateway.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 63 {
		return false
	}
	for i, c := range id {
		if !(c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
