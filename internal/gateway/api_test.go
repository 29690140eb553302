package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// memBackend is a Backend in memory: keys to tenants, sandboxes by ID. It stands in for
// internal/gateway/kube (tested on envtest in test/conformance).
type memBackend struct {
	mu        sync.Mutex
	keys      map[string]Tenant
	sandboxes map[string]Sandbox
	createErr error
	agentURL  string
	// arrived and hold, when set, make Create say it started and wait for hold.
	arrived chan string
	hold    chan struct{}
}

func newMem() *memBackend {
	return &memBackend{
		keys: map[string]Tenant{
			"key-a": {Namespace: "team-a", KeyName: "a", MaxSandboxes: 1},
			"key-b": {Namespace: "team-b", KeyName: "b"},
		},
		sandboxes: map[string]Sandbox{},
	}
}

func (m *memBackend) Authenticate(_ context.Context, key string) (Tenant, error) {
	if t, ok := m.keys[key]; ok {
		return t, nil
	}
	return Tenant{}, ErrUnauthorized
}

func (m *memBackend) Create(_ context.Context, t Tenant, spec Spec) (Sandbox, error) {
	if m.arrived != nil {
		m.arrived <- spec.ID
		<-m.hold
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.createErr != nil {
		return Sandbox{}, m.createErr
	}
	envd, traffic := Tokens([]byte("k"), t.Namespace, spec.ID, "nonce")
	sb := Sandbox{
		ID: spec.ID, Namespace: t.Namespace, KeyName: t.KeyName, TemplateID: spec.TemplateID,
		Metadata: spec.Metadata, StartedAt: spec.StartedAt, EndAt: spec.EndAt,
		CPUCount: 1, MemoryMB: 1024, DiskSizeMB: 64,
		Ready: true, AgentURL: m.agentURL, AgentToken: "agent-token-" + spec.ID,
		EnvdToken: envd, TrafficToken: traffic,
	}
	m.sandboxes[sb.ID] = sb
	return sb, nil
}

func (m *memBackend) Get(_ context.Context, id string) (Sandbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sb, ok := m.sandboxes[id]; ok {
		return sb, nil
	}
	return Sandbox{}, ErrNotFound
}

func (m *memBackend) List(_ context.Context, ns string) ([]Sandbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Sandbox
	for _, sb := range m.sandboxes {
		if sb.Namespace == ns {
			out = append(out, sb)
		}
	}
	return out, nil
}

func (m *memBackend) Delete(_ context.Context, sb Sandbox) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sandboxes[sb.ID]; !ok {
		return ErrNotFound
	}
	delete(m.sandboxes, sb.ID)
	return nil
}

