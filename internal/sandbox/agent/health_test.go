package agent

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox/codeinterpreter"
)

// TestHealthSaysWhyNoKernelStarts: a kernel with no seccomp filter for its machine
// refuses to start (fail closed), and /health then answers 500 with that error
// rather than 503 forever, so the Local backend fails the sandbox's start at once.
func TestHealthSaysWhyNoKernelStarts(t *testing.T) {
	_, c := serve(t, Options{Token: "t", WorkDir: workDir(t, "", "agent-health-"), SeccompArch: "riscv64"})
	ctx := testCtx(t)
	for {
		err := c.Health(ctx)
		var se *codeinterpreter.StatusError
		switch {
		case err == nil:
			t.Fatal("/health says OK: a kernel started without a seccomp filter")
		case errors.As(err, &se) && se.Code == http.StatusInternalServerError:
			if !strings.Contains(se.Body, "no seccomp filter for the riscv64 architecture") {
				t.Errorf("/health 500 body %q does not say why", se.Body)
			}
			return
		case errors.Is(err, codeinterpreter.ErrStarting):
		default:
			t.Fatalf("/health: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("/health never said why no kernel starts")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
