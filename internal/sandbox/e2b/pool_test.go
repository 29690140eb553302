package e2b_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
	"github.com/vizops/viz-operator/internal/sandbox/e2b/e2btest"
)

var png = []byte("\x89PNG\r\n\x1a\nfake")

// testInterpreter stands in for the code-interpreter client: it posts the code to the
// sandbox's /execute through the HTTP client it was given (so E2B's headers and the
// fake's proxy are exercised) and returns one PNG.
type testInterpreter struct {
	ep e2b.Endpoint
	hc *http.Client
}

func (t testInterpreter) Run(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	body, _ := json.Marshal(map[string]string{"code": req.Code})
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, t.ep.URL+"/execute", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := t.hc.Do(r)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("interpreter answered %d", resp.StatusCode)
	}
	return &sandbox.Result{Success: true, Files: []sandbox.Artifact{{Name: "figure_1.png", MIMEType: "image/png", Data: png, Figure: true}}}, nil
}

type env struct {
	f     *e2btest.Server
	fc    *clocktesting.FakeClock
	b     *e2b.Backend
	execs atomic.Int32
	logMu sync.Mutex
	logs  strings.Builder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{fc: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	e.f = e2btest.New(testKey, func(string, string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/execute" || r.Method != http.MethodPost {
				http.NotFound(w, r)
				return
			}
			e.execs.Add(1)
			w.WriteHeader(http.StatusOK)
		})
	})
	e.f.SetClock(e.fc.Now)
	t.Cleanup(e.f.Close)
	log := funcr.New(func(prefix, args string) {
		e.logMu.Lock()
		e.logs.WriteString(prefix + " " + args + "\n")
		e.logMu.Unlock()
	}, funcr.Options{Verbosity: 10})
	e.b = e2b.NewBackend(e2b.Options{
		Interpreter: func(ep e2b.Endpoint, hc *http.Client) e2b.Interpreter { return testInterpreter{ep, hc} },
		SandboxURL:  e.f.SandboxURL,
		Clock:       e.fc,
		Log:         log,
		Maintain:    10 * time.Second,
	})
	return e
}

func (e *env) config(uid string) e2b.Config {
	return e2b.Config{
		APIURL: e.f.API.URL, Domain: "unused.example", TemplateID: "code-interpreter-v1", APIKey: testKey,
		KeySource: `Secret ns/e2b, key "api-key"`, SandboxTimeout: 300 * time.Second, MaxCreatesPerSecond: 100,
		PoolKey: "ns/pool", PoolUID: uid, AllowHTTP: true,
	}
}

func (e *env) pool(t *testing.T, minReady, maxSandboxes int, c e2b.Config) *e2b.Pool {
	t.Helper()
	p, err := e.b.NewPool(sandbox.PoolConfig{MinReady: minReady, MaxSandboxes: maxSandboxes, Network: sandbox.NetworkNone}, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// until steps the fake clock by step until cond holds (goroutines get real time to
// run between steps); it fails after 20 s of real time (a loaded machine).
func (e *env) until(t *testing.T, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
		if step > 0 {
			e.fc.Step(step)
		}
	}
}

// autoStep advances the fake clock by step every millisecond of real time until the
// test ends, for tests where only the order of events matters.
func (e *env) autoStep(t *testing.T, step time.Duration) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				e.fc.Step(step)
			}
		}
	}()
}

func (e *env) noKeyInLogs(t *testing.T) {
	t.Helper()
	e.logMu.Lock()
	defer e.logMu.Unlock()
	if strings.Contains(e.logs.String(), testKey) {
		t.Fatalf("the API key appears in the logs")
	}
}

