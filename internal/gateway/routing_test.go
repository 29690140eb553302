package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseSandboxHost(t *testing.T) {
	tests := map[string]struct {
		host, domain string
		port         int
		id           string
		ok           bool
	}{
		"plain":                        {host: "49999-abc123.e2b.example.com", domain: "e2b.example.com", port: 49999, id: "abc123", ok: true},
		"with the listening port":      {host: "49999-abc123.e2b.example.com:8443", domain: "e2b.example.com", port: 49999, id: "abc123", ok: true},
		"a domain with a port":         {host: "49983-abc.e2b.example.com:8443", domain: "e2b.example.com:8443", port: 49983, id: "abc", ok: true},
		"upper case and a dot at end":  {host: "49999-ABC.E2B.example.com.", domain: "e2b.example.com", port: 49999, id: "abc", ok: true},
		"the API host":                 {host: "api.e2b.example.com", domain: "e2b.example.com"},
		"another domain":               {host: "49999-abc.e2b.example.org", domain: "e2b.example.com"},
		"a suffix that is not a label": {host: "49999-abc.xe2b.example.com", domain: "e2b.example.com"},
		"two labels":                   {host: "49999-abc.x.e2b.example.com", domain: "e2b.example.com"},
		"no port":                      {host: "abc.e2b.example.com", domain: "e2b.example.com"},
		"a port out of range":          {host: "70000-abc.e2b.example.com", domain: "e2b.example.com"},
		"an ID that is no Pod name":    {host: "49999-a_b.e2b.example.com", domain: "e2b.example.com"},
		"no domain configured":         {host: "49999-abc.e2b.example.com", domain: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			port, id, ok := ParseSandboxHost(tc.host, tc.domain)
			if ok != tc.ok || port != tc.port || id != tc.id {
				t.Errorf("got (%d, %q, %v), want (%d, %q, %v)", port, id, ok, tc.port, tc.id, tc.ok)
			}
		})
	}
}

// agentStub stands in for the sandbox agent: it records what reached it and answers
// /execute with a stream of two lines, the second only after the test read the first.
type agentStub struct {
	gotToken  chan string
	gotHeader chan http.Header
	release   chan struct{}
}

func (a *agentStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.gotHeader <- r.Header.Clone()
	a.gotToken <- r.Header.Get(HeaderAccessToken)
	w.Header().Set("Content-Type", "application/x-ndjson")
	_, _ = w.Write([]byte(`{"type":"stdout","text":"first\n"}` + "\n"))
	w.(http.Flusher).Flush()
	select {
	case <-a.release:
	case <-r.Context().Done():
		return
	}
	_, _ = w.Write([]byte(`{"type":"end_of_execution"}` + "\n"))
}

func newRoutingEnv(t *testing.T) (*memBackend, *agentStub, *httptest.Server, Sandbox) {
	t.Helper()
	stub := &agentStub{gotToken: make(chan string, 1), gotHeader: make(chan http.Header, 1), release: make(chan struct{})}
	agent := httptest.NewServer(stub)
	t.Cleanup(agent.Close)
	t.Cleanup(func() {
		select {
		case <-stub.release:
		default:
			close(stub.release)
		}
	})
	m, gw, sb := newGatewayTo(t, agent.URL)
	return m, stub, gw, sb
}

