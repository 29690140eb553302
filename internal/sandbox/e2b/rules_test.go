package e2b_test

// Tests of the E2B service's own rules, as the fake models them from E2B's sources
// (see e2btest's package comment): 403s, the traffic token, request timeouts and lost
// answers, the plan's limits, keep-alives and the concurrency 429.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
	"github.com/vizops/viz-operator/internal/sandbox/e2b/e2btest"
)

// Item 1: a template of another team, a blocked team and a feature 403 are told
// apart, and each is remembered only as far as the answer reaches.
func TestPool403sToldApart(t *testing.T) {
	t.Run("template of another team", func(t *testing.T) {
		e := newEnv(t)
		e.autoStep(t, 10*time.Millisecond)
		e.f.ForbidTemplate("other-team/private")
		c := e.config("uid-1")
		c.TemplateID = "other-team/private"
		p := e.pool(t, 0, 1, c)
		_, err := p.Acquire(context.Background(), "ns/r")
		var fe *e2b.ForbiddenError
		if !errors.As(err, &fe) || fe.Kind != e2b.ForbiddenTemplate || !errors.Is(err, sandbox.ErrUnavailable) {
			t.Fatalf("want a template ForbiddenError, got %v", err)
		}
		if !strings.Contains(err.Error(), "other-team/private") || strings.Contains(err.Error(), "rejected the API key") {
			t.Errorf("the error should name the template, not blame the key: %v", err)
		}
		// Another pool with the same key and a template of its own team works.
		ok := e.pool(t, 1, 1, e.config("uid-2"))
		e.until(t, 0, "a warm sandbox of the second pool", func() bool { return ok.Status().Ready == 1 })
		// The refused template is not asked for again with this key.
		creates := e.f.Calls(e2btest.OpCreate)
		if _, err := e.b.NewPool(sandbox.PoolConfig{MaxSandboxes: 1}, c); !errors.As(err, &fe) {
			t.Errorf("a new pool of the refused template should fail at once: %v", err)
		}
		if e.f.Calls(e2btest.OpCreate) != creates {
			t.Errorf("the refused template was tried again")
		}
	})
	t.Run("blocked team", func(t *testing.T) {
		e := newEnv(t)
		e.f.BlockTeam("team is blocked")
		_, err := e.b.NewPool(sandbox.PoolConfig{MaxSandboxes: 1}, e.config("uid-1"))
		var fe *e2b.ForbiddenError
		if !errors.As(err, &fe) || fe.Kind != e2b.ForbiddenTeam || !strings.Contains(err.Error(), "team is blocked") {
			t.Fatalf("want a team ForbiddenError, got %v", err)
		}
		lists := e.f.Calls(e2btest.OpList)
		c := e.config("uid-2")
		c.TemplateID = "another-template"
		if _, err := e.b.NewPool(sandbox.PoolConfig{MaxSandboxes: 1}, c); !errors.As(err, &fe) {
			t.Errorf("a blocked team holds for every pool of the key: %v", err)
		}
		if e.f.Calls(e2btest.OpList) != lists {
			t.Errorf("the blocked team's key was sent again")
		}
	})
	t.Run("any other 403 is this pool's", func(t *testing.T) {
		e := newEnv(t)
		e.autoStep(t, 10*time.Millisecond)
		e.f.Fail(e2btest.OpCreate, 1, http.StatusForbidden, "")
		p := e.pool(t, 0, 1, e.config("uid-1"))
		_, err := p.Acquire(context.Background(), "ns/r")
		var fe *e2b.ForbiddenError
		if !errors.As(err, &fe) || fe.Kind != e2b.ForbiddenRequest {
			t.Fatalf("want a request ForbiddenError, got %v", err)
		}
		ok := e.pool(t, 1, 1, e.config("uid-2"))
		e.until(t, 0, "a warm sandbox of another pool with the key", func() bool { return ok.Status().Ready == 1 })
	})
}

