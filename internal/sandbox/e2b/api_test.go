package e2b_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/sandbox/e2b"
	"github.com/vizops/viz-operator/internal/sandbox/e2b/e2btest"
)

const testKey = "e2b_0123456789abcdef0123456789abcdef01234567"

func TestClientOperations(t *testing.T) {
	f := e2btest.New(testKey, nil)
	defer f.Close()
	var observed []string
	c := &e2b.Client{AllowHTTP: true, APIURL: f.API.URL, APIKey: testKey, Observe: func(op, code string) { observed = append(observed, op+":"+code) }}
	ctx := context.Background()

	md := map[string]string{"vizops-pool-uid": "u-1", "vizops-pool": "ns/p one&two=3"}
	sb, err := c.Create(ctx, e2b.NewSandbox{TemplateID: "code-interpreter-v1", Timeout: 90, Secure: true, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	if sb.EnvdAccessToken == "" || sb.Domain == nil || *sb.Domain != e2btest.Domain {
		t.Fatalf("secure create should return an access token and the domain: %+v", sb)
	}
	other, err := c.Create(ctx, e2b.NewSandbox{TemplateID: "code-interpreter-v1", Timeout: 90, Metadata: map[string]string{"vizops-pool-uid": "u-2"}})
	if err != nil {
		t.Fatal(err)
	}
	if other.EnvdAccessToken != "" {
		t.Fatalf("an insecure sandbox has no access token")
	}

	list, err := c.List(ctx, map[string]string{"vizops-pool-uid": "u-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].SandboxID != sb.SandboxID || list[0].Metadata["vizops-pool"] != "ns/p one&two=3" {
		t.Fatalf("list by metadata: %+v", list)
	}
	if err := c.SetTimeout(ctx, sb.SandboxID, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	alive := f.Alive()
	if diff := cmp.Diff([]int32{90, 2}, alive[0].Timeouts); diff != "" {
		t.Errorf("timeouts (create's, then set's rounded up to seconds) (-want +got):\n%s", diff)
	}
	if err := c.Kill(ctx, sb.SandboxID); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx, sb.SandboxID); !e2b.IsNotFound(err) {
		t.Fatalf("a second kill should be a 404, got %v", err)
	}
	if err := c.SetTimeout(ctx, sb.SandboxID, time.Minute); !e2b.IsNotFound(err) {
		t.Fatalf("set-timeout of a killed sandbox should be a 404, got %v", err)
	}
	want := []string{"create:201", "create:201", "list:200", "set_timeout:204", "kill:204", "kill:404", "set_timeout:404"}
	if diff := cmp.Diff(want, observed); diff != "" {
		t.Errorf("observed calls (-want +got):\n%s", diff)
	}
	for _, k := range f.KeysSeen() {
		if k != testKey {
			t.Fatalf("a call was made without the key as X-API-Key")
		}
	}
}

func TestClientListPages(t *testing.T) {
	f := e2btest.New(testKey, nil)
	defer f.Close()
	for i := 0; i < 230; i++ {
		f.Seed(map[string]string{"vizops-pool-uid": "u"}, time.Hour)
	}
	f.Seed(map[string]string{"vizops-pool-uid": "other"}, time.Hour)
	c := &e2b.Client{AllowHTTP: true, APIURL: f.API.URL, APIKey: testKey}
	list, err := c.List(context.Background(), map[string]string{"vizops-pool-uid": "u"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 230 || f.Calls(e2btest.OpList) != 3 {
		t.Fatalf("want 230 sandboxes in 3 pages, got %d in %d calls", len(list), f.Calls(e2btest.OpList))
	}
}

func TestClientErrors(t *testing.T) {
	tests := map[string]struct {
		status       int
		retryAfter   string
		unauthorized bool
		notFound     bool
		rateLimited  bool
		wait         time.Duration
		transient    bool
	}{
		"401 wrong key":          {status: 401, unauthorized: true},
		"403 forbidden":          {status: 403, unauthorized: true},
		"404 gone":               {status: 404, notFound: true},
		"429 with Retry-After":   {status: 429, retryAfter: "7", rateLimited: true, wait: 7 * time.Second, transient: true},
		"429 without":            {status: 429, rateLimited: true, transient: true},
		"500 server error":       {status: 500, transient: true},
		"503 unavailable":        {status: 503, retryAfter: "2", transient: true},
		"400 bad request":        {status: 400},
		"429 Retry-After a date": {status: 429, retryAfter: "date", rateLimited: true, transient: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := e2btest.New(testKey, nil)
			defer f.Close()
			ra := tc.retryAfter
			if ra == "date" {
				ra = time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
			}
			f.Fail(e2btest.OpCreate, 1, tc.status, ra)
			c := &e2b.Client{AllowHTTP: true, APIURL: f.API.URL, APIKey: testKey}
			_, err := c.Create(context.Background(), e2b.NewSandbox{TemplateID: "t"})
			if err == nil {
				t.Fatal("want an error")
			}
			if got := e2b.IsUnauthorized(err); got != tc.unauthorized {
				t.Errorf("IsUnauthorized = %v", got)
			}
			if got := e2b.IsNotFound(err); got != tc.notFound {
				t.Errorf("IsNotFound = %v", got)
			}
			wait, limited := e2b.IsRateLimited(err)
			if limited != tc.rateLimited {
				t.Errorf("IsRateLimited = %v", limited)
			}
			if tc.retryAfter == "date" {
				if wait < 59*time.Minute || wait > time.Hour {
					t.Errorf("Retry-After as a date: wait %s, want about an hour", wait)
				}
			} else if wait != tc.wait {
				t.Errorf("Retry-After: got %s, want %s", wait, tc.wait)
			}
			if got := e2b.IsTransient(err); got != tc.transient {
				t.Errorf("IsTransient = %v", got)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
				t.Errorf("the error should name the status: %v", err)
			}
			// A retry after the injected fault succeeds.
			if _, err := c.Create(context.Background(), e2b.NewSandbox{TemplateID: "t"}); err != nil {
				t.Errorf("the fault should be used up: %v", err)
			}
		})
	}
}

func TestClientWrongKeyIs401(t *testing.T) {
	f := e2btest.New(testKey, nil)
	defer f.Close()
	c := &e2b.Client{AllowHTTP: true, APIURL: f.API.URL, APIKey: "e2b_wrong"}
	if _, err := c.List(context.Background(), nil); !e2b.IsUnauthorized(err) {
		t.Fatalf("want 401, got %v", err)
	}
}

func TestClientSlowAnswerIsTransient(t *testing.T) {
	f := e2btest.New(testKey, nil)
	defer f.Close()
	f.Slow(e2btest.OpCreate, 2*time.Second)
	c := &e2b.Client{AllowHTTP: true, APIURL: f.API.URL, APIKey: testKey, HTTP: &http.Client{Timeout: 50 * time.Millisecond}}
	_, err := c.Create(context.Background(), e2b.NewSandbox{TemplateID: "t"})
	if !e2b.IsTransient(err) || e2b.IsUnauthorized(err) {
		t.Fatalf("a timeout should be transient: %v", err)
	}
}

// TestKeyNeverInErrors: a server that echoes the key, a transport error on a URL, and
// every fmt verb on the key: the key appears in none.
func TestKeyNeverInErrors(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": 401, "message": "bad key " + r.Header.Get("X-API-Key")})
	}))
	defer echo.Close()
	c := &e2b.Client{AllowHTTP: true, APIURL: echo.URL, APIKey: testKey}
	_, err := c.Create(context.Background(), e2b.NewSandbox{TemplateID: "t"})
	if err == nil || strings.Contains(err.Error(), testKey) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), testKey) {
		t.Fatalf("the key leaked into the error: %v", err)
	}
	dead := &e2b.Client{AllowHTTP: true, APIURL: "http://127.0.0.1:1/" + testKey, APIKey: testKey}
	if _, err := dead.List(context.Background(), nil); err == nil || strings.Contains(err.Error(), testKey) {
		t.Fatalf("the key leaked into a transport error: %v", err)
	}
	k := e2b.APIKey(testKey)
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X"} {
		if s := fmt.Sprintf(verb, k); strings.Contains(s, testKey) || strings.Contains(s, fmt.Sprintf("%x", testKey)) {
			t.Errorf("%s printed the key: %s", verb, s)
		}
	}
	b, _ := json.Marshal(struct{ Key e2b.APIKey }{k})
	if strings.Contains(string(b), testKey) {
		t.Errorf("JSON holds the key: %s", b)
	}
	b2, _ := json.Marshal(struct{ Key e2b.APIKey }{"e2b_other"})
	if string(b) == string(b2) {
		t.Errorf("two keys marshal alike, so a rotated key would not change a pool's fingerprint")
	}
}

func TestMetadataQuery(t *testing.T) {
	md := map[string]string{"a b": "c&d=e", "vizops-pool": "ns/name", "ü": "%"}
	got, err := e2b.ParseMetadataQuery(e2b.MetadataQuery(md))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(md, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if q := e2b.MetadataQuery(map[string]string{"k": "a b"}); q != "k=a%2520b" {
		t.Errorf("spaces are %%20 then encoded again, as the SDK's encodeURIComponent+URLSearchParams: %s", q)
	}
}

func TestDefaultSandboxURL(t *testing.T) {
	if got := e2b.DefaultSandboxURL("ibx123", "e2b.app"); got != "https://49999-ibx123.e2b.app" {
		t.Errorf("got %s", got)
	}
}
