package conformance

import (
	"context"
	"os"
	"os/exec"
	"strings"
)

// GatewayChecks is how many checks e2b-js/gateway.mjs makes.
const GatewayChecks = 10

// GatewayClient runs e2b-js/gateway.mjs: E2B's official JS client, unmodified, in its
// normal mode against a gateway (gateway_test.go on envtest, test/e2e on a real node).
type GatewayClient struct {
	// Domain is the gateway's sandbox domain, without a port: the Node preload
	// (e2b-js/resolve-test-domain.cjs) resolves every name under it to 127.0.0.1.
	Domain string
	// Port is the gateway's HTTPS port on 127.0.0.1.
	Port string
	// APIKey is the client's E2B_API_KEY.
	APIKey string
	// CAFile is the CA the gateway's certificate is signed by (NODE_EXTRA_CA_CERTS).
	CAFile string
}

// Command is node running gateway.mjs in dir (e2b-js) with E2B_API_URL
// https://api.<Domain>:<Port>, E2B_DOMAIN <Domain>:<Port> and E2B_API_KEY, and none of
// the SDK's debug settings.
func (c GatewayClient) Command(ctx context.Context, node, dir string) *exec.Cmd {
	domain := c.Domain + ":" + c.Port
	cmd := exec.CommandContext(ctx, node, "--require", "./resolve-test-domain.cjs", "gateway.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"E2B_API_URL=https://api."+domain,
		"E2B_DOMAIN="+domain,
		"E2B_API_KEY="+c.APIKey,
		"NODE_EXTRA_CA_CERTS="+c.CAFile,
		"VIZOPS_TEST_DOMAIN="+c.Domain,
		"E2B_DEBUG=", "E2B_SANDBOX_URL=", "E2B_ACCESS_TOKEN=")
	return cmd
}

// ParseOutput reads a script's output: how many "ok   <check>" lines it has, and the
// sandbox its "sandbox <id>" line names.
func ParseOutput(out []byte) (passed int, sandboxID string) {
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "ok   ") {
			passed++
		}
		if rest, ok := strings.CutPrefix(line, "sandbox "); ok {
			sandboxID = strings.TrimSpace(rest)
		}
	}
	return passed, sandboxID
}