// Item 2: sandboxes are created without public traffic, and every request to the
// interpreter carries the traffic token E2B's proxy checks.
func TestPoolPrivateTrafficWithToken(t *testing.T) {
	e := newEnv(t)
	p := e.pool(t, 1, 2, e.config("uid-1"))
	e.until(t, 0, "a warm sandbox", func() bool { return p.Status().Ready == 1 })
	alive := e.f.Alive()
	if len(alive) != 1 || alive[0].TrafficToken == "" || !alive[0].Secure {
		t.Fatalf("the sandbox should be created secure with public traffic off (a traffic token): %+v", alive)
	}
	sb, err := p.Acquire(context.Background(), "ns/r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Execute(context.Background(), sandbox.Request{Code: "1", Timeout: time.Second}); err != nil {
		t.Fatalf("the run should pass E2B's proxy: %v", err)
	}
	for _, r := range e.f.InterpHeaders() {
		if r.TrafficToken != alive[0].TrafficToken {
			t.Errorf("%s %s reached the interpreter without the traffic token", r.Method, r.Path)
		}
	}
	// Without the token the proxy refuses, even with E2B's routing headers.
	req, _ := http.NewRequest(http.MethodPost, e.f.SandboxURL(sb.ID(), e2btest.Domain)+"/execute", strings.NewReader(`{"code":"1"}`))
	req.Header.Set("E2b-Sandbox-Id", sb.ID())
	req.Header.Set("E2b-Sandbox-Port", "49999")
	req.Header.Set("X-Access-Token", alive[0].AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a request without the traffic token should be 403 at E2B's proxy, got %d", resp.StatusCode)
	}
	p.Release(sb)
}

// Item 9: X-Access-Token goes with POST /execute only, as the SDKs send it; the
// routing headers and the traffic token go with every request.
func TestInterpreterHeadersLikeSDKs(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	b := e2b.NewBackend(e2b.Options{
		Interpreter: func(ep e2b.Endpoint, hc *http.Client) e2b.Interpreter {
			return headerProbe{ep: ep, hc: hc, calls: &calls}
		},
		SandboxURL: e.f.SandboxURL, Clock: e.fc,
	})
	p, err := b.NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 1}, e.config("uid-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	e.until(t, 0, "a warm sandbox", func() bool { return p.Status().Ready == 1 })
	sb, err := p.Acquire(context.Background(), "ns/r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Execute(context.Background(), sandbox.Request{Code: "1"}); err != nil {
		t.Fatal(err)
	}
	hdrs := e.f.InterpHeaders()
	if len(hdrs) != 4 {
		t.Fatalf("want 4 requests at the interpreter, got %+v", hdrs)
	}
	for _, r := range hdrs {
		want := r.Method == http.MethodPost && r.Path == "/execute"
		if (r.AccessToken != "") != want {
			t.Errorf("%s %s: X-Access-Token %q; the SDKs send it with POST /execute only", r.Method, r.Path, r.AccessToken)
		}
		if r.TrafficToken == "" {
			t.Errorf("%s %s without the traffic token", r.Method, r.Path)
		}
	}
	p.Release(sb)
}

// headerProbe calls the interpreter's routes the way the code-interpreter client does.
type headerProbe struct {
	ep    e2b.Endpoint
	hc    *http.Client
	calls *atomic.Int32
}

func (h headerProbe) Run(ctx context.Context, _ sandbox.Request) (*sandbox.Result, error) {
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/contexts"}, {http.MethodPost, "/execute"}, {http.MethodGet, "/contexts"}, {http.MethodDelete, "/contexts/x"},
	} {
		req, _ := http.NewRequestWithContext(ctx, c.method, h.ep.URL+c.path, strings.NewReader("{}"))
		req.Header.Set("X-Access-Token", "set-by-a-careless-client")
		resp, err := h.hc.Do(req)
		if err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
		h.calls.Add(1)
	}
	return &sandbox.Result{Success: true}, nil
}

// Item 3: the SDKs' request timeout, and a creation whose answer was lost: E2B made
// the sandbox anyway, and the pool kills it before it creates the next one.
func TestClientTimeoutIsSDKs(t *testing.T) {
	if e2b.RequestTimeout != 60*time.Second {
		t.Fatalf("RequestTimeout is %s; the SDKs wait 60 s (the API allows 70 s)", e2b.RequestTimeout)
	}
}

