package e2btest

import (
	"fmt"
	"net/http"

	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

// Agents is a handler factory for New that starts a local sandbox-agent for each
// sandbox, so requests run real Python as they would in E2B's code interpreter. Like
// that server (e2b-dev/code-interpreter template/server), the agent checks no token:
// opts.Token is cleared, and the fake's proxy (the traffic token) is the only guard.
func Agents(opts agent.Options) func(sandboxID, accessToken string) http.Handler {
	return func(id, _ string) http.Handler {
		o := opts
		o.Token = ""
		srv, err := agent.NewServer(o)
		if err != nil {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeError(w, http.StatusBadGateway, fmt.Sprintf("the sandbox-agent of %s did not start: %v", id, err))
			})
		}
		return srv
	}
}
