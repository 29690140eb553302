package e2b

import (
	"net/http"

	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

// CodeInterpreter is the default InterpreterFunc: the code-interpreter protocol's
// client (the one the Kubernetes backend uses for its sandbox-agent) at the sandbox's
// address, with its access token.
func CodeInterpreter(ep Endpoint, hc *http.Client) Interpreter {
	c := &codeinterpreter.Client{BaseURL: ep.URL, AccessToken: ep.AccessToken, HTTP: hc, SandboxID: ep.SandboxID}
	if ep.TrafficToken != "" {
		c.Header = http.Header{"E2b-Traffic-Access-Token": []string{ep.TrafficToken}}
	}
	return c
}