func TestPoolWarmRunKillReplenish(t *testing.T) {
	e := newEnv(t)
	e.autoStep(t, 10*time.Millisecond)
	p := e.pool(t, 2, 5, e.config("uid-1"))
	e.until(t, 0, "two warm sandboxes", func() bool { return p.Status().Ready == 2 })
	for _, sb := range e.f.Alive() {
		if sb.Metadata[e2b.MetaPoolUID] != "uid-1" || sb.Metadata[e2b.MetaPool] != "ns/pool" || sb.Metadata[e2b.MetaInstance] == "" {
			t.Errorf("metadata should name the pool and its instance: %v", sb.Metadata)
		}
		if !sb.Secure || sb.Internet || sb.TemplateID != "code-interpreter-v1" || sb.Timeouts[0] != 300 {
			t.Errorf("want a secure sandbox of the template, no internet, timeout 300: %+v", sb)
		}
	}
	sb, err := p.Acquire(context.Background(), "ns/req-1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := sb.Execute(context.Background(), sandbox.Request{Code: "print(1)", Timeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || res.SandboxID != sb.ID() || len(res.Files) != 1 || e.execs.Load() != 1 {
		t.Fatalf("want one run through the interpreter with its PNG: %+v", res)
	}
	var ran e2btest.Sandbox
	for _, a := range e.f.Alive() {
		if a.ID == sb.ID() {
			ran = a
		}
	}
	if n := len(ran.Timeouts); n != 2 || ran.Timeouts[1] != 75 {
		t.Errorf("the sandbox should be set to die 30 s after the request's 45 s timeout: %v", ran.Timeouts)
	}
	if st := p.Status(); st.Busy != 1 || st.Sandboxes[len(st.Sandboxes)-1].Owner != "ns/req-1" {
		t.Errorf("status should show the busy sandbox and its owner: %+v", st)
	}
	p.Release(sb)
	e.until(t, 0, "the used sandbox killed", func() bool { return e.f.Killed(sb.ID()) })
	e.until(t, 0, "two warm sandboxes again", func() bool { return p.Status().Ready == 2 })
	if got := e.f.Calls(e2btest.OpCreate); got != 3 {
		t.Errorf("want 3 creations (2 warm, 1 replacement), got %d", got)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(e.f.Alive()); n != 0 {
		t.Errorf("Close should kill every sandbox; %d alive", n)
	}
	if _, err := p.Acquire(context.Background(), "x"); !errors.Is(err, sandbox.ErrPoolClosed) {
		t.Errorf("Acquire on a closed pool: %v", err)
	}
	e.noKeyInLogs(t)
}

func TestPoolOnDemandWithinCap(t *testing.T) {
	e := newEnv(t)
	e.autoStep(t, 10*time.Millisecond)
	p := e.pool(t, 0, 2, e.config("uid-1"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := p.Acquire(ctx, "ns/a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire(ctx, "ns/b")
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range e.f.Alive() {
		if r := sb.Metadata[e2b.MetaRequest]; r != "ns/a" && r != "ns/b" {
			t.Errorf("a sandbox made on demand should name its request: %v", sb.Metadata)
		}
	}
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := p.Acquire(short, "ns/c"); err == nil {
		t.Fatal("a third Acquire must wait: maxSandboxes is 2")
	}
	if e.f.MaxAlive() > 2 {
		t.Fatalf("more than maxSandboxes existed: %d", e.f.MaxAlive())
	}
	p.Release(a)
	p.Release(b)
}

func TestPoolRateLimit(t *testing.T) {
	e := newEnv(t)
	c := e.config("uid-1")
	c.MaxCreatesPerSecond = 2
	p := e.pool(t, 4, 10, c)
	e.until(t, 50*time.Millisecond, "four warm sandboxes", func() bool { return p.Status().Ready == 4 })
	// The fake server stamps each creation with the fake clock when the request arrives,
	// and until steps that clock by 50ms while a request is in flight (one loaded CI run
	// saw 450ms between two starts the limiter spaced 500ms apart): each gap gets half
	// an interval's slack, the whole run a quarter per gap. Without the limit the
	// creations are one step apart or less.
	times := e.f.CreateTimes()
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 250*time.Millisecond {
			t.Errorf("creations %d and %d were %s apart; maxCreatesPerSecond 2 allows one per 500ms", i-1, i, gap)
		}
	}
	if n := len(times); n > 1 {
		if span, want := times[n-1].Sub(times[0]), time.Duration(n-1)*375*time.Millisecond; span < want {
			t.Errorf("%d creations in %s; maxCreatesPerSecond 2 needs about %s", n, span, time.Duration(n-1)*500*time.Millisecond)
		}
	}
}

func TestPoolHonours429RetryAfter(t *testing.T) {
	e := newEnv(t)
	e.f.Fail(e2btest.OpCreate, 2, http.StatusTooManyRequests, "5")
	p := e.pool(t, 0, 3, e.config("uid-1"))
	got := make(chan error, 1)
	go func() {
		sb, err := p.Acquire(context.Background(), "ns/waiting")
		if err == nil {
			p.Release(sb)
		}
		got <- err
	}()
	e.until(t, 0, "the first 429", func() bool { return e.f.Calls(e2btest.OpCreate) == 1 && p.Status().Throttled != "" })
	if th := p.Status().Throttled; !strings.Contains(th, "429") || !strings.Contains(th, "Retry-After 5s") {
		t.Errorf("Throttled should say 429 and the wait: %q", th)
	}
	e.until(t, 250*time.Millisecond, "a sandbox after the 429s", func() bool { return len(e.f.CreateTimes()) == 1 })
	if err := <-got; err != nil {
		t.Fatalf("a 429 storm must slow the request, not fail it: %v", err)
	}
	calls := e.f.CallTimes(e2btest.OpCreate)
	if len(calls) != 3 {
		t.Fatalf("want 3 create calls (2 answered 429), got %d", len(calls))
	}
	for i := 1; i < 3; i++ {
		if gap := calls[i].Sub(calls[i-1]); gap < 5*time.Second {
			t.Errorf("call %d came %s after a 429 with Retry-After 5", i, gap)
		}
	}
	if th := p.Status().Throttled; th != "" {
		t.Errorf("a success ends the throttling: %q", th)
	}
}

func TestPoolBacksOffOn5xxAndTimeouts(t *testing.T) {
	e := newEnv(t)
	e.f.Fail(e2btest.OpCreate, 3, http.StatusInternalServerError, "")
	p := e.pool(t, 1, 3, e.config("uid-1"))
	e.until(t, 100*time.Millisecond, "a warm sandbox after three 500s", func() bool { return p.Status().Ready == 1 })
	calls := e.f.CallTimes(e2btest.OpCreate)
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for i, w := range want {
		if gap := calls[i+1].Sub(calls[i]); gap < w {
			t.Errorf("after failure %d the pool waited %s, want at least %s", i+1, gap, w)
		}
	}
	if d := p.Status().Degraded; strings.Contains(d, "fails") {
		t.Errorf("a success clears the creation failure: %q", d)
	}
}

func TestPoolStatusSaysWhenCreationFails(t *testing.T) {
	e := newEnv(t)
	e.f.Fail(e2btest.OpCreate, 1000, http.StatusBadRequest, "")
	p := e.pool(t, 1, 3, e.config("uid-1"))
	e.until(t, 0, "a failed creation", func() bool { return strings.Contains(p.Status().Degraded, "400") })
}

func TestPoolKeyRejected(t *testing.T) {
	for name, status := range map[string]int{"401": http.StatusUnauthorized} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.f.Fail(e2btest.OpCreate, 1, status, "")
			p := e.pool(t, 0, 3, e.config("uid-1"))
			_, err := p.Acquire(context.Background(), "ns/r")
			var rej *e2b.KeyRejectedError
			if !errors.As(err, &rej) || !errors.Is(err, sandbox.ErrUnavailable) {
				t.Fatalf("want a KeyRejectedError wrapping ErrUnavailable, got %v", err)
			}
			if !strings.Contains(err.Error(), `Secret ns/e2b, key "api-key"`) || strings.Contains(err.Error(), testKey) {
				t.Errorf("the error should name the Secret, never the key: %v", err)
			}
			if err := p.Resize(0, 3); !errors.As(err, &rej) {
				t.Errorf("Resize should report the rejection for the pool's status: %v", err)
			}
			// Nothing is retried in a loop: time passes, no more calls.
			for i := 0; i < 20; i++ {
				e.fc.Step(10 * time.Second)
				time.Sleep(2 * time.Millisecond)
			}
			if n := e.f.Calls(e2btest.OpCreate) + e.f.Calls(e2btest.OpSetTimeout); n != 1 {
				t.Errorf("want no call after the rejection, got %d creates+timeouts", n)
			}
			lists := e.f.Calls(e2btest.OpList)
			if _, err := e.b.NewPool(sandbox.PoolConfig{MaxSandboxes: 1}, e.config("uid-1")); !errors.As(err, &rej) {
				t.Errorf("a new pool with the rejected key should fail at once: %v", err)
			}
			if e.f.Calls(e2btest.OpList) != lists {
				t.Errorf("a rejected key should not be sent again")
			}
			e.noKeyInLogs(t)
		})
	}
}

