package e2btest

import (
	"fmt"
	"net/http"

	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

// Agents is a handler factory for New that starts a local sandbox-agent for each
// sandbox, with the sandbox's access token, so requests run real Python as they
// would in E2B's code interpreter. opts.Token is replaced by the sandbox's.
func Agents(opts agent.Options) func(sandboxID, accessToken string) http.Handler {
	return func(id, token string) http.Handler {
		o := opts
		o.Token = token
		srv, err := agent.NewServer(o)
		if err != nil {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeError(w, http.StatusBadGateway, fmt.Sprintf("the sandbox-agent of %s did not start: %v", id, err))
			})
		}
		return srv
	}
}