func TestPoolKillsWhatALostCreateMade(t *testing.T) {
	e := newEnv(t)
	b := e2b.NewBackend(e2b.Options{
		Interpreter: func(ep e2b.Endpoint, hc *http.Client) e2b.Interpreter { return testInterpreter{ep, hc} },
		SandboxURL:  e.f.SandboxURL, Clock: e.fc, RequestTimeout: 200 * time.Millisecond,
	})
	e.f.Slow(e2btest.OpCreate, 2*time.Second)
	p, err := b.NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2}, e.config("uid-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	e.until(t, 0, "a creation that timed out", func() bool {
		return e.f.Calls(e2btest.OpCreate) == 1 && strings.Contains(p.Status().Degraded, "no answer")
	})
	lost := e.f.Alive()
	if len(lost) != 1 {
		t.Fatalf("the fake should have made the sandbox of the lost answer: %+v", lost)
	}
	e.f.Slow(e2btest.OpCreate, 0)
	e.until(t, 100*time.Millisecond, "a warm sandbox after the lost one", func() bool { return p.Status().Ready == 1 })
	if !e.f.Killed(lost[0].ID) {
		t.Fatalf("the sandbox of the lost answer is still running")
	}
	ops := strings.Join(e.f.Ops(), " ")
	if i, j := strings.Index(ops, e2btest.OpKill), strings.LastIndex(ops, e2btest.OpCreate); i < 0 || i > j {
		t.Errorf("the lost sandbox should be killed before the next creation: %s", ops)
	}
	if n := len(e.f.Alive()); n != 1 {
		t.Errorf("want only the new warm sandbox, %d alive", n)
	}
}

func TestCloseKillsWhatALostCreateMade(t *testing.T) {
	e := newEnv(t)
	b := e2b.NewBackend(e2b.Options{
		Interpreter: func(ep e2b.Endpoint, hc *http.Client) e2b.Interpreter { return testInterpreter{ep, hc} },
		SandboxURL:  e.f.SandboxURL, Clock: e.fc, RequestTimeout: 200 * time.Millisecond,
	})
	e.f.Slow(e2btest.OpCreate, 2*time.Second)
	p, err := b.NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2}, e.config("uid-1"))
	if err != nil {
		t.Fatal(err)
	}
	e.until(t, 0, "a creation that timed out", func() bool {
		return e.f.Calls(e2btest.OpCreate) == 1 && strings.Contains(p.Status().Degraded, "no answer")
	})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(e.f.Alive()); n != 0 {
		t.Fatalf("Close should kill the sandbox the lost creation made; %d alive", n)
	}
}

// Item 4: a timeout above the plan's maximum is refused with a condition that says
// the limit, not retried forever.
func TestPoolTimeoutAbovePlan(t *testing.T) {
	e := newEnv(t)
	e.autoStep(t, 100*time.Millisecond)
	e.f.SetPlan(time.Hour)
	c := e.config("uid-1")
	c.SandboxTimeout = 2 * time.Hour
	p := e.pool(t, 1, 1, c) // one creation at a time: none is in flight after the refusal
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.Acquire(ctx, "ns/r")
	var pl *e2b.PlanLimitError
	if !errors.As(err, &pl) || pl.Max != time.Hour || !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("want a PlanLimitError of 1h, got %v", err)
	}
	if !strings.Contains(err.Error(), "3600") || !strings.Contains(err.Error(), "sandboxTimeoutSeconds") {
		t.Errorf("the message should name the field and the plan's limit: %v", err)
	}
	if err := p.Resize(1, 1); !errors.As(err, &pl) {
		t.Errorf("Resize should report it for the pool's status: %v", err)
	}
	calls := e.f.Calls(e2btest.OpCreate)
	for i := 0; i < 20; i++ {
		e.fc.Step(time.Minute)
		time.Sleep(2 * time.Millisecond)
	}
	if got := e.f.Calls(e2btest.OpCreate); got != calls {
		t.Errorf("the pool kept creating after the plan's refusal: %d then %d", calls, got)
	}
}