func TestNewPoolWithWrongKeyFails(t *testing.T) {
	e := newEnv(t)
	c := e.config("uid-1")
	c.APIKey = "e2b_wrong"
	_, err := e.b.NewPool(sandbox.PoolConfig{MaxSandboxes: 1}, c)
	var rej *e2b.KeyRejectedError
	if !errors.As(err, &rej) || rej.Code != 401 {
		t.Fatalf("want a 401 KeyRejectedError at start, got %v", err)
	}
	c.APIKey = testKey // the Secret was fixed
	if _, err := e.b.NewPool(sandbox.PoolConfig{MaxSandboxes: 1}, c); err != nil {
		t.Fatalf("a corrected key starts the pool: %v", err)
	}
	e.logMu.Lock()
	defer e.logMu.Unlock()
	if strings.Contains(e.logs.String(), "e2b_wrong") {
		t.Fatal("the wrong key appears in the logs")
	}
}

func TestExecuteOnVanishedSandboxIsLost(t *testing.T) {
	e := newEnv(t)
	p := e.pool(t, 1, 3, e.config("uid-1"))
	e.until(t, 0, "a warm sandbox", func() bool { return p.Status().Ready == 1 })
	sb, err := p.Acquire(context.Background(), "ns/r")
	if err != nil {
		t.Fatal(err)
	}
	e.f.Fail(e2btest.OpSetTimeout, 1, http.StatusNotFound, "")
	if _, err := sb.Execute(context.Background(), sandbox.Request{Code: "1"}); !errors.Is(err, sandbox.ErrSandboxLost) {
		t.Fatalf("a 404 of the sandbox should be ErrSandboxLost, got %v", err)
	}
	p.Release(sb)
}