func (m *memBackend) SetEnd(_ context.Context, sb Sandbox, end time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.sandboxes[sb.ID]
	if !ok {
		return ErrNotFound
	}
	cur.EndAt = end
	m.sandboxes[sb.ID] = cur
	return nil
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestServer(m *memBackend) *Server {
	n := 0
	return New(Options{
		Backend: m, Domain: "e2b.example.com", MaxTimeout: time.Hour,
		Now:   func() time.Time { return t0 },
		NewID: func() string { n++; return fmt.Sprintf("sbx%d", n) },
	})
}

// seed puts sandboxes of team-a (sbxa1, sbxa2) and team-b (sbxb1) in the backend.
func seed(m *memBackend) {
	for i, sb := range []Sandbox{
		{ID: "sbxaone", Namespace: "team-a", KeyName: "a", TemplateID: "code-interpreter-v1", Metadata: map[string]string{"app": "x"}, StartedAt: t0, EndAt: t0.Add(time.Minute)},
		{ID: "sbxatwo", Namespace: "team-a", KeyName: "other", TemplateID: "python", Metadata: map[string]string{"app": "y"}, StartedAt: t0.Add(time.Second), EndAt: t0.Add(time.Minute)},
		{ID: "sbxbone", Namespace: "team-b", KeyName: "b", TemplateID: "python", StartedAt: t0, EndAt: t0.Add(time.Minute)},
	} {
		_ = i
		m.sandboxes[sb.ID] = sb
	}
}

func do(t *testing.T, h http.Handler, method, path, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "https://api.e2b.example.com"+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestControlAPIErrors(t *testing.T) {
	tests := map[string]struct {
		method, path, key, body string
		createErr               error
		want                    int
		message                 string
	}{
		"no key":                       {method: "GET", path: "/v2/sandboxes", want: 401, message: "Missing API key"},
		"a wrong key":                  {method: "GET", path: "/v2/sandboxes", key: "nope", want: 401, message: "Invalid API key"},
		"a wrong key creating":         {method: "POST", path: "/v2/sandboxes", key: "nope", body: `{"templateID":"x"}`, want: 401},
		"an unknown sandbox":           {method: "GET", path: "/sandboxes/nosuch", key: "key-a", want: 404, message: "not found"},
		"another tenant's sandbox":     {method: "GET", path: "/sandboxes/sbxbone", key: "key-a", want: 404, message: "not found"},
		"killing another's sandbox":    {method: "DELETE", path: "/sandboxes/sbxbone", key: "key-a", want: 404},
		"timeout of another's":         {method: "POST", path: "/sandboxes/sbxbone/timeout", key: "key-a", body: `{"timeout":60}`, want: 404},
		"over the key's cap":           {method: "POST", path: "/v2/sandboxes", key: "key-a", body: `{"templateID":"python"}`, want: 429, message: "maximum number of concurrent sandboxes"},
		"no template":                  {method: "POST", path: "/v2/sandboxes", key: "key-b", body: `{}`, want: 400, message: "templateID"},
		"a timeout over the maximum":   {method: "POST", path: "/v2/sandboxes", key: "key-b", body: `{"templateID":"python","timeout":7200}`, want: 400, message: "Timeout cannot be greater"},
		"envVars":                      {method: "POST", path: "/v2/sandboxes", key: "key-b", body: `{"templateID":"python","envVars":{"A":"1"}}`, want: 400, message: "envVars"},
		"autoPause":                    {method: "POST", path: "/v2/sandboxes", key: "key-b", body: `{"templateID":"python","autoPause":true}`, want: 400, message: "autoPause"},
		"public traffic":               {method: "POST", path: "/v2/sandboxes", key: "key-b", body: `{"templateID":"python","network":{"allowPublicTraffic":true}}`, want: 400, message: "allowPublicTraffic"},
		"not JSON":                     {method: "POST", path: "/v2/sandboxes", key: "key-b", body: `{`, want: 400},
		"the backend refuses":          {method: "POST", path: "/v2/sandboxes", key: "key-b", body: `{"templateID":"nope"}`, createErr: Errorf(404, "template \"nope\" not found"), want: 404, message: "template"},
		"the backend fails":            {method: "POST", path: "/v2/sandboxes", key: "key-b", body: `{"templateID":"python"}`, createErr: errors.New("etcd is down"), want: 500, message: "etcd is down"},
		"a route the gateway lacks":    {method: "GET", path: "/templates", key: "key-a", want: 404, message: "not part of E2B's API"},
		"a bad timeout body":           {method: "POST", path: "/sandboxes/sbxaone/timeout", key: "key-a", body: `{}`, want: 400},
		"a bad limit":                  {method: "GET", path: "/v2/sandboxes?limit=1000", key: "key-a", want: 400},
		"a nextToken of no sandbox":    {method: "GET", path: "/v2/sandboxes?nextToken=gone", key: "key-a", want: 400},
		"a health check without a key": {method: "GET", path: "/health", want: 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := newMem()
			seed(m)
			m.createErr = tc.createErr
			rec := do(t, newTestServer(m), tc.method, tc.path, tc.key, tc.body)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if tc.want == 200 {
				return
			}
			var e Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != tc.want || e.Message == "" {
				t.Fatalf("not E2B's error shape {code, message}: %s", rec.Body)
			}
			if !strings.Contains(e.Message, tc.message) {
				t.Errorf("message %q lacks %q", e.Message, tc.message)
			}
		})
	}
}

func TestCreateGetKill(t *testing.T) {
	m := newMem()
	s := newTestServer(m)
	rec := do(t, s, "POST", "/v2/sandboxes", "key-b", `{"templateID":"python","timeout":120,"metadata":{"app":"z"}}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	var created map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &created)
	sb := m.sandboxes["sbx1"]
	want := map[string]any{
		"sandboxID": "sbx1", "templateID": "python", "clientID": "vizops", "envdVersion": EnvdVersion,
		"envdAccessToken": sb.EnvdToken, "trafficAccessToken": sb.TrafficToken, "domain": nil,
	}
	if d := cmp.Diff(want, created); d != "" {
		t.Errorf("create answer (-want +got):\n%s", d)
	}
	if sb.Namespace != "team-b" || !sb.EndAt.Equal(t0.Add(120*time.Second)) || sb.Metadata["app"] != "z" {
		t.Errorf("created %+v", sb)
	}

	rec = do(t, s, "GET", "/sandboxes/sbx1", "key-b", "")
	var detail map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &detail)
	if rec.Code != 200 || detail["state"] != "running" || detail["endAt"] != "2026-01-02T03:06:05Z" || detail["envdAccessToken"] != sb.EnvdToken {
		t.Errorf("get: %d %s", rec.Code, rec.Body)
	}

	if rec = do(t, s, "POST", "/sandboxes/sbx1/timeout", "key-b", `{"timeout":600}`); rec.Code != 204 {
		t.Errorf("timeout: %d %s", rec.Code, rec.Body)
	}
	if got := m.sandboxes["sbx1"].EndAt; !got.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("end after timeout: %v", got)
	}
	// connect extends only when the new end is later.
	if rec = do(t, s, "POST", "/v2/sandboxes/sbx1/connect", "key-b", `{"timeout":60}`); rec.Code != 200 || !m.sandboxes["sbx1"].EndAt.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("connect: %d %s, end %v", rec.Code, rec.Body, m.sandboxes["sbx1"].EndAt)
	}

	if rec = do(t, s, "DELETE", "/sandboxes/sbx1", "key-b", ""); rec.Code != 204 {
		t.Errorf("kill: %d %s", rec.Code, rec.Body)
	}
	if rec = do(t, s, "DELETE", "/sandboxes/sbx1", "key-b", ""); rec.Code != 404 {
		t.Errorf("second kill: %d, want 404", rec.Code)
	}
	// The default timeouts: E2B's 15 s (v1) and 300 s (v2).
	do(t, s, "POST", "/sandboxes", "key-b", `{"templateID":"python"}`)
	do(t, s, "POST", "/v2/sandboxes", "key-b", `{"templateID":"python"}`)
	if a, b := m.sandboxes["sbx2"].EndAt.Sub(t0), m.sandboxes["sbx3"].EndAt.Sub(t0); a != 15*time.Second || b != 300*time.Second {
		t.Errorf("default timeouts %v and %v, want 15s and 5m", a, b)
	}
}

func TestList(t *testing.T) {
	tests := map[string]struct {
		query    string
		want     []string
		wantNext string
	}{
		"newest first":        {query: "", want: []string{"sbxatwo", "sbxaone"}},
		"oldest first":        {query: "?order=asc", want: []string{"sbxaone", "sbxatwo"}},
		"by metadata":         {query: "?metadata=" + urlQuery("app=x"), want: []string{"sbxaone"}},
		"by absent metadata":  {query: "?metadata=" + urlQuery("app=none"), want: []string{}},
		"a page":              {query: "?limit=1", want: []string{"sbxatwo"}, wantNext: "sbxaone"},
		"the next page":       {query: "?limit=1&nextToken=sbxaone", want: []string{"sbxaone"}},
		"paused only":         {query: "?state=paused", want: []string{}},
		"running and paused":  {query: "?state=running,paused", want: []string{"sbxatwo", "sbxaone"}},
		"never another's own": {query: "?metadata=" + urlQuery("app=y"), want: []string{"sbxatwo"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := newMem()
			seed(m)
			rec := do(t, newTestServer(m), "GET", "/v2/sandboxes"+tc.query, "key-a", "")
			if rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			var got []listedJSON
			_ = json.Unmarshal(rec.Body.Bytes(), &got)
			ids := []string{}
			for _, sb := range got {
				ids = append(ids, sb.SandboxID)
			}
			if d := cmp.Diff(tc.want, ids); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if next := rec.Header().Get("X-Next-Token"); next != tc.wantNext {
				t.Errorf("X-Next-Token %q, want %q", next, tc.wantNext)
			}
		})
	}
}

func urlQuery(s string) string { return strings.NewReplacer("=", "%3D", "&", "%26").Replace(s) }

// TestCapUnderConcurrentCreates: two creates of one key at once cannot both pass its cap.
func TestCapUnderConcurrentCreates(t *testing.T) {
	m := newMem()
	m.keys["key-a"] = Tenant{Namespace: "team-a", KeyName: "a", MaxSandboxes: 1}
	var mu sync.Mutex
	ids := 0
	s := New(Options{Backend: m, Domain: "e2b.example.com", NewID: func() string {
		mu.Lock()
		defer mu.Unlock()
		ids++
		return fmt.Sprintf("sbx%d", ids)
	}})
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for range 8 {
		wg.Go(func() {
			codes <- do(t, s, "POST", "/v2/sandboxes", "key-a", `{"templateID":"python"}`).Code
		})
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		if c == http.StatusCreated {
			created++
		} else if c != http.StatusTooManyRequests {
			t.Errorf("status %d", c)
		}
	}
	if created != 1 {
		t.Errorf("%d created with a cap of 1", created)
	}
}

func TestExpired(t *testing.T) {
	sbs := []Sandbox{{ID: "past", EndAt: t0.Add(-time.Second)}, {ID: "now", EndAt: t0}, {ID: "later", EndAt: t0.Add(time.Second)}, {ID: "crashed", EndAt: t0.Add(time.Hour), Ended: true}}
	var ids []string
	for _, sb := range Expired(sbs, t0) {
		ids = append(ids, sb.ID)
	}
	if d := cmp.Diff([]string{"past", "now", "crashed"}, ids); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestTokens(t *testing.T) {
	envd, traffic := Tokens([]byte("key"), "ns", "id", "nonce")
	if envd == traffic || len(envd) != 64 {
		t.Fatalf("envd %q traffic %q", envd, traffic)
	}
	for name, args := range map[string][4]string{
		"another key": {"key2", "ns", "id", "nonce"}, "another namespace": {"key", "ns2", "id", "nonce"},
		"another ID": {"key", "ns", "id2", "nonce"}, "another nonce": {"key", "ns", "id", "nonce2"},
	} {
		if e, tr := Tokens([]byte(args[0]), args[1], args[2], args[3]); e == envd || tr == traffic {
			t.Errorf("%s derives the same token", name)
		}
	}
	if e, _ := Tokens([]byte("key"), "ns", "id", "nonce"); e != envd {
		t.Error("the same inputs derive another token: a restarted gateway could not")
	}
}

// TestCreatesRunTogether: creates of one key wait for their Pods side by side (not one
// after the other), and those in flight count against the key's cap.
func TestCreatesRunTogether(t *testing.T) {
	m := newMem()
	m.keys["key-a"] = Tenant{Namespace: "team-a", KeyName: "a", MaxSandboxes: 2}
	m.arrived, m.hold = make(chan string, 4), make(chan struct{})
	var mu sync.Mutex
	ids := 0
	s := New(Options{Backend: m, Domain: "e2b.example.com", NewID: func() string {
		mu.Lock()
		defer mu.Unlock()
		ids++
		return fmt.Sprintf("sbx%d", ids)
	}})
	codes := make(chan int, 2)
	for range 2 {
		go func() { codes <- do(t, s, "POST", "/v2/sandboxes", "key-a", `{"templateID":"python"}`).Code }()
	}
	for range 2 {
		select {
		case <-m.arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the second create of the key did not start while the first waited: creates are serialised")
		}
	}
	if rec := do(t, s, "POST", "/v2/sandboxes", "key-a", `{"templateID":"python"}`); rec.Code != http.StatusTooManyRequests {
		t.Errorf("a third create while two are in flight, cap 2: %d", rec.Code)
	}
	close(m.hold)
	for range 2 {
		if c := <-codes; c != http.StatusCreated {
			t.Errorf("status %d", c)
		}
	}
	if rec := do(t, s, "POST", "/v2/sandboxes", "key-a", `{"templateID":"python"}`); rec.Code != http.StatusTooManyRequests {
		t.Errorf("a third create after two were made, cap 2: %d", rec.Code)
	}
}