// Item 5: at the CRD's minimum timeout (10 s) and the default 10 s tick, warm
// sandboxes are extended in time and never expire while warm.
func TestWarmSandboxesSurviveShortTimeout(t *testing.T) {
	e := newEnv(t)
	c := e.config("uid-1")
	c.SandboxTimeout = 10 * time.Second
	p := e.pool(t, 3, 3, c)
	e.until(t, 10*time.Millisecond, "three warm sandboxes", func() bool { return p.Status().Ready == 3 })
	for i := 0; i < 90; i++ { // 45 s of fake time
		e.fc.Step(500 * time.Millisecond)
		time.Sleep(15 * time.Millisecond)
	}
	if got := e.f.Calls(e2btest.OpCreate); got != 3 {
		t.Errorf("warm sandboxes expired and were replaced: %d creations, want 3", got)
	}
	if n := len(e.f.Alive()); n != 3 {
		t.Errorf("want the three warm sandboxes alive, %d", n)
	}
}

// Item 6: E2B caps an extension at the plan's maximum lifetime without a word; the
// pool reads the real end (endAt) and replaces the sandbox before it, never listing
// a sandbox that is gone as Ready.
func TestWarmSandboxReplacedBeforePlanMaxLifetime(t *testing.T) {
	e := newEnv(t)
	e.f.SetPlan(time.Hour)
	c := e.config("uid-1")
	c.SandboxTimeout = 300 * time.Second
	p := e.pool(t, 1, 2, c)
	e.until(t, 0, "a warm sandbox", func() bool { return p.Status().Ready == 1 })
	first := e.f.Alive()[0].ID
	for i := 0; i < 400; i++ { // 4000 s of fake time, past the hour
		e.fc.Step(10 * time.Second)
		time.Sleep(5 * time.Millisecond)
		st := p.Status() // before Alive: anything it lists was created by then
		alive := map[string]bool{}
		for _, a := range e.f.Alive() {
			alive[a.ID] = true
		}
		for _, s := range st.Sandboxes {
			// A sandbox the pool killed itself may be gone by the second look; one
			// E2B ended (not killed through the API) must not be listed as Ready.
			if s.State == sandbox.StateReady && !alive[s.ID] && !e.f.Killed(s.ID) {
				t.Fatalf("the pool listed %s as Ready after E2B ended it (fake time %s)", s.ID, e.fc.Now().Format(time.TimeOnly))
			}
		}
	}
	if !e.f.Killed(first) {
		t.Errorf("the pool should kill and replace its sandbox before the plan's maximum lifetime ends it")
	}
	if p.Status().Ready != 1 {
		t.Errorf("a replacement should be warm")
	}
}

// Item 7: the concurrency 429 has no Retry-After; the pool backs off on its own
// schedule and says so (never "Retry-After 0s").
func TestPoolConcurrency429WithoutRetryAfter(t *testing.T) {
	e := newEnv(t)
	e.f.LimitConcurrent(1)
	p := e.pool(t, 2, 3, e.config("uid-1"))
	e.until(t, 10*time.Millisecond, "the first 429", func() bool { return p.Status().Throttled != "" })
	th := p.Status().Throttled
	if strings.Contains(th, "Retry-After 0s") || !strings.Contains(th, "concurrent") || !strings.Contains(th, "without Retry-After") {
		t.Errorf("Throttled should name the concurrency limit and the pool's own backoff: %q", th)
	}
	e.until(t, 250*time.Millisecond, "four 429s", func() bool { return e.f.Calls(e2btest.OpCreate) >= 5 })
	calls := e.f.CallTimes(e2btest.OpCreate)[1:]
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for i, w := range want {
		if gap := calls[i+1].Sub(calls[i]); gap < w {
			t.Errorf("after 429 %d the pool waited %s, want at least %s", i+1, gap, w)
		}
	}
}

