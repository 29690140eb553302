package e2b

import (
	"net/http"

	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

// CodeInterpreter is the default InterpreterFunc: the code-interpreter protocol's
// client (the one the Kubernetes backend uses for its sandbox-agent) at the sandbox's
// address. hc carries E2B's headers (see InterpreterFunc): the traffic token on every
// request, and the envd access token on POST /execute only, as the SDKs send them, so
// the client itself is given no token.
func CodeInterpreter(ep Endpoint, hc *http.Client) Interpreter {
	return &codeinterpreter.Client{BaseURL: ep.URL, HTTP: hc, SandboxID: ep.SandboxID}
}
