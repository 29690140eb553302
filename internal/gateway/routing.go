package gateway

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
)

const (
	// HeaderSandboxID and HeaderSandboxPort name the sandbox and port of a request,
	// as the SDKs send them with every sandbox request (E2B's proxy routes
	// sandbox.<domain> by them).
	HeaderSandboxID   = "E2b-Sandbox-Id"
	HeaderSandboxPort = "E2b-Sandbox-Port"
	// HeaderAccessToken is the envd access token (and the agent's own token header).
	HeaderAccessToken = "X-Access-Token"
	// HeaderTrafficToken is E2B's traffic access token, checked by its proxy.
	HeaderTrafficToken = "E2B-Traffic-Access-Token"
	// CodeInterpreterPort is the port of E2B's code interpreter, which the agent
	// serves: the only port of a vizops sandbox.
	CodeInterpreterPort = 49999
)

// ParseSandboxHost reads <port>-<sandboxID>.<domain> (with or without a :port after
// it, which is the gateway's own listening port).
func ParseSandboxHost(host, domain string) (port int, id string, ok bool) {
	if domain == "" {
		return 0, "", false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if h, _, err := net.SplitHostPort(domain); err == nil {
		domain = h // E2B_DOMAIN with the gateway's port in it
	}
	label, ok := strings.CutSuffix(host, "."+domain)
	if !ok || strings.Contains(label, ".") {
		return 0, "", false
	}
	p, id, ok := strings.Cut(label, "-")
	if !ok {
		return 0, "", false
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 || !ValidID(id) {
		return 0, "", false
	}
	return port, id, true
}

type targetKey struct{}

type target struct {
	url   *url.URL
	token string
}

// serveSandbox checks the sandbox's token and proxies the request to its agent.
func (s *Server) serveSandbox(w http.ResponseWriter, r *http.Request, id string, port int) {
	if !ValidID(id) {
		writeError(w, Errorf(http.StatusBadRequest, "%q is not a sandbox ID", id))
		return
	}
	sb, err := s.o.Backend.Get(r.Context(), id)
	if err != nil {
		writeError(w, asError(err, id))
		return
	}
	if !tokenMatches(r.Header.Get(HeaderAccessToken), sb.EnvdToken) && !tokenMatches(r.Header.Get(HeaderTrafficToken), sb.TrafficToken) {
		writeError(w, Errorf(http.StatusUnauthorized,
			"sandbox %s needs its access token: the SDK sends it (%s or %s) when it created or connected to the sandbox", id, HeaderAccessToken, HeaderTrafficToken))
		return
	}
	if port != CodeInterpreterPort {
		writeError(w, Errorf(http.StatusBadGateway,
			"port %d of sandbox %s is not open: vizops sandboxes serve only the code interpreter (port %d); files, commands and other ports are not supported", port, id, CodeInterpreterPort))
		return
	}
	if !sb.Ready || sb.AgentURL == "" {
		writeError(w, Errorf(http.StatusBadGateway, "sandbox %s is not ready (its Pod is not running); try again, or create another", id))
		return
	}
	u, err := url.Parse(sb.AgentURL)
	if err != nil {
		writeError(w, Errorf(http.StatusInternalServerError, "sandbox %s has no usable address: %v", id, err))
		return
	}
	// Full duplex: the agent answers /execute as soon as it has the code, and the
	// client's request may not be all sent (or closed by the proxy's transport) yet.
	// Without it, net/http's server consumes and closes the rest of the request body
	// when the proxy writes the answer's header, racing the transport that still reads
	// it; the transport then drops the agent's connection mid-stream ("use of closed
	// network connection"), which E2B's SDK reports as a killed sandbox. HTTP/2 is
	// full duplex already (the call reports it is not supported there).
	_ = http.NewResponseController(w).EnableFullDuplex()
	s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, target{url: u, token: sb.AgentToken})))
}

func tokenMatches(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// newProxy is the reverse proxy to agents: it streams (every write is flushed at once,
// so /execute's lines arrive as the code prints them), drops the client's tokens and
// E2B's routing headers, and sends the agent its own token.
func (s *Server) newProxy() http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(targetKey{}).(target)
			pr.SetURL(t.url)
			pr.Out.Host = t.url.Host
			for _, h := range []string{HeaderAccessToken, HeaderTrafficToken, HeaderSandboxID, HeaderSandboxPort, "X-API-Key", "Authorization", "Cookie"} {
				pr.Out.Header.Del(h)
			}
			pr.Out.Header.Set(HeaderAccessToken, t.token)
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.o.Logf("proxy %s %s: %v", r.Method, r.URL.Path, err)
			if r.Context().Err() != nil {
				return // the client left
			}
			writeError(w, Errorf(http.StatusBadGateway, "the sandbox did not answer: %v", err))
		},
	}
}