func TestExecuteWhenInterpreterGone(t *testing.T) {
	e := newEnv(t)
	p := e.pool(t, 1, 3, e.config("uid-1"))
	e.until(t, 0, "a warm sandbox", func() bool { return p.Status().Ready == 1 })
	sb, err := p.Acquire(context.Background(), "ns/r")
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox's own timeout passes (fake time) while it is idle: E2B's edge
	// answers 502 and set-timeout answers 404.
	e.fc.Step(301 * time.Second)
	if _, err := sb.Execute(context.Background(), sandbox.Request{Code: "1"}); !errors.Is(err, sandbox.ErrSandboxLost) {
		t.Fatalf("want ErrSandboxLost, got %v", err)
	}
	p.Release(sb)
}

func TestStartupKillsOrphans(t *testing.T) {
	e := newEnv(t)
	orphan1 := e.f.Seed(map[string]string{e2b.MetaPoolUID: "uid-1", e2b.MetaInstance: "dead-operator"}, time.Hour)
	orphan2 := e.f.Seed(map[string]string{e2b.MetaPoolUID: "uid-1"}, time.Hour)
	foreign := e.f.Seed(map[string]string{e2b.MetaPoolUID: "uid-2", e2b.MetaInstance: "dead-operator"}, time.Hour)
	stranger := e.f.Seed(map[string]string{"app": "someone-else"}, time.Hour)
	live := e.pool(t, 1, 3, e.config("uid-1"))
	e.until(t, 0, "a warm sandbox", func() bool { return live.Status().Ready == 1 })
	if !e.f.Killed(orphan1) || !e.f.Killed(orphan2) {
		t.Errorf("the pool's sandboxes of an earlier operator should be killed")
	}
	if e.f.Killed(foreign) || e.f.Killed(stranger) {
		t.Errorf("sandboxes of other pools or other users must be left alone")
	}
	// A second pool object for the same SandboxPool (settings changed, the old one
	// draining) must not kill the live one's sandboxes.
	ownID := live.Status().Sandboxes[0].ID
	_ = e.pool(t, 0, 3, e.config("uid-1"))
	if e.f.Killed(ownID) {
		t.Errorf("a live pool's sandbox was killed by its successor's clean-up")
	}
}

func TestStartupCleanupRetriedWhenListFails(t *testing.T) {
	e := newEnv(t)
	orphan := e.f.Seed(map[string]string{e2b.MetaPoolUID: "uid-1"}, time.Hour)
	e.f.Fail(e2btest.OpList, 1, http.StatusServiceUnavailable, "")
	_ = e.pool(t, 0, 3, e.config("uid-1"))
	if e.f.Killed(orphan) {
		t.Fatal("the list failed; nothing could be killed yet")
	}
	e.until(t, 10*time.Second, "the orphan killed on a later tick", func() bool { return e.f.Killed(orphan) })
}

