package e2b_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/e2b"
	"github.com/vizops/viz-operator/internal/sandbox/e2b/e2btest"
	"github.com/vizops/viz-operator/internal/sandbox/pooltest"
)

// TestPoolContract runs the warm-pool contract against the fake E2B API, on the
// real clock (the contract waits in real time), with a short backoff. Warm
// sandboxes are not looked after during a test (Maintain is an hour), so every call
// the fake counts is one the pool's claims, releases or closing made.
func TestPoolContract(t *testing.T) {
	pooltest.Run(t, func(t *testing.T, minReady, maxSandboxes int) pooltest.Fixture {
		f := e2btest.New(testKey, func(string, string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/execute" || r.Method != http.MethodPost {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
		})
		t.Cleanup(f.Close)
		b := e2b.NewBackend(e2b.Options{
			Interpreter: func(ep e2b.Endpoint, hc *http.Client) e2b.Interpreter { return testInterpreter{ep, hc} },
			SandboxURL:  f.SandboxURL,
			Maintain:    time.Hour,
			BackoffBase: 50 * time.Millisecond,
			BackoffMax:  time.Second,
		})
		p, err := b.NewPool(sandbox.PoolConfig{MinReady: minReady, MaxSandboxes: maxSandboxes, Network: sandbox.NetworkNone}, e2b.Config{
			APIURL: f.API.URL, TemplateID: "code-interpreter-v1", APIKey: testKey,
			KeySource: `Secret ns/e2b, key "api-key"`, SandboxTimeout: time.Hour, MaxCreatesPerSecond: 100,
			PoolKey: "ns/pool", PoolUID: fmt.Sprintf("uid-%s", t.Name()), AllowHTTP: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return pooltest.Fixture{
			Pool:      p,
			Alive:     func() int { return len(f.Alive()) },
			PeakAlive: f.MaxAlive,
			Created:   func() int { return f.Calls(e2btest.OpCreate) },
			Calls: func() int {
				n := 0
				for _, op := range []string{e2btest.OpCreate, e2btest.OpKill, e2btest.OpSetTimeout, e2btest.OpList} {
					n += f.Calls(op)
				}
				return n
			},
			Break: f.End,
			FailCreation: func(on bool) {
				if on {
					f.Fail(e2btest.OpCreate, 1<<30, http.StatusInternalServerError, "")
					return
				}
				f.ClearFaults()
			},
		}
	}, pooltest.Options{Request: sandbox.Request{Code: "print(1)"}})
}