// newGatewayTo is a gateway whose one sandbox, sbx1 of key-a, is served by the agent
// at agentURL.
func newGatewayTo(t *testing.T, agentURL string) (*memBackend, *httptest.Server, Sandbox) {
	t.Helper()
	m := newMem()
	m.agentURL = agentURL
	gw := httptest.NewServer(newTestServer(m))
	t.Cleanup(gw.Close)
	sb, err := m.Create(context.Background(), m.keys["key-a"], Spec{ID: "sbx1", TemplateID: "python", EndAt: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return m, gw, sb
}

func TestProxyTokens(t *testing.T) {
	tests := map[string]struct {
		host    string
		headers map[string]string
		want    int
	}{
		"no token":                        {host: "49999-sbx1.e2b.example.com", want: 401},
		"a wrong envd token":              {host: "49999-sbx1.e2b.example.com", headers: map[string]string{HeaderAccessToken: "nope"}, want: 401},
		"the agent's own token":           {host: "49999-sbx1.e2b.example.com", headers: map[string]string{HeaderAccessToken: "agent-token-sbx1"}, want: 401},
		"another sandbox's traffic token": {host: "49999-sbx1.e2b.example.com", headers: map[string]string{HeaderTrafficToken: "{other}"}, want: 401},
		"the envd token":                  {host: "49999-sbx1.e2b.example.com", headers: map[string]string{HeaderAccessToken: "{envd}"}, want: 200},
		"the traffic token":               {host: "49999-sbx1.e2b.example.com", headers: map[string]string{HeaderTrafficToken: "{traffic}"}, want: 200},
		"routed by headers":               {host: "sandbox.e2b.example.com", headers: map[string]string{HeaderSandboxID: "sbx1", HeaderSandboxPort: "49999", HeaderTrafficToken: "{traffic}"}, want: 200},
		"an unknown sandbox":              {host: "49999-nosuch.e2b.example.com", headers: map[string]string{HeaderAccessToken: "{envd}"}, want: 404},
		"envd's port":                     {host: "49983-sbx1.e2b.example.com", headers: map[string]string{HeaderAccessToken: "{envd}"}, want: 502},
		"a port header that is no port":   {host: "sandbox.e2b.example.com", headers: map[string]string{HeaderSandboxID: "sbx1", HeaderSandboxPort: "x"}, want: 400},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, stub, gw, sb := newRoutingEnv(t)
			close(stub.release)
			_, otherTraffic := Tokens([]byte("k"), "team-b", "sbx1", "nonce")
			req, _ := http.NewRequest(http.MethodPost, gw.URL+"/execute", strings.NewReader(`{"code":"1"}`))
			req.Host = tc.host
			for k, v := range tc.headers {
				v = strings.NewReplacer("{envd}", sb.EnvdToken, "{traffic}", sb.TrafficToken, "{other}", otherTraffic).Replace(v)
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != 200 {
				var e Error
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code != tc.want {
					t.Errorf("not E2B's error shape: %v %+v", err, e)
				}
				select {
				case <-stub.gotToken:
					t.Error("a refused request reached the agent")
				default:
				}
				return
			}
			if got := <-stub.gotToken; got != sb.AgentToken {
				t.Errorf("the agent got token %q, want the Pod's own", got)
			}
			h := <-stub.gotHeader
			for _, k := range []string{HeaderTrafficToken, HeaderSandboxID, HeaderSandboxPort, "X-Api-Key"} {
				if h.Get(k) != "" {
					t.Errorf("the agent got the client's %s", k)
				}
			}
		})
	}
}

// TestProxyStreams: a line of /execute's stream reaches the client while the agent
// still holds the rest (no buffering until the end).
func TestProxyStreams(t *testing.T) {
	_, stub, gw, sb := newRoutingEnv(t)
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/execute", strings.NewReader(`{"code":"1"}`))
	req.Host = "49999-sbx1.e2b.example.com"
	req.Header.Set(HeaderAccessToken, sb.EnvdToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || !strings.Contains(lines.Text(), "first") {
		t.Fatalf("first line: %q %v", lines.Text(), lines.Err())
	}
	close(stub.release) // only now does the agent end the stream
	if !lines.Scan() || !strings.Contains(lines.Text(), "end_of_execution") {
		t.Fatalf("second line: %q %v", lines.Text(), lines.Err())
	}
}

// TestProxyFullDuplex: the agent answers before it has read the whole request, and
// the client sends the rest only after the answer's header came back. A gateway that
// first consumes the request body (net/http's default when a handler answers) never
// answers here; on a real node the same race dropped the agent's connection mid-stream.
func TestProxyFullDuplex(t *testing.T) {
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex() // it answers first, then reads
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = w.Write([]byte(`{"type":"stdout","text":"first\n"}` + "\n"))
		w.(http.Flusher).Flush()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		_, _ = w.Write([]byte(`{"type":"stdout","text":"` + strconv.Itoa(len(body)) + `"}` + "\n"))
	}))
	t.Cleanup(agent.Close)
	_, gw, sb := newGatewayTo(t, agent.URL)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/execute", pr)
	req.Host = "49999-sbx1.e2b.example.com"
	req.Header.Set(HeaderAccessToken, sb.EnvdToken)
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // the test closes it once it has the response
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- resp
	}()
	if _, err := pw.Write([]byte(`{"code":`)); err != nil { // the first half of the body
		t.Fatal(err)
	}
	var resp *http.Response
	select {
	case resp = <-got:
	case <-time.After(30 * time.Second): // a deadlock guard, not a latency bound
		_ = pw.CloseWithError(errors.New("test over"))
		t.Fatal("the answer's header never came back while the request was still being sent")
	}
	if resp == nil {
		return
	}
	defer resp.Body.Close()
	if _, err := pw.Write([]byte(`"1"}`)); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	lines := bufio.NewScanner(resp.Body)
	for _, want := range []string{"first", `"12"`} {
		if !lines.Scan() || !strings.Contains(lines.Text(), want) {
			t.Fatalf("line %q, want one with %s (%v)", lines.Text(), want, lines.Err())
		}
	}
}