func TestWarmSandboxesKeptAlive(t *testing.T) {
	e := newEnv(t)
	c := e.config("uid-1")
	c.SandboxTimeout = 30 * time.Second
	p := e.pool(t, 1, 3, c)
	e.until(t, 0, "a warm sandbox", func() bool { return p.Status().Ready == 1 })
	id := e.f.Alive()[0].ID
	e.until(t, 5*time.Second, "the warm sandbox extended", func() bool {
		a := e.f.Alive()
		return len(a) == 1 && len(a[0].Timeouts) >= 2
	})
	// Minutes later (fake time) the same sandbox is still there and warm.
	for i := 0; i < 24; i++ {
		e.fc.Step(5 * time.Second)
		time.Sleep(10 * time.Millisecond) // time for the extension (and its endAt listing) to land
	}
	e.until(t, 0, "the same warm sandbox", func() bool {
		a := e.f.Alive()
		return len(a) == 1 && a[0].ID == id && p.Status().Ready == 1
	})
}

func TestResizeKillsExtraWarm(t *testing.T) {
	e := newEnv(t)
	e.autoStep(t, 10*time.Millisecond)
	p := e.pool(t, 3, 5, e.config("uid-1"))
	e.until(t, 0, "three warm sandboxes", func() bool { return p.Status().Ready == 3 })
	if err := p.Resize(1, 1); err != nil {
		t.Fatal(err)
	}
	e.until(t, 0, "one sandbox left", func() bool { return len(e.f.Alive()) == 1 })
	if err := p.Resize(0, 5); err != nil {
		t.Fatal(err)
	}
	e.until(t, 0, "no warm sandbox left at minReady 0", func() bool { return len(e.f.Alive()) == 0 })
}

// TestPoolRunsChartInAgent runs real Python: each sandbox of the fake is a local
// sandbox-agent, reached through the code-interpreter client (the backend's default)
// with the sandbox's access token and E2B's headers.
func TestPoolRunsChartInAgent(t *testing.T) {
	f := e2btest.New(testKey, e2btest.Agents(agent.Options{}))
	defer f.Close()
	b := e2b.NewBackend(e2b.Options{SandboxURL: f.SandboxURL})
	c := e2b.Config{APIURL: f.API.URL, Domain: e2btest.Domain, TemplateID: "code-interpreter-v1", APIKey: testKey,
		KeySource: "test", SandboxTimeout: time.Minute, MaxCreatesPerSecond: 10, PoolKey: "ns/p", PoolUID: "u", AllowHTTP: true}
	p, err := b.NewPool(sandbox.PoolConfig{MinReady: 1, MaxSandboxes: 2, Network: sandbox.NetworkNone}, c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := sandbox.Run(ctx, p, "ns/r", sandbox.Request{
		Code:    "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [1, 2])\nplt.show()\nprint(open('data.csv').read().strip())",
		Files:   []sandbox.File{{Name: "data.csv", Data: []byte("x,y\n1,2")}},
		Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || !strings.Contains(res.Stdout, "x,y") {
		t.Fatalf("want success with the input file read: %+v %+v", res.Error, res.Stdout)
	}
	var pngs int
	for _, a := range res.Files {
		if a.MIMEType == "image/png" && bytes.HasPrefix(a.Data, []byte("\x89PNG")) {
			pngs++
		}
	}
	if pngs != 1 || res.SandboxID == "" {
		t.Fatalf("want one PNG from sandbox %q, got %d of %d files", res.SandboxID, pngs, len(res.Files))
	}
	// The code-interpreter client's requests reached the sandbox as the SDKs send
	// them: the traffic token on each, X-Access-Token with POST /execute only.
	var executes int
	for _, r := range f.InterpHeaders() {
		isExec := r.Method == http.MethodPost && r.Path == "/execute"
		if isExec {
			executes++
		}
		if r.TrafficToken == "" || (r.AccessToken != "") != isExec {
			t.Errorf("%s %s: traffic token %t, X-Access-Token %t", r.Method, r.Path, r.TrafficToken != "", r.AccessToken != "")
		}
	}
	if executes == 0 || len(f.InterpHeaders()) == executes {
		t.Errorf("want /execute and other routes among the requests: %+v", f.InterpHeaders())
	}
	// A stolen URL without the traffic token is refused at E2B's proxy (the code
	// interpreter behind it checks no token).
	deadline := time.Now().Add(10 * time.Second)
	for p.Status().Ready == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p.Status().Ready == 0 {
		t.Fatal("no warm sandbox after the run")
	}
	resp, err := http.Post(f.SandboxURL(p.Status().Sandboxes[0].ID, e2btest.Domain)+"/execute", "application/json", strings.NewReader(`{"code":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
		t.Errorf("a call without E2B's headers and traffic token should be refused, got %d", resp.StatusCode)
	}
}