// The E2B client: no redirects (and never the key to another host), https only
// unless allowed, and a short sanitised message with the key removed before the cut.
func TestClientRefusesRedirects(t *testing.T) {
	var leaked atomic.Value
	leaked.Store("")
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("X-API-Key"))
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"sandboxID":"x"}`))
	}))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	c := &e2b.Client{AllowHTTP: true, APIURL: redirect.URL, APIKey: testKey}
	_, err := c.Create(context.Background(), e2b.NewSandbox{TemplateID: "t"})
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("a redirect should be an error naming it, got %v", err)
	}
	if k := leaked.Load().(string); k != "" {
		t.Errorf("the key followed the redirect to another host")
	}
}

func TestClientHTTPSOnly(t *testing.T) {
	var hit atomic.Bool
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Store(true) }))
	defer plain.Close()
	c := &e2b.Client{APIURL: plain.URL, APIKey: testKey}
	if _, err := c.List(context.Background(), nil); !errors.Is(err, e2b.ErrInsecureURL) {
		t.Errorf("an http URL without AllowHTTP should be refused: %v", err)
	}
	if hit.Load() {
		t.Errorf("the key went out over plain http")
	}
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	defer tls.Close()
	c = &e2b.Client{APIURL: tls.URL, APIKey: testKey, HTTP: tls.Client()}
	if _, err := c.List(context.Background(), nil); err != nil {
		t.Errorf("https works without AllowHTTP: %v", err)
	}
	e := newEnv(t)
	cfg := e.config("uid-1")
	cfg.AllowHTTP = false
	if _, err := e.b.NewPool(sandbox.PoolConfig{MaxSandboxes: 1}, cfg); !errors.Is(err, e2b.ErrInsecureURL) || !errors.Is(err, sandbox.ErrUnavailable) {
		t.Errorf("a pool on an http API URL without AllowHTTP should not start: %v", err)
	}
	if n := len(e.f.KeysSeen()); n != 0 {
		t.Errorf("the key was sent over http %d times", n)
	}
}

func TestClientRedactsBeforeCut(t *testing.T) {
	// The key is placed where a cut would split it: at the 256-byte bound of the
	// message kept, and at the 512 bytes once kept, with control characters around.
	for name, pad := range map[string]string{
		"cut at 256": strings.Repeat("x", 240),
		"cut at 512": strings.Repeat("a\x1b[31m ", 68),
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(pad + r.Header.Get("X-API-Key") + strings.Repeat("z", 600)))
			}))
			defer srv.Close()
			c := &e2b.Client{AllowHTTP: true, APIURL: srv.URL, APIKey: testKey}
			_, err := c.Create(context.Background(), e2b.NewSandbox{TemplateID: "t"})
			var ae *e2b.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("want an APIError, got %v", err)
			}
			for i := 0; i+12 <= len(testKey); i++ {
				if strings.Contains(ae.Message, testKey[i:i+12]) {
					t.Fatalf("part of the key survived: %q", ae.Message)
				}
			}
			if len(ae.Message) > 300 || strings.ContainsAny(ae.Message, "\x1b\n\r") {
				t.Errorf("the message should be short and without control characters (%d bytes): %q", len(ae.Message), ae.Message)
			}
		})
	}
}

// Close while a creation is in flight (its answer slow, then lost): nothing is left.
func TestCloseDuringSlowCreateLeavesNothing(t *testing.T) {
	e := newEnv(t)
	b := e2b.NewBackend(e2b.Options{
		Interpreter: func(ep e2b.Endpoint, hc *http.Client) e2b.Interpreter { return testInterpreter{ep, hc} },
		SandboxURL:  e.f.SandboxURL, Clock: e.fc, RequestTimeout: 300 * time.Millisecond,
	})
	e.f.Slow(e2btest.OpCreate, 2*time.Second)
	p, err := b.NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2}, e.config("uid-1"))
	if err != nil {
		t.Fatal(err)
	}
	e.until(t, 0, "a creation in flight", func() bool { return e.f.Calls(e2btest.OpCreate) == 1 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	e.until(t, 0, "no sandbox left", func() bool { return len(e.f.Alive()) == 0 })
}