// TestProxyNotReady: a sandbox whose Pod is not running answers 502, not a hang.
func TestProxyNotReady(t *testing.T) {
	m, _, gw, sb := newRoutingEnv(t)
	m.mu.Lock()
	sb.Ready = false
	m.sandboxes[sb.ID] = sb
	m.mu.Unlock()
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/execute", strings.NewReader(`{}`))
	req.Host = "49999-sbx1.e2b.example.com"
	req.Header.Set(HeaderAccessToken, sb.EnvdToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
}

// TestKeepAliveAdvertised: every HTTP/1.1 answer tells clients how long an idle
// connection lives. Without it, Node's fetch assumed 4 s and destroyed a pooled
// connection as it reused it (about one run in three of the official JS client through
// the gateway failed with "The sandbox was killed while the request was in progress").
// Over HTTP/2 (what the SDKs negotiate with the gateway's TLS) no answer carries it:
// Node refused every such response as a protocol error (found on the e2e node).
func TestKeepAliveAdvertised(t *testing.T) {
	_, stub, gw, sb := newRoutingEnv(t)
	close(stub.release)
	h2 := httptest.NewUnstartedServer(gw.Config.Handler)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	for _, srv := range []struct {
		url    string
		client *http.Client
		proto  int
		want   string
	}{
		{url: gw.URL, client: http.DefaultClient, proto: 1, want: "timeout=120"},
		{url: h2.URL, client: h2.Client(), proto: 2, want: ""},
	} {
		for name, host := range map[string]string{"the API": "api.e2b.example.com", "a sandbox": "49999-sbx1.e2b.example.com"} {
			req, _ := http.NewRequest(http.MethodPost, srv.url+"/execute", strings.NewReader(`{}`))
			req.Host = host
			req.Header.Set(HeaderAccessToken, sb.EnvdToken)
			resp, err := srv.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			select { // the stub holds one request's values: make room for the next
			case <-stub.gotHeader:
				<-stub.gotToken
			default:
			}
			if resp.ProtoMajor != srv.proto {
				t.Fatalf("%s: spoke %s, want HTTP/%d", name, resp.Proto, srv.proto)
			}
			if got := resp.Header.Get("Keep-Alive"); got != srv.want {
				t.Errorf("%s over %s: Keep-Alive %q, want %q", name, resp.Proto, got, srv.want)
			}
		}
	}
	if IdleTimeout <= KeepAliveTimeout {
		t.Errorf("the server's IdleTimeout %s must outlast the advertised %s", IdleTimeout, KeepAliveTimeout)
	}
}
